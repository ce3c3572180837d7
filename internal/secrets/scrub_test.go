package secrets_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nokstream/nokstream/internal/secrets"
)

// TestScrub: a camera password leaves no trace in a message that quotes
// the URL, percent-encoded or decoded.
func TestScrub(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ url, password string }{
		{"rtsp://admin:s3cret@cam.example/stream", "s3cret"},
		{"rtsp://admin:p%40ss%2Fw%3Ard@cam.example:554/live?x=1", "p@ss/w:rd"},
		{"rtsps://admin:a%20b%25c@10.0.0.9/ch1", "a b%c"},
		{"s3://ACCESS:se%2Bcret@minio:9000/bucket", "se+cret"},
	} {
		for _, quoted := range []string{
			fmt.Sprintf("dial %s: connection refused", tt.url),
			fmt.Sprintf("auth failed for user admin password %q", tt.password),
			"parse " + strings.ReplaceAll(tt.url, "%", "%%") + ": bad",
		} {
			err := errors.New(quoted)
			got := secrets.Scrub(err.Error(), tt.url)
			raw := tt.url[strings.Index(tt.url, ":")+3:]
			raw = raw[strings.Index(raw, ":")+1 : strings.LastIndex(raw[:strings.IndexAny(raw+"/", "/")], "@")]
			for _, leak := range []string{tt.password, raw} {
				if strings.Contains(got, leak) {
					t.Errorf("Scrub(%q) = %q: still holds %q", quoted, got, leak)
				}
			}
		}
		if r := secrets.RedactURL(tt.url); strings.Contains(r, tt.password) || !strings.Contains(r, "xxxxx") {
			t.Errorf("RedactURL(%q) = %q", tt.url, r)
		}
	}
}
