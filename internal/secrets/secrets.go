// Package secrets seals small secrets at rest — the URLs, with credentials,
// of the cameras ingest pulls — with AES-256-GCM under a key kept in a file
// outside the database. A sealed value is nonce (12 bytes) || ciphertext ||
// tag; the additional data binds it to what it belongs to (a device), so a
// sealed value copied to another row does not open.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nokstream/nokstream/internal/atomicfile"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// Key is an AES-256-GCM key. It prints as "<redacted>".
type Key struct{ b []byte }

// String returns "<redacted>".
func (Key) String() string { return "<redacted>" }

// GoString returns "<redacted>".
func (Key) GoString() string { return "<redacted>" }

// LoadOrCreateKey reads the key in path, or creates one there (mode 0600,
// directory 0700) if the file does not exist. The file holds the 32 raw
// bytes of the key. Every process that seals or opens (the CLI that
// registers devices, every ingest) must read the same file.
func LoadOrCreateKey(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != KeySize {
			return Key{}, fmt.Errorf("secrets key %s: %d bytes, want %d", path, len(b), KeySize)
		}
		return Key{b}, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Key{}, fmt.Errorf("read secrets key: %w", err)
	}
	b = make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return Key{}, fmt.Errorf("create secrets key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Key{}, fmt.Errorf("create secrets key: %w", err)
	}
	// Written whole or not at all: two processes creating the key at once
	// must not end up with different keys; the loser reads the winner's.
	err = atomicfile.WriteNew(path, b, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateKey(path)
	}
	if err != nil {
		return Key{}, fmt.Errorf("create secrets key: %w", err)
	}
	return Key{b}, nil
}

// NewKey returns a key from 32 bytes.
func NewKey(b []byte) (Key, error) {
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("secrets key: %d bytes, want %d", len(b), KeySize)
	}
	return Key{append([]byte(nil), b...)}, nil
}

func (k Key) aead() (cipher.AEAD, error) {
	if len(k.b) != KeySize {
		return nil, errors.New("secrets: no key")
	}
	block, err := aes.NewCipher(k.b)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts plaintext, bound to ad (for example "<site>/<device>").
func (k Key) Seal(plaintext, ad []byte) ([]byte, error) {
	g, err := k.aead()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return g.Seal(nonce, nonce, plaintext, ad), nil
}

// ErrOpen means a sealed value did not open: another key, other additional
// data, or tampering.
var ErrOpen = errors.New("sealed value does not open with this key")

// Open decrypts a value from Seal with the same ad.
func (k Key) Open(sealed, ad []byte) ([]byte, error) {
	g, err := k.aead()
	if err != nil {
		return nil, err
	}
	if len(sealed) < g.NonceSize()+g.Overhead() {
		return nil, ErrOpen
	}
	out, err := g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}
