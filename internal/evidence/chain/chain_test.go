package chain_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/nokstream/nokstream/internal/evidence/chain"
)

// TestNextGolden pins the chain's bytes: the values below were computed
// outside Go (Python's hashlib, SHA-256 of the previous value's 32 bytes
// followed by the segment's 32), so a change of the function breaks every
// seal and bundle ever made and must fail here.
func TestNextGolden(t *testing.T) {
	t.Parallel()
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	steps := []struct{ segment, sha, chain string }{
		{"segment 0", "c0dafc1f67ee55a51c4920215b92cd209abb62615bff1ae83fd62f8d310d1289",
			"5473f55958374a7c89a134e77b658d5c1aa8e2c6c8d5ca3d55d4e36dd0d5ce1d"},
		{"segment 1", "31bd7c356ff3dca969210bb66b140432e11a248b23187bbb3429f5fd18c47fef",
			"f35ae5d16651050c97efb65c57c6b0dfa42260110681f3cec967ce5f4049794c"},
	}
	if chain.Zero != strings.Repeat("0", 64) {
		t.Fatalf("Zero = %q, want 64 hex zeros", chain.Zero)
	}
	prev := chain.Zero
	for _, s := range steps {
		if got := sum(s.segment); got != s.sha {
			t.Fatalf("sha256(%q) = %s, want %s", s.segment, got, s.sha)
		}
		got, err := chain.Next(prev, s.sha)
		if err != nil {
			t.Fatalf("Next after %s: %v", prev, err)
		}
		if got != s.chain {
			t.Fatalf("chain value of %q = %s, want %s", s.segment, got, s.chain)
		}
		prev = got
	}
	// The order is part of the value: the same two segments swapped give
	// another chain.
	swapped, _ := chain.Next(chain.Zero, steps[1].sha)
	if swapped, _ = chain.Next(swapped, steps[0].sha); swapped == steps[1].chain {
		t.Fatal("swapping two segments gives the same chain value")
	}
}

// TestNextRefusesBadInput: a value that is not 32 bytes of hex is an error
// that names it, never a chain value.
func TestNextRefusesBadInput(t *testing.T) {
	t.Parallel()
	good := strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, prev, sha, want string }{
		{"short previous value", "00", good, `bad previous chain value "00"`},
		{"previous value not hex", strings.Repeat("zz", 32), good, "bad previous chain value"},
		{"empty sha256", chain.Zero, "", `bad segment sha256 ""`},
		{"sha256 too long", chain.Zero, good + "00", "bad segment sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chain.Next(tc.prev, tc.sha)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Next(%q, %q) = %q, %v; want an error with %q", tc.prev, tc.sha, got, err, tc.want)
			}
		})
	}
}
