package webtest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// dial connects to s as root with c's key, checking the host key against c's known_hosts.
func dial(t *testing.T, c *SSHClient, s *SSHD) *ssh.Client {
	t.Helper()
	pem, err := os.ReadFile(c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	hostKeys, err := knownhosts.New(c.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// run runs cmd in a session of its own and returns its stdout, its stderr and its error.
func run(t *testing.T, client *ssh.Client, cmd string) (string, string, error) {
	t.Helper()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	err = sess.Run(cmd)
	return stdout.String(), stderr.String(), err
}

// mustRun is run that fails the test unless cmd succeeds; it returns stdout without the
// trailing newline.
func mustRun(t *testing.T, client *ssh.Client, cmd string) string {
	t.Helper()
	stdout, stderr, err := run(t, client, cmd)
	if err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", cmd, err, stdout, stderr)
	}
	return strings.TrimSuffix(stdout, "\n")
}

func TestSSHDBusyBox(t *testing.T) {
	c := NewSSHClient(t)
	s := StartSSHDWith(t, c, SSHDOptions{BusyBox: true})
	if s.BusyBoxDir == "" {
		t.Fatal("BusyBoxDir is empty in BusyBox mode")
	}
	busybox, err := filepath.EvalSymlinks(filepath.Join(s.BusyBoxDir, "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	client := dial(t, c, s)

	t.Run("PATH", func(t *testing.T) {
		if got := mustRun(t, client, `echo "$PATH"`); got != s.BusyBoxDir {
			t.Errorf("PATH = %q, want %q", got, s.BusyBoxDir)
		}
		for _, name := range []string{"tar", "sh", "readlink", "find", "mv", "ln"} {
			if got, want := mustRun(t, client, "command -v "+name), filepath.Join(s.BusyBoxDir, name); got != want {
				t.Errorf("command -v %s = %q, want %q", name, got, want)
			}
		}
		// Nothing outside BusyBox is found: bash and GNU-only tools are not there.
		for _, name := range []string{"bash", "dash", "ssh", "sshd", "python3"} {
			if out, _, err := run(t, client, "command -v "+name); err == nil {
				t.Errorf("command -v %s found %q outside BusyBox", name, out)
			}
		}
		if got := mustRun(t, client, `echo "$SSH_ORIGINAL_COMMAND"`); got != "" {
			t.Errorf("SSH_ORIGINAL_COMMAND leaks into the session: %q", got)
		}
	})

	t.Run("shell", func(t *testing.T) {
		// The command substitution keeps the shell from exec'ing its last command.
		if got := mustRun(t, client, `x=$(readlink /proc/$$/exe); echo "$x"`); got != busybox {
			t.Errorf("the session's shell is %q, want %q", got, busybox)
		}
		if got := mustRun(t, client, `sh -c 'x=$(ls -l /proc/$$/exe); echo "$x"'`); !strings.HasSuffix(got, "-> "+busybox) {
			t.Errorf("sh is %q, want a link to %q", got, busybox)
		}
		// The shell is sshd's own child: the login shell that ran the forced command exec'ed.
		if got := mustRun(t, client, `x=$(readlink /proc/$PPID/exe); echo "$x"`); !strings.HasPrefix(filepath.Base(got), "sshd") {
			t.Errorf("the session shell's parent is %q, want sshd", got)
		}
		// A shell request (no command) gets busybox sh too.
		sess, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		var out, errOut bytes.Buffer
		sess.Stdout, sess.Stderr = &out, &errOut
		sess.Stdin = strings.NewReader("x=$(readlink /proc/$$/exe); echo \"$x $PATH\"\nexit 0\n")
		if err := sess.Shell(); err != nil {
			t.Fatal(err)
		}
		if err := sess.Wait(); err != nil {
			t.Fatalf("shell: %v\n%s%s", err, out.String(), errOut.String())
		}
		if got, want := strings.TrimSpace(out.String()), busybox+" "+s.BusyBoxDir; got != want {
			t.Errorf("interactive shell says %q (stderr %q), want %q", got, errOut.String(), want)
		}
	})

	t.Run("applets", func(t *testing.T) {
		out, errOut, _ := run(t, client, "readlink --version")
		if strings.Contains(out+errOut, "GNU coreutils") {
			t.Errorf("readlink --version is GNU's: %s%s", out, errOut)
		}
		out, errOut, err := run(t, client, "find --version")
		if err == nil && !strings.Contains(out+errOut, "BusyBox") {
			t.Errorf("find --version succeeded without BusyBox: %s%s", out, errOut)
		}
		if strings.Contains(out+errOut, "GNU findutils") {
			t.Errorf("find --version is GNU's: %s%s", out, errOut)
		}
		out, errOut, _ = run(t, client, "tar --help")
		if !strings.Contains(out+errOut, "BusyBox") {
			t.Errorf("tar --help does not name BusyBox: %s%s", out, errOut)
		}
		// The applets do the work ferry needs: a tar round trip and readlink -f.
		dir := t.TempDir()
		mustRun(t, client, "cd "+dir+" && mkdir -p a/b && echo hi >a/b/f && ln -s b a/l && tar -cf x.tar a && mkdir y && tar -xf x.tar -C y")
		if got, want := mustRun(t, client, "readlink -f "+dir+"/y/a/l/f"), filepath.Join(dir, "y/a/b/f"); got != want {
			t.Errorf("readlink -f = %q, want %q", got, want)
		}
	})

	t.Run("sftp", func(t *testing.T) {
		sc, err := sftp.NewClient(client)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		fi, err := sc.Stat(filepath.Join(dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != 5 {
			t.Errorf("size %d, want 5", fi.Size())
		}
		if err := os.WriteFile(filepath.Join(dir, "g"), []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		// PosixRename replaces an existing target (posix-rename@openssh.com).
		if err := sc.PosixRename(filepath.Join(dir, "f"), filepath.Join(dir, "g")); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Stat(filepath.Join(dir, "f")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat of the renamed file: %v, want not exist", err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "g")); err != nil || string(b) != "hello" {
			t.Errorf("target after rename: %q, %v", b, err)
		}
		w, err := sc.Create(filepath.Join(dir, "h"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("via sftp")); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "h")); err != nil || string(b) != "via sftp" {
			t.Errorf("file written over SFTP: %q, %v", b, err)
		}
	})
}

// TestSSHDDefaultIsNotBusyBox checks the contrast that makes TestSSHDBusyBox meaningful: the
// default server's sessions get Debian's GNU userland.
func TestSSHDDefaultIsNotBusyBox(t *testing.T) {
	if _, err := os.Stat("/usr/bin/readlink"); err != nil {
		t.Skip("no /usr/bin/readlink")
	}
	c := NewSSHClient(t)
	s := StartSSHD(t, c, false)
	if s.BusyBoxDir != "" {
		t.Errorf("BusyBoxDir = %q without BusyBox mode", s.BusyBoxDir)
	}
	client := dial(t, c, s)
	if out := mustRun(t, client, "readlink --version"); !strings.Contains(out, "GNU coreutils") {
		t.Errorf("readlink --version on the default server: %q", out)
	}
	sc, err := sftp.NewClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := sc.Stat("/"); err != nil {
		t.Error(err)
	}
}
