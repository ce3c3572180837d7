package httpserver

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr returns the IP address of the client of r: the peer, or, when
// the peer is one of the trusted reverse proxies, the nearest address in
// X-Forwarded-For that is not itself a trusted proxy. From any other peer
// the header is ignored, so a client cannot name itself another address.
func ClientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer := PeerAddr(r)
	ip, err := netip.ParseAddr(peer)
	if err != nil || !isTrusted(ip, trusted) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// A hop the proxies did not write: stop at the last good one.
			break
		}
		client = hop.Unmap().String()
		if !isTrusted(hop, trusted) {
			break
		}
	}
	return client
}

// isTrusted reports whether ip is in one of trusted.
func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	ip = ip.Unmap()
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// PeerAddr returns the IP address of the peer of r.
func PeerAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ParseProxies parses a comma-separated list of CIDR prefixes or single
// addresses, as --trusted-proxies takes them.
func ParseProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q is not an address or CIDR prefix", f)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is not an address or CIDR prefix", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
