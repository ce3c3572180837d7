package rtsp

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// listeners are the sockets of a server, opened by New before Run so that
// the addresses they are bound to (port 0: ports the kernel picks) are known
// from the start. gortsplib takes them through its Listen and ListenPacket
// hooks, each once, and closes them when it closes.
type listeners struct {
	guard *guard // nil: connections are not guarded
	mu    sync.Mutex
	tcp   net.Listener
	rtp   net.PacketConn // nil without UDP
	rtcp  net.PacketConn
}

// listen opens the TCP listener on addr and, when rtpAddr is set, the UDP
// pair for RTP and RTCP.
func listen(addr, rtpAddr, rtcpAddr string) (*listeners, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen rtsp on %s: %w", addr, err)
	}
	l := &listeners{tcp: ln}
	if rtpAddr == "" {
		return l, nil
	}
	if l.rtp, l.rtcp, err = listenUDPPair(rtpAddr, rtcpAddr); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return l, nil
}

// listenUDPPair opens the RTP and RTCP sockets: on the ports given (RTP
// even, RTCP the next one, as RFC 7826 and gortsplib want), or, when both
// ports are 0, on a free even port and the one after it.
func listenUDPPair(rtpAddr, rtcpAddr string) (net.PacketConn, net.PacketConn, error) {
	rtpHost, rtpPort, err := splitPort(rtpAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("rtp address %q: %w", rtpAddr, err)
	}
	rtcpHost, rtcpPort, err := splitPort(rtcpAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("rtcp address %q: %w", rtcpAddr, err)
	}
	if rtpPort != 0 || rtcpPort != 0 {
		rtp, err := net.ListenPacket("udp", rtpAddr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen rtp on %s: %w", rtpAddr, err)
		}
		rtcp, err := net.ListenPacket("udp", rtcpAddr)
		if err != nil {
			_ = rtp.Close()
			return nil, nil, fmt.Errorf("listen rtcp on %s: %w", rtcpAddr, err)
		}
		return rtp, rtcp, nil
	}
	if rtpHost != rtcpHost {
		return nil, nil, fmt.Errorf("rtp %s and rtcp %s on port 0: give both the same host", rtpAddr, rtcpAddr)
	}
	// Port 0: take the port the kernel gives, make it even, and try its
	// successor; another process may hold it, so try again a few times.
	for range 100 {
		probe, err := net.ListenPacket("udp", net.JoinHostPort(rtpHost, "0"))
		if err != nil {
			return nil, nil, fmt.Errorf("listen rtp on %s: %w", rtpAddr, err)
		}
		p := probe.LocalAddr().(*net.UDPAddr).Port
		rtp := probe
		if p%2 == 1 {
			_ = probe.Close()
			p--
			if rtp, err = net.ListenPacket("udp", net.JoinHostPort(rtpHost, strconv.Itoa(p))); err != nil {
				continue
			}
		}
		rtcp, err := net.ListenPacket("udp", net.JoinHostPort(rtpHost, strconv.Itoa(p+1)))
		if err != nil {
			_ = rtp.Close()
			continue
		}
		return rtp, rtcp, nil
	}
	return nil, nil, fmt.Errorf("listen rtp and rtcp on %s: found no free even port followed by a free one", rtpHost)
}

// splitPort splits host:port, with the port as a number.
func splitPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not a number", port)
	}
	return host, int(p), nil
}

// hooks returns gortsplib's Listen and ListenPacket: each hands over the
// socket opened for that address, once.
func (l *listeners) hooks() (func(string, string) (net.Listener, error), func(string, string) (net.PacketConn, error)) {
	listen := func(_, address string) (net.Listener, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.tcp == nil || address != l.tcp.Addr().String() {
			return nil, fmt.Errorf("rtsp: no listener opened for %s", address)
		}
		ln := l.tcp
		l.tcp = nil
		return bufferedListener{Listener: ln, g: l.guard}, nil
	}
	listenPacket := func(_, address string) (net.PacketConn, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, pc := range []*net.PacketConn{&l.rtp, &l.rtcp} {
			if *pc != nil && (*pc).LocalAddr().String() == address {
				c := *pc
				*pc = nil
				return c, nil
			}
		}
		return nil, fmt.Errorf("rtsp: no udp socket opened for %s", address)
	}
	return listen, listenPacket
}

