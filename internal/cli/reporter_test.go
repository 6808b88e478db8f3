package cli

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReporterPartialLines: output that does not end with a newline is held until its host's
// command ends (a step or a warning for that host, or the end of the run), then printed on a
// line of its own, prefixed by the host. Another host's output does not end it.
func TestReporterPartialLines(t *testing.T) {
	var buf bytes.Buffer
	r := newReporter(&globals{stderr: &buf})
	r.Output("web1", []byte("no new"))
	r.Output("web2", []byte("web2 says\nhalf"))
	r.Output("web1", []byte("line"))
	r.Step("web1", "hook", "printf 'no newline'", 0)
	r.Output("web1", []byte("next\n"))
	r.Step("web1", "hook", "echo next", 0)
	r.Output("web1", []byte("fails"))
	r.Warn("web1", "after_activate hook failed")
	r.Output("web2", []byte(" a line"))
	r.Output("web3", []byte("cut off"))
	r.flush()
	r.flush()
	want := `web2   | web2 says
web1   | no newline
web1   hook      printf 'no newline' (0s)
web1   | next
web1   hook      echo next (0s)
web1   | fails
ferry: warning: web1: after_activate hook failed
web2   | half a line
web3   | cut off
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestReporterEscapes: steps are one line; warnings keep their lines but lose escape sequences.
func TestReporterEscapes(t *testing.T) {
	var buf bytes.Buffer
	r := newReporter(&globals{stderr: &buf})
	r.Step("web1", "rollback", "current -> releases/x\x1b[2J (was y\nz)", 0)
	r.Warn("web1", "took over a stale lock of \x1b]0;title\a: gone\nits output:\n\tat main")
	want := `web1   rollback  current -> releases/x\x1b[2J (was y\nz) (0s)
ferry: warning: web1: took over a stale lock of \x1b]0;title\a: gone
its output:
	at main
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
