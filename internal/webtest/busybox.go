package webtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// sftpServer is OpenSSH's SFTP server program on Debian.
const sftpServer = "/usr/lib/openssh/sftp-server"

// setupBusyBox prepares an sshd for BusyBox mode. It makes a directory of links to busybox, one
// for each applet, and a session script that runs the client's command (or, without one, an
// interactive shell) in busybox sh with that directory as the only PATH entry. It returns the
// directory, the sftp Subsystem command and the sshd_config lines that force the script.
//
// ForceCommand applies to shell, command and subsystem requests alike: sshd runs the forced
// command through the user's login shell (root's bash, which execs it) with SSH_ORIGINAL_COMMAND
// set to the client's command, or for a subsystem request to the Subsystem's command line, and
// unset for a shell request. With "Subsystem sftp internal-sftp" that is the word internal-sftp,
// which no shell can run (sshd serves SFTP in-process only when the forced command itself is
// internal-sftp), so SFTP would fail; BusyBox mode therefore names the sftp-server program as
// the Subsystem, and busybox sh runs it by its absolute path like any other command.
func setupBusyBox(t TB) (dir, subsystem, conf string) {
	t.Helper()
	bin := Need(t, "busybox", "/bin/busybox", "/usr/bin/busybox")
	Need(t, "openssh-sftp-server", sftpServer)
	bin, err := filepath.EvalSymlinks(bin)
	if err != nil {
		t.Fatalf("%v", err)
	}
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		t.Fatalf("%s --list: %v", bin, err)
	}
	applets := strings.Fields(string(out))
	if len(applets) == 0 {
		t.Fatalf("%s --list lists no applets", bin)
	}
	dir = filepath.Join(t.TempDir(), "busybox")
	if strings.ContainsAny(dir, "'\n") {
		t.Fatalf("cannot quote %q in sshd_config", dir)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	for _, a := range append(applets, "busybox") {
		if strings.Contains(a, "/") {
			continue
		}
		if err := os.Symlink(bin, filepath.Join(dir, a)); err != nil && !os.IsExist(err) {
			t.Fatalf("%v", err)
		}
	}
	for _, a := range []string{"sh", "tar"} {
		if _, err := os.Lstat(filepath.Join(dir, a)); err != nil {
			t.Fatalf("%s has no %s applet", bin, a)
		}
	}
	sh := filepath.Join(dir, "sh")
	session := filepath.Join(dir, "session")
	// The script is run by busybox sh named on the ForceCommand line (no #! line, whose length
	// is limited). Without -l, as /etc/profile would reset PATH.
	script := fmt.Sprintf(`PATH=%[1]s
SHELL=%[2]s
export PATH SHELL
unset ENV BASH_ENV
if [ "${SSH_ORIGINAL_COMMAND+set}" = set ]; then
	cmd=$SSH_ORIGINAL_COMMAND
	unset SSH_ORIGINAL_COMMAND
	exec %[2]s -c "$cmd"
fi
exec %[2]s
`, shellQuote(dir), shellQuote(sh))
	if err := os.WriteFile(session, []byte(script), 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	// sshd splits the line into words (honouring quotes) and quotes them again for the login
	// shell.
	conf = fmt.Sprintf("PermitUserRC no\nForceCommand %s %s\n", shellQuote(sh), shellQuote(session))
	return dir, sftpServer, conf
}

// shellQuote quotes s, which holds no single quote, for a POSIX shell and sshd_config.
func shellQuote(s string) string { return "'" + s + "'" }
