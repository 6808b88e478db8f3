package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ferry-deploy/ferry/internal/host"
)

// Run implements host.Host. sshd starts every session's command as the leader of a new session
// and process group, so the command's first act is to report its pid; when ctx ends or the
// timeout passes, the whole group is killed through the shell, not only the session: closing a
// session without a terminal leaves its processes running.
func (h *SSH) Run(ctx context.Context, c host.Command) error {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	h.rt(1)
	s, err := h.client.NewSession()
	if err != nil {
		return fmt.Errorf("%s: new session: %w", h.name, err)
	}
	defer s.Close()
	var line strings.Builder
	line.WriteString("printf 'ferry-pid %d\\n' $$ >&2; ")
	if c.Dir != "" {
		line.WriteString("cd " + host.Quote(c.Dir) + " && ")
	}
	// The environment is set by env(1): servers accept few variables through SSH's own mechanism.
	line.WriteString("env")
	for _, kv := range c.Env {
		line.WriteString(" " + host.Quote(kv))
	}
	line.WriteString(" sh -c " + host.Quote(c.Script))
	// Once the command exits, a marker says so on stderr: a process it left in the background
	// that holds its output keeps the session open, and is told apart from a command still
	// running.
	marker := "ferry-exit-" + rand.Text()
	line.WriteString("; s=$?; printf '\\n%s %d\\n' " + marker + " $s >&2; exit $s")
	pid := &pidWriter{next: c.Stderr, known: make(chan struct{}), marker: []byte("\n" + marker + " "), exited: make(chan int, 1)}
	// What a process left behind writes after Run returned goes nowhere: the caller's
	// writers are its own again.
	stdout := &gate{next: c.Stdout}
	if stdout.next == nil {
		stdout.next = io.Discard
	}
	defer stdout.close()
	defer pid.close()
	s.Stdout, s.Stderr = stdout, pid
	h.rt(1)
	if err := s.Start(line.String()); err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	var lingering <-chan time.Time
	code := 0
	for {
		select {
		case code = <-pid.exited:
			// Exited: the session should end at once, unless something holds its output.
			lingering = time.After(2 * time.Second)
		case <-lingering:
			s.Close()
			err := fmt.Errorf("%s: the command left a process running that holds its output open; redirect that process's output (cmd >/dev/null 2>&1 &)", h.name)
			if code != 0 {
				return errors.Join(&host.ExitError{Host: h.name, Code: code}, err)
			}
			return err
		case err := <-done:
			h.rt(1)
			var ee *ssh.ExitError
			var lost *ssh.ExitMissingError
			switch {
			case errors.As(err, &ee) && ee.Signal() != "":
				return &host.ExitError{Host: h.name, Code: -1, Signal: ee.Signal()}
			case errors.As(err, &ee):
				return &host.ExitError{Host: h.name, Code: ee.ExitStatus()}
			case errors.As(err, &lost):
				return fmt.Errorf("connection to %s lost while the command ran", h.name)
			}
			return err
		case <-ctx.Done():
			h.killGroup(pid)
			s.Close()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && c.Timeout > 0 {
				return &host.TimeoutError{Timeout: c.Timeout}
			}
			return ctx.Err()
		}
	}
}

// killGroup kills the process group of a command whose pid was reported.
func (h *SSH) killGroup(pid *pidWriter) {
	select {
	case <-pid.known:
	case <-time.After(5 * time.Second):
		return // the command never started
	}
	if pid.pid <= 0 {
		return
	}
	p := strconv.Itoa(pid.pid)
	kctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// dash's kill takes no "--": a negative number after the signal is a process group.
	_, _ = h.Script(kctx, "kill -KILL -"+p+" 2>/dev/null || kill -KILL "+p+" 2>/dev/null; true")
}

// pidWriter reads the "ferry-pid N" line a command prints first on stderr and forwards the rest,
// up to the marker that says the command exited (and with what status), which it sends on
// exited.
type pidWriter struct {
	mu     sync.Mutex
	next   io.Writer
	head   []byte
	pid    int
	known  chan struct{}
	marker []byte // "\n<marker> " before the exit status
	hold   []byte // what may be the start of the marker
	done   bool   // the marker was seen
	exited chan int
	closed bool
}

func (w *pidWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// gate forwards writes to next until it is closed.
type gate struct {
	mu     sync.Mutex
	next   io.Writer
	closed bool
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.next.Write(p)
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (w *pidWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if w.closed {
		return n, nil
	}
	if w.pid == 0 {
		w.head = append(w.head, p...)
		i := bytes.IndexByte(w.head, '\n')
		if i < 0 {
			return n, nil
		}
		w.pid, _ = strconv.Atoi(strings.TrimPrefix(string(w.head[:i]), "ferry-pid "))
		if w.pid == 0 {
			w.pid = -1
		}
		close(w.known)
		p = w.head[i+1:]
		w.head = nil
	}
	if !w.done && w.marker != nil {
		p = w.scan(p)
	}
	if w.next != nil && len(p) > 0 {
		if _, err := w.next.Write(p); err != nil {
			return n, err
		}
	}
	return n, nil
}

// scan returns what of p goes on, holding back what may be the start of the marker, and
// reports the exit status once the marker's line is whole.
func (w *pidWriter) scan(p []byte) []byte {
	data := append(w.hold, p...)
	w.hold = nil
	if i := bytes.Index(data, w.marker); i >= 0 {
		rest := data[i+len(w.marker):]
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			w.hold = data[i:]
			return data[:i]
		}
		code, _ := strconv.Atoi(string(rest[:j]))
		w.done = true
		w.exited <- code
		return append(data[:i:i], rest[j+1:]...)
	}
	// The longest end of data that begins the marker waits for the next write.
	for k := min(len(w.marker)-1, len(data)); k > 0; k-- {
		if bytes.HasPrefix(w.marker, data[len(data)-k:]) {
			w.hold = append([]byte(nil), data[len(data)-k:]...)
			return data[:len(data)-k]
		}
	}
	return data
}
