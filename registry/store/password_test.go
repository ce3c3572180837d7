package store

import (
	"strings"
	"testing"
)

func TestPasswordHashRoundTrip(t *testing.T) {
	t.Parallel()
	const password = "correct horse battery staple"
	phc, err := hashPassword(DefaultPasswordHashing(), password)
	if err != nil {
		t.Fatalf("hash: %v", err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Errorf("hash %q is not an argon2id PHC string with the expected parameters", phc)
	}
	if strings.Contains(phc, password) {
		t.Errorf("hash contains the password")
	}
	other, err := hashPassword(DefaultPasswordHashing(), password)
	if err != nil {
		t.Fatalf("hash: %v", err)
	}
	if other == phc {
		t.Errorf("two hashes of one password are equal: the salt is not random")
	}
	tests := []struct {
		name     string
		password string
		want     bool
	}{
		{"right", password, true},
		{"wrong", password + "!", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := verifyPassword(phc, tt.password)
			if err != nil || ok != tt.want {
				t.Errorf("verify: got %v, %v; want %v", ok, err, tt.want)
			}
		})
	}
}

func TestVerifyPasswordParameters(t *testing.T) {
	t.Parallel()
	// Hashes made with other parameters still verify: they are read from
	// the string. This one is t=1, m=8 KiB, p=1, salt "somesalt".
	const phc = "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$8Tf44YakA6Z5zNBgblq13Nr+Q8FkCFWsjG4z6b1j7rM"
	if ok, err := verifyPassword(phc, "password"); err != nil || !ok {
		t.Errorf("verify with other parameters: got %v, %v; want true", ok, err)
	}
	if ok, err := verifyPassword(phc, "Password"); err != nil || ok {
		t.Errorf("verify a wrong password with other parameters: got %v, %v; want false", ok, err)
	}
	for _, bad := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=8,t=1,p=1$c29tZXNhbHQ$vCcRK4MQbEZYYAj5kLNmOO+w3Oz4ZbUVWYgT8sYhUtk",
		"$argon2id$v=16$m=8,t=1,p=1$c29tZXNhbHQ$vCcRK4MQbEZYYAj5kLNmOO+w3Oz4ZbUVWYgT8sYhUtk",
		"$argon2id$v=19$m=8,t=0,p=1$c29tZXNhbHQ$vCcRK4MQbEZYYAj5kLNmOO+w3Oz4ZbUVWYgT8sYhUtk",
		"$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$!!",
	} {
		if _, err := verifyPassword(bad, "password"); err == nil {
			t.Errorf("verify against %q: no error", bad)
		}
	}
}

// The cost of new hashes can be lowered to OWASP's minimum and no further;
// a hash made at any accepted cost carries it and verifies.
func TestPasswordHashingCost(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"m=65536,t=3,p=4", "m=7168,t=5,p=1", "m=19456,t=2,p=1", "m=47104,t=1,p=1"} {
		p, err := ParsePasswordHashing(ok)
		if err != nil {
			t.Errorf("%s refused: %v", ok, err)
			continue
		}
		if p.String() != ok {
			t.Errorf("%s reads back as %s", ok, p)
		}
		phc, err := hashPassword(p, "pw")
		if err != nil || !strings.HasPrefix(phc, "$argon2id$v=19$"+ok+"$") {
			t.Errorf("hash at %s: %q, %v", ok, phc, err)
		}
		if good, err := verifyPassword(phc, "pw"); err != nil || !good {
			t.Errorf("a hash made at %s does not verify: %v, %v", ok, good, err)
		}
	}
	for _, bad := range []string{"m=7168,t=4,p=1", "m=4096,t=10,p=1", "m=19456,t=1,p=1", "m=65536,t=0,p=4", "m=65536,t=3,p=0",
		"m=8388608,t=1,p=1", "t=3,m=65536,p=4", "fast"} {
		if _, err := ParsePasswordHashing(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	var s Store
	if err := s.SetPasswordHashing(PasswordHashing{Time: 1, MemoryKiB: 1024, Threads: 1}); err == nil {
		t.Error("a store took a cost below the minimum")
	}
}
