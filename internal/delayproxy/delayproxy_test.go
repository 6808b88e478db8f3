package delayproxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"testing"
	"time"
)

// serve runs handle for every connection to a new loopback listener until the test ends.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return ln.Addr().String()
}

func dial(t *testing.T, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

// A request and its response cross the proxy twice: they take at least a round trip, and the
// proxy counts exactly the bytes of each.
func TestRoundTrip(t *testing.T) {
	target := serve(t, func(c net.Conn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			io.WriteString(c, "pong: "+line)
		}
	})
	const oneWay = 25 * time.Millisecond
	p, err := Start(t, target, oneWay)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	start := time.Now()
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	elapsed := time.Since(start)
	if err != nil || got != "pong: ping\n" {
		t.Fatalf("response %q, %v", got, err)
	}
	if elapsed < 2*oneWay {
		t.Errorf("request and response took %v, less than the round trip %v", elapsed, 2*oneWay)
	}
	if up, down := p.BytesUp(), p.BytesDown(); up != 5 || down != 11 {
		t.Errorf("counted %d bytes up and %d down, want 5 and 11", up, down)
	}
	p.Reset()
	if up, down := p.BytesUp(), p.BytesDown(); up != 0 || down != 0 {
		t.Errorf("after Reset: %d bytes up and %d down", up, down)
	}
}

// Chunks in flight are queued, not slept on one by one: 4 MB at 100 ms one way arrive intact
// in well under the seconds that even 64 kB chunks, each delayed in turn, would take.
func TestPipelines(t *testing.T) {
	target := serve(t, func(c net.Conn) {
		h := sha256.New()
		if _, err := io.Copy(h, c); err == nil {
			c.Write(h.Sum(nil))
		}
	})
	const oneWay, size = 100 * time.Millisecond, 4 << 20
	p, err := Start(t, target, oneWay)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)

	c := dial(t, p)
	start := time.Now()
	go func() {
		c.Write(data)
		c.CloseWrite() // the server hashes until the end of the stream
	}()
	got, err := io.ReadAll(c)
	elapsed := time.Since(start)
	if err != nil || !bytes.Equal(got, want[:]) {
		t.Fatalf("server's hash %x, %v; want %x", got, err, want)
	}
	if up, down := p.BytesUp(), p.BytesDown(); up != size || down != sha256.Size {
		t.Errorf("counted %d bytes up and %d down, want %d and %d", up, down, size, sha256.Size)
	}
	// Sleeping per chunk would take at least size/chunkSize × oneWay = 6.4 s.
	if limit := 3 * time.Second; elapsed > limit {
		t.Errorf("4 MB took %v through the proxy, more than %v: chunks are not pipelined", elapsed, limit)
	}
	if elapsed < 2*oneWay {
		t.Errorf("4 MB and the answer took %v, less than the round trip %v", elapsed, 2*oneWay)
	}
}

// Close ends the connections it carries, not only the listener.
func TestCloseEndsConnections(t *testing.T) {
	target := serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	p, err := Start(nil, target, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	io.WriteString(c, "hello")
	for p.BytesUp() < 5 { // the proxy has the connection to the target once it has read from it
		time.Sleep(time.Millisecond)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("read from a closed proxy succeeded")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("the proxy still accepts connections after Close")
	}
}
