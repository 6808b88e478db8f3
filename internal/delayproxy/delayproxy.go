// Package delayproxy is a TCP proxy for tests and benchmarks that puts a network's latency
// between two programs on loopback: every chunk read from either side is held for a fixed
// one-way delay before it is written to the other side. A one-way delay of 25 ms makes a round
// trip of 50 ms, as between a laptop and a server in another country, while bandwidth stays that
// of loopback: chunks in flight are queued with the time they were read, not slept on one by one,
// so a large transfer takes about one delay longer, not one delay per chunk longer. The proxy
// counts the bytes going each way, which is what tests assert on; times are for benchmarks.
//
// It does not delay the TCP handshake (a connection to the proxy is accepted at once and the
// proxy dials the target without waiting), so a measured connect costs one round trip less than
// on a real network.
package delayproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// queueLen is how many chunks may be in flight in each direction of a connection before reading
// stops: with reads of up to chunkSize bytes, 16 MiB, far more than a delay lets loopback carry
// in the benchmarks' sizes, so the queue does not throttle.
const (
	queueLen  = 256
	chunkSize = 64 << 10
)

// Cleaner registers a function to run when a test or program ends: testing.TB and
// webtest.Program are Cleaners.
type Cleaner interface{ Cleanup(func()) }

// Proxy is a running delay proxy. Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	oneWay time.Duration
	up     atomic.Int64 // client to target
	down   atomic.Int64 // target to client

	mu     sync.Mutex
	closed bool
	links  map[*link]struct{}
	wg     sync.WaitGroup
}

// Start listens on a free port of 127.0.0.1 and forwards each connection to target, holding
// data for oneWay in each direction. If c is not nil, the proxy is closed when c cleans up;
// otherwise the caller must Close it.
func Start(c Cleaner, target string, oneWay time.Duration) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, oneWay: oneWay, links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	if c != nil {
		c.Cleanup(func() { p.Close() })
	}
	return p, nil
}

// Addr is the address to connect to instead of the target, 127.0.0.1:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the port of Addr.
func (p *Proxy) Port() string {
	_, port, _ := net.SplitHostPort(p.Addr())
	return port
}

// BytesUp is the number of bytes read from clients since the start or the last Reset.
func (p *Proxy) BytesUp() int64 { return p.up.Load() }

// BytesDown is the number of bytes read from the target since the start or the last Reset.
func (p *Proxy) BytesDown() int64 { return p.down.Load() }

// Reset sets both byte counters to zero.
func (p *Proxy) Reset() {
	p.up.Store(0)
	p.down.Store(0)
}

// Close stops listening, closes every connection, data in flight included, and waits for the
// proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.ln.Close()
	for l := range p.links {
		l.close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// serve connects client to the target and runs the two directions until both have ended.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	l := &link{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.close()
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()

	var halves sync.WaitGroup
	halves.Add(2)
	go func() { defer halves.Done(); l.pipe(server, client, &p.up, p.oneWay) }()
	go func() { defer halves.Done(); l.pipe(client, server, &p.down, p.oneWay) }()
	halves.Wait()
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// link is one proxied connection.
type link struct {
	client, server net.Conn
	done           chan struct{} // closed by close
	once           sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		l.client.Close()
		l.server.Close()
	})
}

// chunk is data read from one side, to be written to the other at due. The last chunk of a
// direction has err set (io.EOF for an orderly end).
type chunk struct {
	data []byte
	due  time.Time
	err  error
}

// pipe copies src to dst, each chunk delayed by oneWay from the moment it was read, counting
// the bytes read in n. At the end of src it half-closes dst; on any other error it closes the
// whole link.
func (l *link) pipe(dst, src net.Conn, n *atomic.Int64, oneWay time.Duration) {
	q := make(chan chunk, queueLen)
	var reader sync.WaitGroup
	defer reader.Wait() // it ends at the end of src, or once close has closed src
	// The reader timestamps chunks as they arrive; the loop below writes each when it is due.
	reader.Go(func() {
		buf := make([]byte, chunkSize)
		for {
			k, err := src.Read(buf)
			c := chunk{due: time.Now().Add(oneWay), err: err}
			if k > 0 {
				n.Add(int64(k))
				c.data = append([]byte(nil), buf[:k]...)
			}
			select {
			case q <- c:
			case <-l.done:
				return
			}
			if err != nil {
				return
			}
		}
	})
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var c chunk
		select {
		case c = <-q:
		case <-l.done:
			return
		}
		if d := time.Until(c.due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-l.done:
				return
			}
		}
		if len(c.data) > 0 {
			if _, err := dst.Write(c.data); err != nil {
				l.close()
				return
			}
		}
		if c.err != nil {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && errors.Is(c.err, io.EOF) {
				cw.CloseWrite()
			} else {
				l.close()
			}
			return
		}
	}
}
