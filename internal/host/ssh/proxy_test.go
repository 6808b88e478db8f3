package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/skeema/knownhosts"

	"github.com/ferry-deploy/ferry/internal/webtest"
)

// hostEntry appends a Host entry for srv to client's ssh_config, with extra lines.
func hostEntry(t *testing.T, client *webtest.SSHClient, alias string, srv *webtest.SSHD, extra ...string) {
	t.Helper()
	f, err := os.OpenFile(client.Config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "Host %s\n  HostName 127.0.0.1\n  Port %s\n  User root\n  IdentityFile %s\n", alias, srv.Port, client.KeyFile)
	for _, l := range extra {
		fmt.Fprintf(f, "  %s\n", l)
	}
	fmt.Fprintln(f)
}

func clientOptions(client *webtest.SSHClient) Options {
	return Options{ConfigFile: client.Config, KnownHostsFile: client.KnownHosts, IdentityFiles: []string{client.KeyFile}}
}

// relay is a ProxyCommand that connects to %h:%p with bash alone and relays the connection on its
// stdin and stdout, writing the pids of its two processes to pids and "%r@%n" to seen.
func relay(t *testing.T, dir string) string {
	webtest.Need(t, "bash", "/bin/bash")
	return fmt.Sprintf(`ProxyCommand bash -c 'echo %%r@%%n >> %[1]s/seen; echo $$ >> %[1]s/pids; exec 3<>/dev/tcp/%%h/%%p; cat <&3 & echo $! >> %[1]s/pids; exec cat >&3'`, dir)
}

// pidsIn reads the pids a ProxyCommand wrote to file.
func pidsIn(t *testing.T, file string) []int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// running reports whether pid is a live process (a zombie is not: it is dead, waiting for a
// parent that may never come in a container).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	state := bytes.Fields(stat[bytes.LastIndexByte(stat, ')')+1:])
	return len(state) > 0 && state[0][0] != 'Z' && state[0][0] != 'X'
}

// requireGone fails unless every pid has ended shortly after its connection was closed.
func requireGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range pids {
		for running(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("ProxyCommand process %d still runs after Close", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// A host reached only through a ProxyCommand runs scripts and takes uploads, the bytes are
// counted, and closing the host ends the command and every process it started.
func TestProxyCommand(t *testing.T) {
	client := webtest.NewSSHClient(t)
	srv := webtest.StartSSHD(t, client, false)
	dir := t.TempDir()
	hostEntry(t, client, "web1", srv, relay(t, dir))
	h, err := Dial(context.Background(), "web1", "root@web1", clientOptions(client))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			h.Close()
		}
	}()
	pids := pidsIn(t, filepath.Join(dir, "pids"))
	if len(pids) != 2 {
		t.Fatalf("the ProxyCommand wrote pids %v, want 2", pids)
	}
	// %r is the user given, %n the name given, before HostName.
	if seen, _ := os.ReadFile(filepath.Join(dir, "seen")); string(seen) != "root@web1\n" {
		t.Errorf("%%r@%%n expanded to %q, want root@web1", seen)
	}

	out, err := h.Script(context.Background(), "echo through the proxy")
	if err != nil || string(out) != "through the proxy\n" {
		t.Fatalf("Script = %q, %v", out, err)
	}
	target := t.TempDir()
	body := semiCompressible(1 << 20)
	if _, err := h.Unpack(context.Background(), target, bytes.NewReader(tarOf(t, "app", body)), "", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(target, "app")); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("uploaded %d bytes (%v), want %d", len(got), err, len(body))
	}
	if sent, received := h.BytesOnWire(); sent < 100<<10 || received == 0 {
		t.Errorf("BytesOnWire = %d sent, %d received: the proxy connection is not counted", sent, received)
	}

	for _, pid := range pids {
		if !running(pid) {
			t.Fatalf("ProxyCommand process %d ended before Close", pid)
		}
	}
	h.Close()
	closed = true
	requireGone(t, pids)
}

