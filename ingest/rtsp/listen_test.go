package rtsp

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"testing"
)

// tcpPair returns both ends of a loopback TCP connection, the server's end
// as bufferedListener hands it out.
func tcpPair(t *testing.T) (*bufferedConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := bufferedListener{Listener: ln}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*bufferedConn), client
}

// A connection reads straight from its socket until it records, and then
// through its buffer, without losing or reordering a byte at the switch.
func TestBufferedConnKeepsEveryByteAcrossTheSwitch(t *testing.T) {
	srv, client := tcpPair(t)
	sent := make([]byte, 300<<10)
	_, _ = rand.Read(sent)
	go func() { _, _ = client.Write(sent) }()

	got := make([]byte, 0, len(sent))
	buf := make([]byte, 4096) // gortsplib's read size
	for len(got) < 20000 {
		n, err := srv.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if srv.r.Load() != nil {
		t.Fatal("a connection that has not recorded has a read buffer")
	}
	bufferReads(srv)
	for len(got) < len(sent) {
		n, err := srv.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	if srv.r.Load() == nil {
		t.Error("a recording connection reads without its buffer")
	}
	if !bytes.Equal(got, sent) {
		t.Error("the bytes read differ from those sent")
	}
}

// bufferReads reaches the socket under RTSPS's TLS, and leaves any other
// connection alone.
func TestBufferReadsUnderTLS(t *testing.T) {
	srv, client := tcpPair(t)
	bufferReads(tls.Server(srv, &tls.Config{}))
	if !srv.want.Load() {
		t.Error("the connection under TLS was not given its buffer")
	}
	bufferReads(client) // a plain net.Conn: nothing to do, no panic
	go func() { _, _ = client.Write([]byte("x")) }()
	if _, err := io.ReadFull(srv, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if srv.r.Load() == nil {
		t.Error("no buffer after bufferReads and a read")
	}
}
