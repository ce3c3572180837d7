package store

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters for new hashes: by default the second recommended
// option of RFC 9106, section 4 (t=3, 64 MiB, p=4), with a 16-byte salt and
// a 32-byte tag. Verification reads the parameters from the stored hash, so
// they can be changed later without invalidating existing passwords.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024 // KiB
	argonThreads = 4
	argonSaltLen = 16
	argonKeyLen  = 32
)

// PasswordHashing is the cost of new argon2id password hashes.
type PasswordHashing struct {
	Time      uint32 // passes over the memory
	MemoryKiB uint32
	Threads   uint8
}

// DefaultPasswordHashing is RFC 9106's second recommendation: t=3, 64 MiB,
// p=4 (~0.1 s and 64 MiB a hash).
func DefaultPasswordHashing() PasswordHashing {
	return PasswordHashing{Time: argonTime, MemoryKiB: argonMemory, Threads: argonThreads}
}

// MinimumPasswordHashing is the cheapest cost Validate accepts: OWASP's
// least argon2id configuration (m=7 MiB, t=5, p=1; its others, such as
// m=19 MiB with t=2, trade memory for passes at the same strength). For
// hosts short of memory, and for tests.
func MinimumPasswordHashing() PasswordHashing {
	return PasswordHashing{Time: 5, MemoryKiB: 7 * 1024, Threads: 1}
}

// Validate refuses a cost below OWASP's minimum configurations for
// argon2id: at least 7 MiB, and memory × passes at least 7 MiB × 5.
func (p PasswordHashing) Validate() error {
	if p.Time == 0 || p.Threads == 0 || p.MemoryKiB < 7*1024 || uint64(p.MemoryKiB)*uint64(p.Time) < 7*1024*5 ||
		p.MemoryKiB > 4*1024*1024 || p.MemoryKiB < 8*uint32(p.Threads) {
		return fmt.Errorf("password hashing m=%d,t=%d,p=%d: below OWASP's argon2id minimum (at least m=7168 KiB, and m×t at least 35840, e.g. m=7168,t=5,p=1 or m=19456,t=2,p=1) or above 4 GiB",
			p.MemoryKiB, p.Time, p.Threads)
	}
	return nil
}

// String is the cost as in a PHC string: m=65536,t=3,p=4.
func (p PasswordHashing) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d", p.MemoryKiB, p.Time, p.Threads)
}

// ParsePasswordHashing reads a cost written as String writes it, and
// validates it.
func ParsePasswordHashing(v string) (PasswordHashing, error) {
	var p PasswordHashing
	if _, err := fmt.Sscanf(v, "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return p, fmt.Errorf("password hashing %q: want m=KiB,t=passes,p=threads, e.g. %s", v, DefaultPasswordHashing())
	}
	return p, p.Validate()
}

// hashPassword returns the argon2id hash of password with the cost p as a
// PHC string: $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>, base64 without
// padding.
func hashPassword(p PasswordHashing, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generate salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt),
		base64.RawStdEncoding.EncodeToString(key)), nil
}

// verifyPassword reports whether password matches the PHC string phc. An
// error means phc is not an argon2id hash this package can check.
func verifyPassword(phc, password string) (bool, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, fmt.Errorf("password hash: not an argon2id PHC string")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, fmt.Errorf("password hash: unsupported argon2 version %q", parts[2])
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, fmt.Errorf("password hash: parameters %q: %w", parts[3], err)
	}
	if t == 0 || p == 0 || m < 8*uint32(p) || m > 4*1024*1024 {
		return false, fmt.Errorf("password hash: parameters %q out of range", parts[3])
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("password hash: salt: %w", err)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) < 16 {
		return false, fmt.Errorf("password hash: bad tag")
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// newTempPassword returns a random temporary password: 26 characters of
// base32 (128 bits), easy to read out and type.
func newTempPassword() string { return rand.Text() }
