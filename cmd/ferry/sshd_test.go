package main

import (
	"os"
	"path/filepath"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ferry-deploy/ferry/internal/webtest"
)

// sshd start NAME...: starts a real sshd on loopback for each NAME (Debian's OpenSSH, as every
// SSH test here) and makes NAME an alias of it in $HOME/.ssh/config, with a client key and
// known_hosts of the script's own; HOME is set to a directory of the script. The servers are
// stopped when the script ends.
// sshd stop NAME: stops NAME's server (a host that went down). Processes a host started
// detached (a socket service's) are not the server's: a script that starts them stops them.
func cmdSSHD(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || args[0] != "start" && args[0] != "stop" {
		ts.Fatalf("usage: sshd start NAME... | sshd stop NAME")
	}
	st := ts.Value(sshKey{}).(*sshState)
	tb := &scriptTB{ts: ts}
	if args[0] == "stop" {
		s := st.servers[args[1]]
		if s == nil {
			ts.Fatalf("sshd stop %s: no such server", args[1])
		}
		s.Stop()
		return
	}
	if st.client == nil {
		st.client = webtest.NewSSHClient(tb)
		home := ts.MkAbs("home")
		ts.Check(os.MkdirAll(home, 0o700))
		ts.Check(os.Symlink(st.client.Dir, filepath.Join(home, ".ssh")))
		ts.Setenv("HOME", home)
	}
	for _, name := range args[1:] {
		if st.servers[name] != nil {
			ts.Fatalf("sshd start %s: already started (a host that went down stays down)", name)
		}
		s := webtest.StartSSHD(tb, st.client, false)
		st.client.Alias(tb, name, s)
		st.servers[name] = s
	}
}

// sshKey is the key of a script's sshState among its values.
type sshKey struct{}

// sshState is what sshd made for one script.
type sshState struct {
	client  *webtest.SSHClient
	servers map[string]*webtest.SSHD
}

// scriptTB is a script as webtest's TB: failures fail the script, cleanups run at its end.
type scriptTB struct{ ts *testscript.TestScript }

func (s *scriptTB) Helper()                           {}
func (s *scriptTB) Fatalf(format string, args ...any) { s.ts.Fatalf(format, args...) }

// Skipf fails: a script cannot skip itself, and scripts/test installs what sshd needs.
func (s *scriptTB) Skipf(format string, args ...any) { s.ts.Fatalf(format, args...) }
func (s *scriptTB) Cleanup(f func())                 { s.ts.Defer(f) }
func (s *scriptTB) TempDir() string {
	dir, err := os.MkdirTemp(s.ts.Getenv("WORK"), "tmp")
	s.ts.Check(err)
	return dir
}