// A ProxyCommand that fails is named in the error with its exit status and the end of its stderr.
func TestProxyCommandFailure(t *testing.T) {
	client := webtest.NewSSHClient(t)
	srv := webtest.StartSSHD(t, client, false)
	dir := t.TempDir()
	hostEntry(t, client, "down", srv, `ProxyCommand sh -c 'for i in 1 2 3 4 5 6 7; do echo "noise $i" >&2; done; echo "cannot reach %h port %p" >&2; exit 3'`)
	hostEntry(t, client, "missing", srv, "ProxyCommand /nonexistent/proxy %h %p")
	hostEntry(t, client, "silent", srv, fmt.Sprintf(`ProxyCommand sh -c 'echo $$ > %s/pids; exec sleep 60'`, dir))

	for _, tc := range []struct {
		alias   string
		timeout time.Duration
		want    []string
		notWant string
	}{
		{alias: "down", want: []string{"ProxyCommand sh -c 'for i in", "exited 3: ", "noise 4; noise 5; noise 6; noise 7; cannot reach 127.0.0.1 port " + srv.Port}, notWant: "noise 3"},
		{alias: "missing", want: []string{"ProxyCommand /nonexistent/proxy 127.0.0.1 " + srv.Port + ": exited 127: ", "not found"}},
		{alias: "silent", timeout: 300 * time.Millisecond, want: []string{"ProxyCommand sh -c", "no answer from the server within 300ms"}},
	} {
		t.Run(tc.alias, func(t *testing.T) {
			o := clientOptions(client)
			o.Timeout = tc.timeout
			start := time.Now()
			h, err := Dial(context.Background(), tc.alias, tc.alias, o)
			if err == nil {
				h.Close()
				t.Fatal("Dial succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
			if tc.notWant != "" && strings.Contains(err.Error(), tc.notWant) {
				t.Errorf("err = %v\nwant only the last lines of stderr", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Dial took %s to fail", d)
			}
		})
	}
	// The command that never answered was killed.
	requireGone(t, pidsIn(t, filepath.Join(dir, "pids")))
}

// HostKeyAlias names the host in known_hosts instead of its address: a key trusted under the
// alias is accepted, and a host whose alias is not in known_hosts is refused, even though its
// address is, with the known_hosts line to add under the alias.
func TestHostKeyAlias(t *testing.T) {
	client := webtest.NewSSHClient(t)
	untrusted := webtest.StartSSHDWith(t, client, webtest.SSHDOptions{Untrusted: true})
	trusted := webtest.StartSSHD(t, client, false)
	os.WriteFile(client.KnownHosts, append(mustReadFile(t, client.KnownHosts), knownhosts.Line([]string{"web-key"}, untrusted.HostKey)+"\n"...), 0o600)
	hostEntry(t, client, "web1", untrusted, "HostKeyAlias web-key")
	hostEntry(t, client, "web2", trusted, "HostKeyAlias other-key")
	hostEntry(t, client, "web3", untrusted, "HostKeyAlias web-key", relay(t, t.TempDir()))

	for _, alias := range []string{"web1", "web3"} {
		h, err := Dial(context.Background(), alias, alias, clientOptions(client))
		if err != nil {
			t.Fatalf("%s: %v", alias, err)
		}
		if out, err := h.Script(context.Background(), "echo ok"); err != nil || string(out) != "ok\n" {
			t.Errorf("%s: Script = %q, %v", alias, out, err)
		}
		h.Close()
	}

	_, err := Dial(context.Background(), "web2", "web2", clientOptions(client))
	var hk *HostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("err = %v, want a HostKeyError", err)
	}
	if hk.Host != "other-key" || hk.Changed || !strings.Contains(hk.Error(), "other-key") {
		t.Errorf("HostKeyError = %+v, want the unknown key of other-key", hk)
	}
	if want := "echo 'other-key " + trusted.HostKey.Type() + " "; !strings.Contains(hk.Hint, want) || !strings.Contains(hk.Hint, ">> "+client.KnownHosts) {
		t.Errorf("hint = %q, want it to add the key under the alias (%s...)", hk.Hint, want)
	}
}

func mustReadFile(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// AddressFamily and BindAddress are honoured: neither can reach 127.0.0.1 from an IPv6 socket,
// or from an address this machine does not have.
func TestAddressFamilyAndBindAddress(t *testing.T) {
	client := webtest.NewSSHClient(t)
	srv := webtest.StartSSHD(t, client, false)
	hostEntry(t, client, "v4", srv, "AddressFamily inet", "BindAddress 127.0.0.1")
	hostEntry(t, client, "v6", srv, "AddressFamily inet6")
	hostEntry(t, client, "elsewhere", srv, "BindAddress 192.0.2.1") // TEST-NET-1, never local

	h, err := Dial(context.Background(), "v4", "v4", clientOptions(client))
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	for _, alias := range []string{"v6", "elsewhere"} {
		if h, err := Dial(context.Background(), alias, alias, clientOptions(client)); err == nil {
			h.Close()
			t.Errorf("%s: connected, want the key's setting to prevent it", alias)
		}
	}
}

// Settings that would make OpenSSH reach the host another way than ferry are refused by name.
func TestResolveRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, spec, config string
		want               []string // in the error; none: no error
	}{
		{"jump and command", "web", "Host web\n  ProxyCommand nc %h %p\nHost *\n  ProxyJump bastion\n",
			[]string{"ProxyJump bastion", "ProxyCommand nc %h %p"}},
		{"command none over jump", "web", "Host web\n  ProxyCommand none\nHost *\n  ProxyJump bastion\n",
			[]string{"ProxyJump bastion", "ProxyCommand none"}},
		{"both none", "web", "Host web\n  ProxyCommand none\n  ProxyJump none\n", nil},
		{"fdpass", "web", "Host web\n  ProxyCommand nc %h %p\n  ProxyUseFdpass yes\n", []string{"ProxyUseFdpass"}},
		{"fdpass without command", "web", "Host web\n  ProxyUseFdpass yes\n", nil},
		{"bind interface", "web", "Host web\n  BindInterface eth1\n", []string{"BindInterface eth1"}},
		{"bind interface of the jump host only", "web", "Host web\n  ProxyJump bastion\n  BindInterface eth1\n", nil},
		{"address family", "web", "Host web\n  AddressFamily ipx\n", []string{"AddressFamily ipx"}},
		{"canonicalize", "web", "Host *\n  CanonicalizeHostname yes\n  CanonicalDomains example.com\n",
			[]string{"CanonicalizeHostname yes", "web", "example.com"}},
		{"canonicalize a full name", "web.example.com", "Host *\n  CanonicalizeHostname yes\n  CanonicalDomains example.com\n", nil},
		{"canonicalize an address", "10.0.0.1", "Host *\n  CanonicalizeHostname always\n  CanonicalDomains example.com\n", nil},
		{"canonicalize without domains", "web", "Host *\n  CanonicalizeHostname yes\n", nil},
		{"canonicalize yes through a proxy", "web", "Host *\n  CanonicalizeHostname yes\n  CanonicalDomains example.com\n  ProxyJump bastion\n", nil},
		{"canonicalize always through a proxy", "web", "Host *\n  CanonicalizeHostname always\n  CanonicalDomains example.com\n  ProxyJump bastion\n",
			[]string{"CanonicalizeHostname always"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "config")
			os.WriteFile(cfg, []byte(tc.config), 0o600)
			_, err := resolve(tc.spec, Options{ConfigFile: cfg})
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one naming %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to name %q", err, w)
				}
			}
		})
	}
}

