package whip

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// Config of the WHIP endpoint.
type Config struct {
	// UDPAddr is the one UDP address that carries the media of every
	// session (ICE UDP mux), default ":8189": one port to open in a
	// firewall. Host candidates are this address's IP, or every interface's
	// when it is unspecified. Loopback candidates are offered only when the
	// address is a loopback one. Empty: each session gets its own UDP port
	// from UDPPortMin..UDPPortMax.
	UDPAddr    string `yaml:"udp_addr"`
	UDPPortMin uint16 `yaml:"udp_port_min"`
	UDPPortMax uint16 `yaml:"udp_port_max"`
	// TCPAddr, when set, also accepts ICE over TCP (RFC 6544, passive) on
	// this address, for publishers whose network blocks UDP.
	TCPAddr string `yaml:"tcp_addr"`
	// NAT1To1IPs are public addresses that map 1:1 onto this host (a cloud
	// VM behind a NAT); they are offered as host candidates besides the
	// local ones.
	NAT1To1IPs []string `yaml:"nat_1to1_ips"`
	// MaxOfferBytes bounds the SDP offer; larger ones are refused (413).
	MaxOfferBytes int `yaml:"max_offer_bytes"`
	// HandshakeTimeout bounds ICE and DTLS after the answer.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// TrackTimeout is how long to wait, once connected, for every offered
	// track's first packet before recording the tracks that came.
	TrackTimeout time.Duration `yaml:"track_timeout"`
	// ReadTimeout ends a session whose publisher sends no media this long.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// TakeoverAfter is how long a live session must have sent nothing
	// before a new publisher of its stream may take it over; until then a
	// second publisher is refused with 409, so a leaked credential cannot
	// cut a live candidate or camera off.
	TakeoverAfter time.Duration `yaml:"takeover_after"`
	// MaxSessions and MaxSessionsPerAddress cap the sessions at once, in
	// all and from one client address; beyond, an offer is refused with
	// 503 and counted (refusal reason "session_limit").
	MaxSessions           int `yaml:"max_sessions"`
	MaxSessionsPerAddress int `yaml:"max_sessions_per_address"`
	// TrustedProxies are the reverse proxies (a TLS front for browsers)
	// whose X-Forwarded-For names the client, for the per-address cap and
	// the log; from any other peer the header is ignored.
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`
	// AllowOrigin is the CORS Access-Control-Allow-Origin of the endpoint,
	// so that a page on another origin can publish. Default "*": the bearer
	// token, not the origin, is what authorizes a publisher.
	AllowOrigin string           `yaml:"allow_origin"`
	Segment     segmenter.Config `yaml:"segment"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		UDPAddr:          ":8189",
		UDPPortMin:       20000,
		UDPPortMax:       20999,
		MaxOfferBytes:    64 << 10,
		HandshakeTimeout: 10 * time.Second,
		TrackTimeout:     2 * time.Second,
		ReadTimeout:      10 * time.Second,
		TakeoverAfter:    5 * time.Second,
		// A classroom behind one NAT address publishes a webcam and a
		// screen per workstation.
		MaxSessions:           2000,
		MaxSessionsPerAddress: 200,
		AllowOrigin:           "*",
		Segment:               segmenter.DefaultConfig(),
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.UDPAddr != "" {
		if _, err := net.ResolveUDPAddr("udp", c.UDPAddr); err != nil {
			return fmt.Errorf("whip: udp address %q: %w", c.UDPAddr, err)
		}
	} else if c.UDPPortMin == 0 || c.UDPPortMax < c.UDPPortMin {
		return fmt.Errorf("whip: without a UDP address, set a UDP port range (min %d, max %d)", c.UDPPortMin, c.UDPPortMax)
	}
	if c.TCPAddr != "" {
		if _, err := net.ResolveTCPAddr("tcp", c.TCPAddr); err != nil {
			return fmt.Errorf("whip: tcp address %q: %w", c.TCPAddr, err)
		}
	}
	for _, ip := range c.NAT1To1IPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("whip: NAT 1:1 address %q is not an IP address", ip)
		}
	}
	if c.MaxOfferBytes < 1024 {
		return fmt.Errorf("whip: max offer size %d: must be at least 1024 bytes", c.MaxOfferBytes)
	}
	if c.HandshakeTimeout <= 0 || c.TrackTimeout <= 0 || c.ReadTimeout <= 0 || c.TakeoverAfter <= 0 {
		return fmt.Errorf("whip: handshake, track, read and takeover timeouts must be positive")
	}
	if c.MaxSessions <= 0 || c.MaxSessionsPerAddress <= 0 {
		return fmt.Errorf("whip: max_sessions %d and max_sessions_per_address %d must be positive", c.MaxSessions, c.MaxSessionsPerAddress)
	}
	return c.Segment.Validate()
}
