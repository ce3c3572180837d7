package seal

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/nokstream/nokstream/internal/atomicfile"
)

// A verifier's machine may pin the archive's public key: keep it, once
// obtained from a source its user trusts, in a file of the user's
// configuration, so that later checks prove where a bundle came from
// without the key being given each time.

// PinnedKeyPath returns where the pinned key is kept under a user's
// configuration directory (os.UserConfigDir: $XDG_CONFIG_HOME, or
// ~/.config, on Linux).
func PinnedKeyPath(configDir string) string {
	return filepath.Join(configDir, "nokstream", "seal.pub")
}

// LoadPinnedKey reads the pinned key at path; nil, and no error, if none is
// pinned. A file that is there but is not a key is an error, never taken
// for no pin.
func LoadPinnedKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the pinned key: %w", err)
	}
	pub, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("the pinned key %s: %w", path, err)
	}
	return pub, nil
}

// PinKey writes pub, as PEM, to path, replacing any key pinned there
// atomically: a crash leaves the old key or the new one.
func PinKey(path string, pub ed25519.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("pin key: %w", err)
	}
	if err := atomicfile.WriteFile(path, MarshalPublicKey(pub), 0o644); err != nil {
		return fmt.Errorf("pin key: %w", err)
	}
	return nil
}

// maxKeyDocument bounds what FetchPublicKey reads.
const maxKeyDocument = 64 << 10

// FetchPublicKey gets the archive's public key from a URL of its GET
// /api/v1/keys/seal, over HTTPS only (redirects included): JSON with the
// PEM in "pem" and the key id in "key_id", as the registry answers, or the
// PEM itself (?format=pem).
func FetchPublicKey(ctx context.Context, client *http.Client, rawURL string) (ed25519.PublicKey, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("key URL %q: want https://host/api/v1/keys/seal", rawURL)
	}
	c := *client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirected to %s, which is not https", req.URL.Redacted())
		}
		if len(via) >= 5 {
			return errors.New("more than 5 redirects")
		}
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch key %s: %w", u.Redacted(), err)
	}
	req.Header.Set("Accept", "application/json, application/x-pem-file")
	res, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch key: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch key %s: %s", u.Redacted(), res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxKeyDocument+1))
	if err != nil {
		return nil, fmt.Errorf("fetch key %s: %w", u.Redacted(), err)
	}
	if len(b) > maxKeyDocument {
		return nil, fmt.Errorf("fetch key %s: an answer of more than %d bytes", u.Redacted(), maxKeyDocument)
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "application/json" {
		return ParsePublicKey(b)
	}
	var doc struct {
		PEM   string `json:"pem"`
		KeyID string `json:"key_id"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("fetch key %s: %w", u.Redacted(), err)
	}
	pub, err := ParsePublicKey([]byte(doc.PEM))
	if err != nil {
		return nil, fmt.Errorf("fetch key %s: %w", u.Redacted(), err)
	}
	if doc.KeyID != "" && doc.KeyID != KeyID(pub) {
		return nil, fmt.Errorf("fetch key %s: key_id %q is not the id of the key served (%s)", u.Redacted(), doc.KeyID, KeyID(pub))
	}
	return pub, nil
}
