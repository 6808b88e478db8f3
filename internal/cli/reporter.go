package cli

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"
)

// reporter prints one line per step per host to stderr:
//
//	local  upload    20261127-101502: 2,013 files, 1 sent (4.1 kB), 2,012 reused (0.21s)
type reporter struct {
	mu      sync.Mutex
	w       io.Writer
	quiet   bool
	partial map[string][]byte // hook output not yet ended by a newline, per host
}

func newReporter(g *globals) *reporter {
	return &reporter{w: g.stderr, quiet: g.quiet || g.json, partial: map[string][]byte{}}
}

func (r *reporter) Step(host, step, msg string, took time.Duration) {
	if r.quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "%-6s %-9s %s (%s)\n", host, step, msg, round(took))
}

func (r *reporter) Warn(host, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "ferry: warning: %s: %s\n", host, msg)
}

// Output prints command output line by line, each prefixed by its host.
func (r *reporter) Output(host string, p []byte) {
	if r.quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	buf := append(r.partial[host], p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(r.w, "%-6s | %s\n", host, buf[:i])
		buf = buf[i+1:]
	}
	r.partial[host] = append([]byte(nil), buf...)
}

// round keeps durations readable: 1.234s, 12ms, 840µs.
func round(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
