package nodeapi

import (
	"strings"
	"testing"
)

// TestToken: a token names its node and is refused in any other form, so
// that the registry looks up only well-formed names.
func TestToken(t *testing.T) {
	tok, err := NewToken("site-0042_ingest")
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := ParseToken(tok); !ok || name != "site-0042_ingest" {
		t.Errorf("ParseToken(%q) = %q %v", tok, name, ok)
	}
	other, _ := NewToken("site-0042_ingest")
	if tok == other || string(HashToken(tok)) == string(HashToken(other)) {
		t.Error("two tokens of one node are alike")
	}
	secret := tok[strings.LastIndexByte(tok, '.')+1:]
	for _, bad := range []string{"", "nkn.", "nkn.edge1", "nkn.edge1.", "nkn.Edge1." + secret, "nkn.edge1." + secret[:20],
		"nkn.edge1." + secret + "=", "nkn.edge1.x." + secret, "xyz.edge1." + secret, "nkn.../." + secret} {
		if name, ok := ParseToken(bad); ok {
			t.Errorf("ParseToken(%q) accepted, node %q", bad, name)
		}
	}
	if _, err := NewToken("Edge 1"); err == nil {
		t.Error("NewToken accepted a name with a space and a capital")
	}
}
