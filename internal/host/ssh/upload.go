package ssh

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/ferry-deploy/ferry/internal/host"
)

// Unpack implements host.Host as one session: its command reads a script from the session's
// input up to a marker line (the shell's read builtin takes one byte at a time, so nothing past
// the marker is consumed), then runs it; the script runs before, pipes the rest of the input,
// a gzipped tar stream, into tar, and runs after.
func (h *SSH) Unpack(ctx context.Context, dir string, r io.Reader, before, after string) ([]byte, error) {
	s, err := h.newSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	mark := "ferry-end-of-script-" + rand.Text()
	reader := `f=$(mktemp) || exit 1; trap 'rm -f "$f" "$f.err"' EXIT; ` +
		`while IFS= read -r l; do [ "$l" = ` + mark + ` ] && break; printf '%s\n' "$l"; done >"$f"; . "$f"`
	var out lockedBuffer
	s.Stdout, s.Stderr = &out, &out
	stdin, err := s.StdinPipe()
	if err != nil {
		return nil, err
	}
	h.rt(1)
	if err := s.Start("sh -c " + host.Quote(reader)); err != nil {
		return nil, fmt.Errorf("%s: %w", h.name, err)
	}
	script := before + "\n" +
		// tar's warnings (a build's future mtimes) stay out of after's answer unless it fails.
		// The stream's modes are final (the deploying side masked them): no umask here, so a
		// non-root GNU tar writes them as they are, as BusyBox's and root's do.
		"(umask 0; gzip -dc | tar -x -o -f - -C " + host.Quote(dir) + ") 2>\"$f.err\" || { cat \"$f.err\"; echo 'unpacking the upload failed'; exit 1; }; rm -f \"$f.err\"\n" +
		after + "\n" + mark + "\n"
	src := &errReader{r: r}
	sent := make(chan error, 1)
	go func() {
		err := writeStream(stdin, script, src)
		if cerr := stdin.Close(); err == nil {
			err = cerr
		}
		sent <- err
	}()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Close()
		<-done
		return nil, ctx.Err()
	}
	h.rt(1)
	werr := <-sent
	if src.err != nil {
		return nil, src.err // the stream itself failed (the build changed): that is the cause
	}
	var ee *ssh.ExitError
	var lost *ssh.ExitMissingError
	switch {
	case errors.As(err, &ee):
		return out.Bytes(), &host.ExitError{Host: h.name, Code: ee.ExitStatus(), Signal: ee.Signal(), Output: out.String()}
	case errors.As(err, &lost):
		return nil, fmt.Errorf("connection to %s lost during the upload", h.name)
	case err != nil:
		return nil, err
	case werr != nil && !errors.Is(werr, io.EOF):
		return nil, fmt.Errorf("upload: %w", werr)
	}
	return out.Bytes(), nil
}

// writeStream writes the script, then r gzipped, in pieces of 64 kB. Every write to a channel
// is one SSH packet, and compress/flate writes 240 bytes at a time: OpenSSH's sshd, receiving
// thousands of tiny packets, grows its buffer for tar's input a few kB at a time, copying it
// whole each time, and once it falls behind an upload of 15 MB took 4 to 14 s instead of 0.35 s.
func writeStream(w io.Writer, script string, r io.Reader) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := io.WriteString(bw, script); err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if _, err := io.Copy(zw, r); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// lockedBuffer collects a session's stdout and stderr, written from two goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *lockedBuffer) String() string { return string(b.Bytes()) }

// errReader remembers the error of the stream being uploaded, as opposed to the connection's.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}
