// Package probe is the zero-downtime load generator: a few raw keep-alive HTTP/1.1 connections
// that request pages as fast as they are answered, with no retries of any kind. A request that
// fails on a connection is counted as a connection error, never repeated; the next request goes
// out on a new connection. Tests and bench/zdd use it to count what a deploy breaks.
package probe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sync"
	"time"
)

// The pages of the zero-downtime tests and benchmark name their release in a meta tag and load
// one fingerprinted script.
var (
	ReleaseMarker = regexp.MustCompile(`<meta name="release" content="([^"]+)">`)
	ScriptAsset   = regexp.MustCompile(`src="(/assets/[^"]+)"`)
)

// Result is one request.
type Result struct {
	Start, End time.Time
	Status     int    // 0 when the connection failed
	Err        string // the connection error, if any
	Marker     string // what Options.Marker matched in the body
	Broken     bool   // a page whose asset did not load
}

// Options say what to request.
type Options struct {
	Addr        string         // host:port
	Path        string         // the page, e.g. "/"
	Conns       int            // keep-alive connections; default 4
	Marker      *regexp.Regexp // pulled out of each page body, e.g. the release it shows
	AssetRegexp *regexp.Regexp // if set, its first group names an asset of the page to fetch too
}

// Run requests until ctx ends and returns every result.
func Run(ctx context.Context, o Options) []Result {
	if o.Conns == 0 {
		o.Conns = 4
	}
	var mu sync.Mutex
	var all []Result
	var wg sync.WaitGroup
	for range o.Conns {
		wg.Go(func() {
			rs := loop(ctx, o)
			mu.Lock()
			all = append(all, rs...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return all
}

func loop(ctx context.Context, o Options) []Result {
	var out []Result
	var c *conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for ctx.Err() == nil {
		if c == nil {
			nc, err := net.DialTimeout("tcp", o.Addr, 2*time.Second)
			if err != nil {
				now := time.Now()
				out = append(out, Result{Start: now, End: now, Err: "dial: " + err.Error()})
				// The server refused outright; pause a little so a down server does not spin.
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
			c = &conn{Conn: nc, r: bufio.NewReader(nc)}
		}
		r := Result{Start: time.Now()}
		status, body, err := c.get(o.Addr, o.Path)
		if err == nil && o.AssetRegexp != nil && status == http.StatusOK {
			if m := o.AssetRegexp.FindStringSubmatch(body); m != nil {
				var astatus int
				astatus, _, err = c.get(o.Addr, m[1])
				r.Broken = err == nil && astatus != http.StatusOK
			}
		}
		r.End = time.Now()
		if err != nil {
			if ctx.Err() != nil {
				break // cut by the end of the run, not by the server
			}
			r.Err = err.Error()
			c.Close()
			c = nil
		} else {
			r.Status = status
			if o.Marker != nil {
				if m := o.Marker.FindStringSubmatch(body); len(m) > 1 {
					r.Marker = m[1]
				}
			}
		}
		out = append(out, r)
	}
	return out
}

type conn struct {
	net.Conn
	r *bufio.Reader
}

// get sends one GET on the connection and reads the whole response.
func (c *conn) get(host, path string) (int, string, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ferry-probe\r\n\r\n", path, host); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, "", err
	}
	if resp.Close {
		return resp.StatusCode, string(body), fmt.Errorf("server closed the connection after %s", path)
	}
	return resp.StatusCode, string(body), nil
}

// Summary counts results.
type Summary struct {
	Requests, Non2xx, ConnErrors, Broken int
	FirstErrors                          []string
}

// Summarize counts rs.
func Summarize(rs []Result) Summary {
	var s Summary
	for _, r := range rs {
		s.Requests++
		switch {
		case r.Err != "":
			s.ConnErrors++
			if len(s.FirstErrors) < 5 {
				s.FirstErrors = append(s.FirstErrors, r.Err)
			}
		case r.Status < 200 || r.Status > 299:
			s.Non2xx++
			if len(s.FirstErrors) < 5 {
				s.FirstErrors = append(s.FirstErrors, fmt.Sprintf("HTTP %d", r.Status))
			}
		}
		if r.Broken {
			s.Broken++
		}
	}
	return s
}

func (s Summary) String() string {
	return fmt.Sprintf("%d requests, %d non-2xx, %d connection errors, %d broken page loads", s.Requests, s.Non2xx, s.ConnErrors, s.Broken)
}