// A ProxyCommand reaches the shell as written in the config, tokens expanded as OpenSSH does;
// names the shell would act on are refused.
func TestProxyCommandLine(t *testing.T) {
	for _, tc := range []struct {
		spec, config, want, err string
	}{
		{"web", `ProxyCommand ssh -W %h:%p bastion`, "ssh -W 10.0.0.5:2222 bastion", ""},
		{"deploy@web", `ProxyCommand connect %r %n %h %p 100%%`, "connect deploy web 10.0.0.5 2222 100%", ""},
		{"web", `ProxyCommand "/opt/my proxy" "%h"`, `"/opt/my proxy" "10.0.0.5"`, ""},
		{"web", `ProxyCommand "/opt/proxy" %h # the office proxy`, `"/opt/proxy" 10.0.0.5`, ""},
		{"web", `ProxyCommand nc %h %d`, "", "unknown token %d"},
		{"web", `ProxyCommand nc %h 100%`, "", "lone %"},
		{"$(reboot)@web", `ProxyCommand nc %r %h`, "", `"$(reboot)"`},
		{"-oProxyCommand=x@web", `ProxyCommand nc %r %h`, "", "refusing"},
		{"deploy@web", `ProxyCommand nc %h`, "nc 10.0.0.5", ""}, // %r unused: any user is fine
	} {
		t.Run(tc.config, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "config")
			os.WriteFile(cfg, []byte("Host web\n  HostName 10.0.0.5\n  Port 2222\n  User admin\n  "+tc.config+"\n"), 0o600)
			target, err := resolve(tc.spec, Options{ConfigFile: cfg})
			if err != nil {
				t.Fatal(err)
			}
			got, err := proxyCommandLine(target)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("command (-want +got):\n%s", diff)
			}
		})
	}
}

// ProxyJump hosts that jump through each other are refused, not dialled directly once deep enough.
func TestProxyJumpLoopIsRefused(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfg, []byte("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n"), 0o600)
	_, err := Dial(context.Background(), "a", "a", Options{ConfigFile: cfg, KnownHostsFile: filepath.Join(t.TempDir(), "known_hosts")})
	if err == nil || !strings.Contains(err.Error(), "is there a loop") {
		t.Fatalf("err = %v, want a loop reported", err)
	}
}