// close closes the sockets gortsplib has not taken.
func (l *listeners) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	if l.tcp != nil {
		errs = append(errs, l.tcp.Close())
		l.tcp = nil
	}
	for _, pc := range []*net.PacketConn{&l.rtp, &l.rtcp} {
		if *pc != nil {
			errs = append(errs, (*pc).Close())
			*pc = nil
		}
	}
	return errors.Join(errs...)
}

// connReadBuffer is how much of a recording connection's bytes one read
// takes in. gortsplib reads through a 4 KB buffer: a picture of a 2 Mbit/s
// camera (~10 KB, a keyframe many times that) arrives in one burst of RTP
// packets and cost a read system call per 4 KB, each woken by the poller.
// With a larger buffer below it, one call takes what has arrived.
const connReadBuffer = 64 << 10

// bufferedListener hands out connections that can be given a
// connReadBuffer buffer (below TLS, for RTSPS) once they record: a
// connection that has not authenticated, or never records, reads straight
// from its socket, so that idle or hostile connections cost no more than
// gortsplib's own buffer. It also bounds what such connections can hold:
// gortsplib keeps a connection with no session open for ever, so one that
// has not started recording within guard.handshake is closed, and an
// address with guard.perAddress such connections open has its next ones
// closed at accept.
type bufferedListener struct {
	net.Listener
	g *guard
}

// guard counts the connections that have not started recording, by
// client address.
type guard struct {
	handshake  time.Duration
	perAddress int
	refused    func(reason string) // counts a connection closed by the guard
	mu         sync.Mutex
	pending    map[string]int
}

func newGuard(handshake time.Duration, perAddress int, refused func(string)) *guard {
	return &guard{handshake: handshake, perAddress: perAddress, refused: refused, pending: map[string]int{}}
}

func (l bufferedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		bc := &bufferedConn{Conn: c, g: l.g, addr: hostOf(c.RemoteAddr().String())}
		if l.g == nil {
			return bc, nil
		}
		l.g.mu.Lock()
		full := l.g.pending[bc.addr] >= l.g.perAddress
		if !full {
			l.g.pending[bc.addr]++
		}
		l.g.mu.Unlock()
		// Counted before the close, so that the count is there by the
		// time the client sees the connection end.
		if full {
			l.g.refused("connection_limit")
			_ = c.Close()
			continue
		}
		bc.timer = time.AfterFunc(l.g.handshake, func() {
			if bc.settle() {
				l.g.refused("handshake_timeout")
				_ = c.Close()
			}
		})
		return bc, nil
	}
}

// bufferedConn is an accepted connection, read through its buffer once
// bufferReads was called for it; the rest (writes, deadlines, addresses,
// close) is the connection's own. A read deadline still applies: the buffer
// reads only when it is empty, and then from the connection.
type bufferedConn struct {
	net.Conn
	want atomic.Bool                  // bufferReads was called
	r    atomic.Pointer[bufio.Reader] // made by the first Read after want

	g       *guard // nil: no guard
	addr    string // the client's address, without its port
	timer   *time.Timer
	settled atomic.Bool // no longer counted as pending
}

// settle takes the connection off its address's pending count, once; it
// reports whether this call did.
func (c *bufferedConn) settle() bool {
	if c.g == nil || !c.settled.CompareAndSwap(false, true) {
		return false
	}
	c.g.mu.Lock()
	if c.g.pending[c.addr]--; c.g.pending[c.addr] <= 0 {
		delete(c.g.pending, c.addr)
	}
	c.g.mu.Unlock()
	return true
}

// recording marks the connection as one that records: read through its
// buffer, no longer pending, no handshake deadline.
func (c *bufferedConn) recording() {
	c.want.Store(true)
	if c.settle() && c.timer != nil {
		c.timer.Stop()
	}
}

func (c *bufferedConn) Close() error {
	if c.settle() && c.timer != nil {
		c.timer.Stop()
	}
	return c.Conn.Close()
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	r := c.r.Load()
	if r == nil {
		if !c.want.Load() {
			return c.Conn.Read(p)
		}
		// Reads are not concurrent (gortsplib has one reader a
		// connection, TLS reads under its lock), and nothing was read
		// ahead so far: the buffer starts where the socket is.
		r = bufio.NewReaderSize(c.Conn, connReadBuffer)
		c.r.Store(r)
	}
	return r.Read(p)
}

// bufferReads gives an accepted connection (or a TLS connection over one)
// its read buffer from its next read on; other connections are left alone.
func bufferReads(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if bc, ok := nc.(*bufferedConn); ok {
		bc.recording()
	}
}
