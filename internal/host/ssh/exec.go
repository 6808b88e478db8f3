package ssh

import (
	"bytes"
	"context"
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
	line.WriteString("exec env")
	for _, kv := range c.Env {
		line.WriteString(" " + host.Quote(kv))
	}
	line.WriteString(" sh -c " + host.Quote(c.Script))
	pid := &pidWriter{next: c.Stderr, known: make(chan struct{})}
	s.Stdout, s.Stderr = c.Stdout, pid
	if s.Stdout == nil {
		s.Stdout = io.Discard
	}
	h.rt(1)
	if err := s.Start(line.String()); err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
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

// pidWriter reads the "ferry-pid N" line a command prints first on stderr and forwards the rest.
type pidWriter struct {
	mu    sync.Mutex
	next  io.Writer
	head  []byte
	pid   int
	known chan struct{}
}

func (w *pidWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
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
	if w.next != nil && len(p) > 0 {
		if _, err := w.next.Write(p); err != nil {
			return n, err
		}
	}
	return n, nil
}
