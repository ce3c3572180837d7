package sim

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nokstream/nokstream/internal/atomicfile"
)

// Credentials are the secrets of the demo world, kept between runs in a
// file only its owner may read: the passwords of the staff users (changed
// from the temporary ones), the publish secrets of the room cameras and the
// candidates' exam passwords.
type Credentials struct {
	// Users maps a login to its password.
	Users map[string]string `json:"users"`
	// Devices maps site/device to the publish secret of a room camera.
	Devices map[string]string `json:"devices"`
	// ExamPasswords maps exam/candidate to the candidate's exam password.
	ExamPasswords map[string]string `json:"exam_passwords"`
}

// String keeps the secrets out of logs and error messages.
func (Credentials) String() string { return "<redacted>" }

// GoString keeps the secrets out of %#v.
func (Credentials) GoString() string { return "<redacted>" }

// LoadCredentials reads the file at path; a missing file is empty
// credentials. A file that others may read is refused: it holds
// passwords.
func LoadCredentials(path string) (*Credentials, error) {
	c := &Credentials{}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read demo credentials: %w", err)
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("demo credentials %s are readable by others (mode %v): chmod 600 it, or remove it to start afresh", path, fi.Mode().Perm())
	default:
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read demo credentials: %w", err)
		}
		if err := json.Unmarshal(b, c); err != nil {
			return nil, fmt.Errorf("demo credentials %s: %w (remove the file to start afresh; passwords are then reset)", path, err)
		}
	}
	if c.Users == nil {
		c.Users = map[string]string{}
	}
	if c.Devices == nil {
		c.Devices = map[string]string{}
	}
	if c.ExamPasswords == nil {
		c.ExamPasswords = map[string]string{}
	}
	return c, nil
}

// Save writes the credentials to path with mode 0600, atomically: a crash
// leaves the old file or the new one.
func (c *Credentials) Save(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save demo credentials: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save demo credentials: %w", err)
	}
	return nil
}

// newPassword returns a random password of 26 characters (130 bits).
func newPassword() string { return rand.Text() }
