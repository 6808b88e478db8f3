package ssh

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ferry-deploy/ferry/internal/host"
)

// Script implements host.Host: ferry's scripts run one after another in one sh on the host, so
// each costs one round trip instead of a new session (two more). The script is written to that
// shell's standard input, so it has no length limit and never shows in the host's process list.
func (h *SSH) Script(ctx context.Context, script string) ([]byte, error) {
	h.shellMu.Lock()
	defer h.shellMu.Unlock()
	if h.shell == nil {
		h.rt(1) // the session; the exec is not waited for
		c, err := startShell(h.client)
		if err != nil {
			return nil, fmt.Errorf("%s: start shell: %w", h.name, err)
		}
		h.shell = c
	}
	h.rt(1)
	type answer struct {
		out    []byte
		status int
		err    error
	}
	done := make(chan answer, 1)
	sh := h.shell
	go func() {
		out, status, err := sh.run(script)
		done <- answer{out, status, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		// The shell is given up: sshd closes the session only once the script's output closes,
		// so its reader is not waited for. The next script starts a new shell.
		sh.close()
		h.shell = nil
		return nil, ctx.Err()
	}
	if a.err != nil {
		sh.close()
		h.shell = nil
		return nil, fmt.Errorf("%s: %w", h.name, a.err)
	}
	if a.status != 0 {
		return a.out, &host.ExitError{Host: h.name, Code: a.status, Output: string(a.out)}
	}
	return a.out, nil
}

// shell is a sh on the host reading commands from stdin. Each script runs in a subshell with its
// output (stdout and stderr) followed by a line with a random marker and the exit status.
//
// The shell's exec request is sent without waiting for its reply, and the first script right
// behind it: sshd handles a channel's messages in order, so the script reaches the shell's
// input. The shell's first line says it started; a host that does not answer it within a
// minute (it refused the exec, which then has no reply to send) fails the request.
//
// The command is as short as it can be, since the user's login shell reads it and may be csh
// or fish; a script in it would also show in the host's process list.
type shell struct {
	ch    ssh.Channel
	in    io.Writer
	out   *bufio.Reader
	mark  []byte
	ready bool
}

func startShell(c *ssh.Client) (*shell, error) {
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	go io.Copy(io.Discard, ch.Stderr())
	cmd := struct{ Command string }{"printf 'ferry-shell\\n'; exec sh"}
	if _, err := ch.SendRequest("exec", false, ssh.Marshal(&cmd)); err != nil {
		ch.Close()
		return nil, err
	}
	return &shell{ch: ch, in: ch, out: bufio.NewReaderSize(ch, 64<<10), mark: []byte("ferry-done-" + rand.Text())}, nil
}

func (c *shell) run(script string) ([]byte, int, error) {
	if _, err := fmt.Fprintf(c.in, "(\n%s\n) </dev/null 2>&1; printf '\\n%s %%d\\n' \"$?\"\n", script, c.mark); err != nil {
		return nil, 0, err
	}
	if !c.ready {
		watchdog := time.AfterFunc(time.Minute, func() { c.ch.Close() })
		line, err := c.out.ReadString('\n')
		watchdog.Stop()
		if err != nil || line != "ferry-shell\n" {
			return nil, 0, fmt.Errorf("the host did not start a shell (%q, %v)", line, err)
		}
		c.ready = true
	}
	var buf []byte
	for {
		line, err := c.out.ReadBytes('\n')
		if err != nil {
			return nil, 0, fmt.Errorf("shell on the host: %w", err)
		}
		if bytes.HasPrefix(line, c.mark) && (len(buf) == 0 || buf[len(buf)-1] == '\n') {
			status, err := strconv.Atoi(string(bytes.TrimSpace(line[len(c.mark):])))
			if err != nil {
				return nil, 0, fmt.Errorf("shell on the host: bad status line %q", line)
			}
			return bytes.TrimSuffix(buf, []byte("\n")), status, nil
		}
		buf = append(buf, line...)
	}
}

func (c *shell) close() { c.ch.Close() }
