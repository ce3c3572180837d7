package httpserver_test

import (
	"net/http/httptest"
	"testing"

	"github.com/nokstream/nokstream/internal/httpserver"
)

// TestClientAddr: X-Forwarded-For is believed only from a trusted proxy,
// and only as far as the nearest hop a trusted proxy wrote: a client that
// sends its own header cannot name itself another address.
func TestClientAddr(t *testing.T) {
	t.Parallel()
	trusted, err := httpserver.ParseProxies("10.1.0.0/16, 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, peer, xff, want string
	}{
		{"direct, no header", "203.0.113.9:5000", "", "203.0.113.9"},
		{"direct, a forged header", "203.0.113.9:5000", "198.51.100.1", "203.0.113.9"},
		{"through the proxy", "127.0.0.1:40000", "203.0.113.9", "203.0.113.9"},
		{"a forged hop before the proxy's", "127.0.0.1:40000", "198.51.100.1, 203.0.113.9", "203.0.113.9"},
		{"two trusted proxies", "127.0.0.1:40000", "203.0.113.9, 10.1.2.3", "203.0.113.9"},
		{"garbage the proxy passed on", "127.0.0.1:40000", "not-an-ip, 203.0.113.9", "203.0.113.9"},
		{"the proxy wrote nothing", "127.0.0.1:40000", "", "127.0.0.1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.peer
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := httpserver.ClientAddr(r, trusted); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	if _, err := httpserver.ParseProxies("10.0.0.0/33"); err == nil {
		t.Error("a bad prefix was accepted")
	}
}
