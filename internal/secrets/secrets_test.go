package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "secrets.key")
	k, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	url := []byte("rtsp://admin:hunter2@10.0.0.5/stream1")
	sealed, err := k.Seal(url, []byte("site1/cam1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("sealed value contains the password")
	}
	got, err := k2.Open(sealed, []byte("site1/cam1"))
	if err != nil || !bytes.Equal(got, url) {
		t.Fatalf("open with the reloaded key: %q, %v", got, err)
	}
	other, _ := NewKey(bytes.Repeat([]byte{1}, KeySize))
	for name, open := range map[string]func() ([]byte, error){
		"other device": func() ([]byte, error) { return k.Open(sealed, []byte("site1/cam2")) },
		"other key":    func() ([]byte, error) { return other.Open(sealed, []byte("site1/cam1")) },
		"tampered":     func() ([]byte, error) { s := bytes.Clone(sealed); s[20] ^= 1; return k.Open(s, []byte("site1/cam1")) },
		"truncated":    func() ([]byte, error) { return k.Open(sealed[:10], []byte("site1/cam1")) },
	} {
		if _, err := open(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: err %v, want ErrOpen", name, err)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", k, k, k); bytes.Contains([]byte(s), k.b) || s != "<redacted> <redacted> <redacted>" {
		t.Errorf("key prints as %q", s)
	}
}
