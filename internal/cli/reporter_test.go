package cli

import (
	"bytes"
	"io"
	"testing"

	"github.com/ferry-deploy/ferry/internal/deploy"
	"github.com/ferry-deploy/ferry/internal/transfer"
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
	r.Step(deploy.Step{Host: "web1", Kind: deploy.StepHook, Command: "printf 'no newline'"})
	r.Output("web1", []byte("next\n"))
	r.Step(deploy.Step{Host: "web1", Kind: deploy.StepHook, Command: "echo next"})
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
	r.Step(deploy.Step{Host: "web1", Kind: deploy.StepRollback, Release: "x\x1b[2J", Previous: "y\nz"})
	r.Warn("web1", "took over a stale lock of \x1b]0;title\a: gone\nits output:\n\tat main")
	want := `web1   rollback  current -> releases/x\x1b[2J (was y\nz, now marked bad) (0s)
ferry: warning: web1: took over a stale lock of \x1b]0;title\a: gone
its output:
	at main
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestReporterWordsEachStep: every kind of step reads as a line of words, and with --json is
// its fields plus those words.
func TestReporterWordsEachStep(t *testing.T) {
	stats := &transfer.Stats{Files: 20000, Sent: 1, Reused: 19999, Carried: 2, Bytes: 208910, SentBytes: 27}
	for _, tc := range []struct {
		step deploy.Step
		want string
	}{
		{deploy.Step{Kind: deploy.StepScan, Files: &transfer.Stats{Files: 20000, Bytes: 208910}, Dir: "/b"}, "20,000 files (208.9 kB) in /b"},
		{deploy.Step{Kind: deploy.StepUpload, Release: "r2", Files: stats, From: "r1", OnWire: 25000}, "r2: 20,000 files, 1 sent (27 B), 25.0 kB on the wire, 19,999 reused from r1, 2 old assets carried over"},
		{deploy.Step{Kind: deploy.StepExport, Ref: "v1", Commit: "0123456789abcdef", Dir: "/tmp/x"}, "v1 (commit 0123456789ab) into /tmp/x"},
		{deploy.Step{Kind: deploy.StepLock}, "acquired after waiting for another run"},
		{deploy.Step{Kind: deploy.StepShared, Paths: []string{".env"}, From: "deploy/env"}, "shared/.env replaced by deploy/env"},
		{deploy.Step{Kind: deploy.StepStart, Service: "app", Socket: "/srv/run/app.r2.sock"}, "app started, answers on /srv/run/app.r2.sock"},
		{deploy.Step{Kind: deploy.StepStart, Service: "app", Socket: "/s", Reused: true}, "app still running, answers on /s"},
		{deploy.Step{Kind: deploy.StepActivate, Release: "r2"}, "current -> releases/r2"},
		{deploy.Step{Kind: deploy.StepRollback, Release: "r1", Previous: "r2"}, "current -> releases/r1 (was r2, now marked bad)"},
		{deploy.Step{Kind: deploy.StepRollback, Release: "r1", Previous: "r2", Reverted: true}, "current -> releases/r1; r2 marked bad"},
		{deploy.Step{Kind: deploy.StepHealth, URL: "http://127.0.0.1/", Status: 200}, "http://127.0.0.1/: 200"},
		{deploy.Step{Kind: deploy.StepCleanup, Removed: []string{"a"}}, "removed 1 old release"},
		{deploy.Step{Kind: deploy.StepCleanup, Removed: []string{"a", "b"}, Kept: 5}, "removed 2 releases, kept up to 5"},
		{deploy.Step{Kind: deploy.StepStop, Service: "app", Release: "r1", Signal: "TERM", Drain: "30s"}, "app of release r1 drains (SIGTERM, then SIGKILL after 30s)"},
		{deploy.Step{Kind: "reload", Service: "php-fpm"}, "php-fpm"},
	} {
		if got := describe(tc.step); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.step.Kind, got, tc.want)
		}
	}
	var out bytes.Buffer
	r := newReporter(&globals{stderr: io.Discard, stdout: &out, json: true})
	r.Step(deploy.Step{Host: "web1", Kind: deploy.StepUpload, Release: "r2", Files: stats, From: "r1", Took: 1500})
	want := `{"type":"step","host":"web1","step":"upload","took_ns":1500,"release":"r2","files":{"files":20000,"sent":1,"reused":19999,"carried":2,"bytes":208910,"sent_bytes":27},"from":"r1","message":"r2: 20,000 files, 1 sent (27 B), 19,999 reused from r1, 2 old assets carried over"}` + "\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("--json (-want +got):\n%s", diff)
	}
}
