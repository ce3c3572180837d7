package seal_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// TestFetchPublicKey: the archive's key is taken from its https URL as
// JSON or PEM; plain http, a redirect to it, an answer that is not a key,
// a key_id that is not the key's, an error status and an answer too large
// are refused.
func TestFetchPublicKey(t *testing.T) {
	t.Parallel()
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)).Public().(ed25519.PublicKey)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(seal.MarshalPublicKey(other))
	}))
	t.Cleanup(plain.Close)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"key_id": seal.KeyID(pub), "pem": string(seal.MarshalPublicKey(pub))})
		case "/pem":
			w.Header().Set("Content-Type", "application/x-pem-file")
			_, _ = w.Write(seal.MarshalPublicKey(pub))
		case "/lying":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"key_id": seal.KeyID(other), "pem": string(seal.MarshalPublicKey(pub))})
		case "/downgrade":
			http.Redirect(w, r, plain.URL+"/pem", http.StatusFound)
		case "/html":
			_, _ = w.Write([]byte("<html>sign in</html>"))
		case "/huge":
			_, _ = w.Write(bytes.Repeat([]byte("A"), 100<<10))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		url  string
		want string // the error, or "" for the key
	}{
		{srv.URL + "/json", ""},
		{srv.URL + "/pem", ""},
		{plain.URL + "/pem", "want https://"},
		{srv.URL + "/downgrade", "which is not https"},
		{srv.URL + "/lying", "is not the id of the key served"},
		{srv.URL + "/html", "public key: want PEM"},
		{srv.URL + "/huge", "more than 65536 bytes"},
		{srv.URL + "/missing", "404"},
	} {
		got, err := seal.FetchPublicKey(context.Background(), srv.Client(), tc.url)
		switch {
		case tc.want == "" && (err != nil || !got.Equal(pub)):
			t.Errorf("%s: %v %x", tc.url, err, got)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.url, err, tc.want)
		}
	}
}

// TestPinKey: no pinned key is no key, not an error; a pinned key is read
// back; pinning again replaces it; a file that is not a key is an error.
func TestPinKey(t *testing.T) {
	t.Parallel()
	path := seal.PinnedKeyPath(t.TempDir())
	if k, err := seal.LoadPinnedKey(path); k != nil || err != nil {
		t.Fatalf("nothing pinned: %x %v", k, err)
	}
	for _, n := range []byte{1, 2} {
		pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, 32)).Public().(ed25519.PublicKey)
		if err := seal.PinKey(path, pub); err != nil {
			t.Fatal(err)
		}
		if k, err := seal.LoadPinnedKey(path); err != nil || !k.Equal(pub) {
			t.Fatalf("pinned %x, read %x %v", pub, k, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the pin directory holds %d files, want only seal.pub", len(entries))
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := seal.LoadPinnedKey(path); err == nil {
		t.Errorf("a pinned file that is no key was taken")
	}
}
