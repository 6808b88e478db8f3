package ssh

import (
	"bytes"
	"testing"
)

// The exit marker (with the newline the command line puts before it) is found and removed however the stream is cut into writes, and what comes
// around it is forwarded whole.
func TestExitMarkerAcrossWrites(t *testing.T) {
	const marker = "ferry-exit-ABC"
	stream := "ferry-pid 42\nwarn: a\nferry-exi\n\nwarn: b\n\n" + marker + " 3\nlater\n"
	want := "warn: a\nferry-exi\n\nwarn: b\nlater\n"
	for size := 1; size <= len(stream); size++ {
		var out bytes.Buffer
		w := &pidWriter{next: &out, known: make(chan struct{}), marker: []byte("\n" + marker + " "), exited: make(chan int, 1)}
		for i := 0; i < len(stream); i += size {
			w.Write([]byte(stream[i:min(i+size, len(stream))]))
		}
		if out.String() != want || w.pid != 42 {
			t.Fatalf("writes of %d bytes: forwarded %q (pid %d), want %q", size, out.String(), w.pid, want)
		}
		select {
		case code := <-w.exited:
			if code != 3 {
				t.Fatalf("writes of %d bytes: exit status %d, want 3", size, code)
			}
		default:
			t.Fatalf("writes of %d bytes: the marker was not seen", size)
		}
	}
}
