package blob_test

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(testenv.MinIOSupervisor))
}

func TestCheckKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key    string
		reason string // "" if the key is valid
	}{
		{key: "a"},
		{key: "seg/2026/05/site-1/cam-2/000001.m4s"},
		{key: "a.b"},
		{key: ".hidden"},
		{key: "..x"},
		{key: "x.."},
		{key: "..."},
		{key: "tmp-1/.tmp"},
		{key: "экзамен/видео 1.mp4"},
		{key: strings.Repeat("k", blob.MaxKeyLen)},
		{key: "", reason: "empty"},
		{key: strings.Repeat("k", blob.MaxKeyLen+1), reason: "longer than 1024"},
		{key: "/a", reason: "absolute"},
		{key: "/", reason: "absolute"},
		{key: "..", reason: `path element ".."`},
		{key: "a/../b", reason: `path element ".."`},
		{key: "a/..", reason: `path element ".."`},
		{key: ".", reason: `path element "."`},
		{key: "a/./b", reason: `path element "."`},
		{key: "a//b", reason: "empty path element"},
		{key: "a/", reason: "empty path element"},
		{key: `a\b`, reason: "backslash"},
		{key: `..\..\etc`, reason: "backslash"},
		{key: "a\x00b", reason: "control character U+0000"},
		{key: "a\nb", reason: "control character U+000A"},
		{key: "a\x7fb", reason: "control character U+007F"},
		{key: "a\u0085b", reason: "control character U+0085"},
		{key: "a\xffb", reason: "not valid UTF-8"},
		{key: ".tmp-123", reason: "reserved prefix"},
		{key: "a/.tmp-x/b", reason: "reserved prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			err := blob.CheckKey(tt.key)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("CheckKey(%q) = %v, want nil", tt.key, err)
				}
				return
			}
			if !errors.Is(err, blob.ErrBadKey) {
				t.Fatalf("CheckKey(%q) = %v, want ErrBadKey", tt.key, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("CheckKey(%q) = %q, want the reason %q", tt.key, err, tt.reason)
			}
		})
	}
}
