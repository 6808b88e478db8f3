package deploy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-deploy/ferry/internal/check"
	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/host/ssh"
	"github.com/ferry-deploy/ferry/internal/invariants"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

// fleet is n real sshd servers on loopback, each the host of its own root, and a config that
// deploys to all of them.
type fleet struct {
	*site
	servers []*webtest.SSHD
	roots   []string
	names   []string
}

func newFleet(t *testing.T, n int, extra string) *fleet {
	t.Helper()
	return newFleetOf(t, n, nil, extra)
}

// newFleetOf is newFleet with what hostExtra(i) adds to host i's mapping (indented as its keys).
func newFleetOf(t *testing.T, n int, hostExtra func(i int) string, extra string) *fleet {
	t.Helper()
	client := webtest.NewSSHClient(t)
	f := &fleet{}
	var hosts strings.Builder
	hosts.WriteString("hosts:\n")
	dir := t.TempDir()
	t.Cleanup(func() {
		for _, root := range f.roots {
			waitSettled(t, root)
		}
	})
	for i := range n {
		s := webtest.StartSSHD(t, client, false)
		f.servers = append(f.servers, s)
		root := filepath.Join(dir, fmt.Sprintf("web%d", i+1))
		f.roots = append(f.roots, root)
		name := fmt.Sprintf("web%d", i+1)
		f.names = append(f.names, name)
		client.Alias(t, name, s)
		role := ""
		if i == 1 {
			role = "\n    roles: [web, migrate]"
		}
		if hostExtra != nil {
			role += hostExtra(i)
		}
		fmt.Fprintf(&hosts, "  - ssh: %s\n    root: %s%s\n", name, root, role)
	}
	f.site = newSite(t, hosts.String()+extra)
	f.opts.SSH = sshOptions(client)
	return f
}

// checkAll asserts every invariant on every host's root.
// sshOptions point ferry at the test client's key, known_hosts and ssh_config.
func sshOptions(c *webtest.SSHClient) ssh.Options {
	return ssh.Options{ConfigFile: c.Config, KnownHostsFile: c.KnownHosts, IdentityFiles: []string{c.KeyFile}}
}

func (f *fleet) checkAll() {
	f.t.Helper()
	for _, root := range f.roots {
		for _, err := range invariants.Check(root, invariants.Options{Settled: true, Shared: f.cfg.SharedPaths()}) {
			f.t.Errorf("%s: %v", filepath.Base(root), err)
		}
	}
}

func (f *fleet) currents() []string {
	var out []string
	for _, root := range f.roots {
		target, _ := os.Readlink(filepath.Join(root, "current"))
		out = append(out, strings.TrimPrefix(target, "releases/"))
	}
	return out
}

func same(id string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = id
	}
	return out
}

func TestSSHFleetDeployIncrementalRollbackCleanup(t *testing.T) {
	f := newFleet(t, 3, "keep_releases: 2\nshared:\n  files: [.env]\n  dirs: [public/uploads]\nhooks:\n  before_activate:\n    - run: echo \"$FERRY_HOST\" >> \"$FERRY_SHARED_DIR/../../migrated\"\n      once: true\n")
	for i := range 300 { // enough for the upload to go in parallel streams
		f.write(fmt.Sprintf("public/assets/f%03d.js", i), strings.Repeat(fmt.Sprintf("asset %d ", i), 200))
	}
	f.write("public/odd name $(x) 'q'.txt", "odd")
	f.write("readonly/inside.txt", "ro")
	os.Chmod(filepath.Join(f.src, "readonly"), 0o555)
	for _, root := range f.roots {
		hostShared(t, root, ".env")
	}
	res, err := f.deploy()
	if err != nil {
		t.Fatal(err)
	}
	first := res.Release
	if diff := cmp.Diff(same(first, 3), f.currents()); diff != "" {
		t.Fatalf("currents (-want +got):\n%s", diff)
	}
	f.checkAll()
	migrated, _ := os.ReadFile(filepath.Join(filepath.Dir(f.roots[0]), "migrated"))
	if string(migrated) != "web2\n" {
		t.Fatalf("once hook ran on %q, want only on web2 (role migrate)", migrated)
	}

	// Incremental: one changed file of 10 kB; what crosses the wire is about that (with the
	// upload's own scripts, a few kB), not the 600 kB site.
	f.write("public/assets/f007.js", strings.Repeat("changed ", 1250))
	res, err = f.deploy()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range res.Hosts {
		if h.Stats.Sent != 1 || h.BytesSent > 16_000 {
			t.Errorf("%s: incremental deploy sent %d files, %d bytes on the wire; want 1 file, a few kB", h.Host, h.Stats.Sent, h.BytesSent)
		}
	}
	f.checkAll()
	if got, _ := os.ReadFile(filepath.Join(f.roots[2], "current/public/odd name $(x) 'q'.txt")); string(got) != "odd" {
		t.Fatalf("odd name over SSH = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(f.roots[0], "current/readonly")); err != nil || fi.Mode().Perm() != 0o555 {
		t.Fatalf("read-only directory over SSH: %v %v", fi.Mode(), err)
	}

	r := f.mustRollbackFleet()
	if r.To != first {
		t.Fatalf("rollback went to %s, want %s", r.To, first)
	}
	if diff := cmp.Diff(same(first, 3), f.currents()); diff != "" {
		t.Fatalf("currents after rollback (-want +got):\n%s", diff)
	}
	f.mustDeployFleet()
	f.mustDeployFleet()
	for _, root := range f.roots {
		entries, _ := os.ReadDir(filepath.Join(root, "releases"))
		if len(entries) != 2 { // the new current and the rollback target; the bad one is beyond keep
			t.Errorf("%s keeps %d releases", filepath.Base(root), len(entries))
		}
	}
}

func (f *fleet) mustRollbackFleet() *RollbackResult {
	f.t.Helper()
	r, err := Rollback(context.Background(), f.cfg, "", f.opts, f.rep)
	if err != nil {
		f.t.Fatalf("rollback: %v", err)
	}
	return r
}

func TestSSHLockOnOneHostStopsTheFleet(t *testing.T) {
	f := newFleet(t, 3, "")
	f.mustDeployFleet()
	before := f.currents()
	os.WriteFile(filepath.Join(f.roots[2], ".ferry/lock"), []byte(`{"user":"bob","host":"laptop","pid":1,"command":"ferry deploy"}`), 0o644)
	_, err := f.deploy()
	if err == nil || !strings.Contains(err.Error(), "web3: ") || !strings.Contains(err.Error(), "bob@laptop") {
		t.Fatalf("err = %v, want web3 locked by bob@laptop", err)
	}
	if diff := cmp.Diff(before, f.currents()); diff != "" {
		t.Fatalf("a host changed (-before +after):\n%s", diff)
	}
	for _, root := range f.roots[:2] {
		if _, err := os.Stat(filepath.Join(root, ".ferry/lock")); err == nil {
			t.Errorf("%s: lock left behind", root)
		}
	}
}

func (f *fleet) mustDeployFleet() string {
	f.t.Helper()
	res, err := f.deploy()
	if err != nil {
		f.t.Fatal(err)
	}
	f.checkAll()
	return res.Release
}

// downDuring deploys while the script of a hook or service on web3 signals that it runs; the
// test then stops web3's server, connections and all, as a host that goes down.
func (f *fleet) downDuring() error {
	f.t.Helper()
	marker := filepath.Join(filepath.Dir(f.roots[0]), "web3-busy")
	done := make(chan error, 1)
	go func() {
		_, err := f.deploy()
		done <- err
	}()
	waitFor(f.t, "web3's script to start", func() bool { _, err := os.Stat(marker); return err == nil })
	f.servers[2].Stop()
	return <-done
}

const busyOnWeb3 = `if [ "$FERRY_HOST" = web3 ] && [ -f "$FERRY_ROOT/../down" ]; then touch "$FERRY_ROOT/../web3-busy"; sleep 30; fi`

func TestSSHHostStoppedBeforeActivationChangesNoHost(t *testing.T) {
	f := newFleet(t, 3, "hooks:\n  before_activate:\n    - run: '"+busyOnWeb3+"'\n")
	good := f.mustDeployFleet()
	os.WriteFile(filepath.Join(filepath.Dir(f.roots[0]), "down"), nil, 0o644)
	err := f.downDuring()
	if err == nil || !strings.Contains(err.Error(), "web3") {
		t.Fatalf("err = %v, want a failure naming web3", err)
	}
	t.Log(err)
	if diff := cmp.Diff(same(good, 3), f.currents()); diff != "" {
		t.Fatalf("currents (-want +got):\n%s", diff)
	}
	for _, root := range f.roots[:2] {
		if rels := releasesIn(t, root); len(rels) != 1 {
			t.Errorf("%s: partial release left: %q", filepath.Base(root), rels)
		}
		for _, err := range invariants.Check(root, invariants.Options{Settled: true}) {
			t.Errorf("%s: %v", filepath.Base(root), err)
		}
	}
}

func TestSSHHostLostDuringActivationSwapsTheOthersBack(t *testing.T) {
	f := newFleet(t, 3, "services:\n  - name: app\n    reload: '"+busyOnWeb3+"'\n")
	good := f.mustDeployFleet()
	os.WriteFile(filepath.Join(filepath.Dir(f.roots[0]), "down"), nil, 0o644)
	err := f.downDuring()
	if err == nil || !strings.Contains(err.Error(), "web3") {
		t.Fatalf("err = %v, want a failure naming web3", err)
	}
	t.Log(err)
	got := f.currents()
	if got[0] != good || got[1] != good {
		t.Fatalf("reachable hosts not back on %s: %v", good, got)
	}
	for _, root := range f.roots[:2] {
		for _, err := range invariants.Check(root, invariants.Options{Settled: true}) {
			t.Errorf("%s: %v", filepath.Base(root), err)
		}
	}
}

func TestSSHUnknownHostKeyIsRefused(t *testing.T) {
	client := webtest.NewSSHClient(t)
	s := webtest.StartSSHD(t, client, true)
	st := newSite(t, fmt.Sprintf("hosts:\n  - ssh: root@%s\n", s.Addr))
	st.opts.SSH = sshOptions(client)
	_, err := st.deploy()
	var hk *ssh.HostKeyError
	if !errors.As(err, &hk) || hk.Changed || !strings.Contains(hk.Fingerprint, "SHA256:") || !strings.Contains(hk.Hint, "ssh-keyscan -p "+s.Port) {
		t.Fatalf("err = %v, want an unknown host key with its fingerprint and the command to trust it", err)
	}
	if _, err := os.Stat(st.root); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the root was created on an untrusted host")
	}
	// A known host whose key changed is refused as well.
	os.WriteFile(client.KnownHosts, fmt.Appendf(nil, "[127.0.0.1]:%s %s", s.Port, strings.TrimSpace(string(mustRead(t, client.KeyFile+".pub")))), 0o600)
	_, err = st.deploy()
	if !errors.As(err, &hk) || !hk.Changed {
		t.Fatalf("err = %v, want a changed host key", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSSHRollingDeployStopsAtTheFirstFailedBatch(t *testing.T) {
	f := newFleet(t, 3, "services:\n  - name: app\n    reload: test \"$FERRY_HOST\" != web2 || test ! -f broken\n")
	good := f.mustDeployFleet()
	f.write("broken", "")
	_, err := Deploy(context.Background(), f.cfg, DeployOptions{Options: f.opts, Rolling: true, Batch: 1}, f.rep)
	if err == nil || !strings.Contains(err.Error(), "rolling deploy stopped at batch 2") || !strings.Contains(err.Error(), "untouched: web3") ||
		!strings.Contains(err.Error(), "back on the previous release: web2") || strings.Contains(err.Error(), "every") {
		t.Fatalf("err = %v", err)
	}
	got := f.currents()
	if got[0] == good || got[1] != good || got[2] != good {
		t.Fatalf("currents = %v: want web1 on the new release, web2 rolled back, web3 untouched on %s", got, good)
	}
	if !strings.Contains(err.Error(), "earlier batches stay on "+got[0]+": web1") {
		t.Errorf("err = %v; want it to say web1 stays on %s", err, got[0])
	}
	f.checkAll()
}

func TestSSHServerKilledMidUpload(t *testing.T) {
	f := newFleet(t, 2, "")
	good := f.mustDeployFleet()
	big := make([]byte, 48<<20)
	rand.Read(big) // incompressible: the upload takes a while
	os.WriteFile(filepath.Join(f.src, "public/big.bin"), big, 0o644)
	done := make(chan error, 1)
	go func() {
		_, err := f.deploy()
		done <- err
	}()
	waitFor(t, "web2's upload to start", func() bool {
		entries, _ := os.ReadDir(filepath.Join(f.roots[1], "releases"))
		return len(entries) == 2
	})
	f.servers[1].Stop()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "web2") {
		t.Fatalf("err = %v, want a failure naming web2", err)
	}
	if diff := cmp.Diff(same(good, 2), f.currents()); diff != "" {
		t.Fatalf("currents (-want +got):\n%s", diff)
	}
	// web1 is clean; web2, unreachable, keeps its partial release for the next run to remove,
	// and its current is untouched.
	for _, err := range invariants.Check(f.roots[0], invariants.Options{Settled: true}) {
		t.Errorf("web1: %v", err)
	}
	for _, err := range invariants.Check(f.roots[1], invariants.Options{}) {
		t.Errorf("web2: %v", err)
	}
}

func TestSSHProxyJump(t *testing.T) {
	client := webtest.NewSSHClient(t)
	bastion := webtest.StartSSHD(t, client, false)
	web := webtest.StartSSHD(t, client, false)
	client.Alias(t, "bastion", bastion)
	client.AliasVia(t, "web", web, "bastion")
	s := newSite(t, "hosts:\n  - ssh: web\n")
	s.opts.SSH = sshOptions(client)
	id := s.mustDeploy()
	if s.current() != id {
		t.Fatalf("current = %s, want %s", s.current(), id)
	}
	// The connection to web goes through the bastion: without it, web cannot be reached.
	bastion.Stop()
	if _, err := s.deploy(); err == nil || !strings.Contains(err.Error(), "ProxyJump bastion") {
		t.Fatalf("with the bastion down: err = %v, want the ProxyJump hop named", err)
	}
}

// Two fleet deploys that start together, each listing the hosts in the other's reverse order,
// both finish with --lock-wait: a run never waits while it holds a lock, so neither can hold a
// host the other needs while waiting for one it holds.
func TestSSHTwoFleetDeploysAtOnceNeitherDeadlocks(t *testing.T) {
	f := newFleet(t, 3, "")
	f.mustDeployFleet()
	reversed := *f.cfg
	reversed.Hosts = slices.Clone(f.cfg.Hosts)
	slices.Reverse(reversed.Hosts)
	opts := f.optsWith(func(o *Options) { o.LockWait = 2 * time.Minute })
	errs := make(chan error, 2)
	for _, cfg := range []*config.Config{f.cfg, &reversed} {
		go func() {
			_, err := Deploy(context.Background(), cfg, DeployOptions{Options: opts}, f.rep)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a concurrent fleet deploy failed: %v", err)
		}
	}
	f.checkAll()
	if cur := f.currents(); cur[0] != cur[1] || cur[1] != cur[2] {
		t.Fatalf("hosts ended on different releases: %v", cur)
	}
}

// One server and root listed twice under two names is found, not blamed on a lock this very
// run holds: a config error, and nothing changes.
func TestSSHSameServerListedTwiceIsAConfigError(t *testing.T) {
	client := webtest.NewSSHClient(t)
	srv := webtest.StartSSHD(t, client, false)
	client.Alias(t, "web1", srv)
	client.Alias(t, "web1-again", srv)
	root := filepath.Join(t.TempDir(), "srv")
	s := newSite(t, fmt.Sprintf("hosts:\n  - ssh: web1\n    root: %[1]s\n  - ssh: web1-again\n    root: %[1]s\n", root))
	s.root = root
	s.opts.SSH = sshOptions(client)
	_, err := s.deploy()
	if !errors.Is(err, config.ErrConfig) || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("deploy to one server listed twice: %v; want a config error saying so", err)
	}
	if rels := releasesIn(t, root); len(rels) != 0 {
		t.Errorf("releases left: %q", rels)
	}
	if _, err := os.Stat(filepath.Join(root, ".ferry", "lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock left behind: %v", err)
	}
}

// Health checks go through the SSH connection. A server that refuses forwarding fails the
// deploy before the swap, with what to change, and 'ferry check' says so first.
func TestSSHHealthWithoutForwardingFailsBeforeTheSwap(t *testing.T) {
	client := webtest.NewSSHClient(t)
	srv := webtest.StartSSHDWith(t, client, webtest.SSHDOptions{Config: "AllowTcpForwarding no"})
	client.Alias(t, "web1", srv)
	root := filepath.Join(t.TempDir(), "srv")
	s := newSite(t, fmt.Sprintf("hosts:\n  - ssh: web1\n    root: %s\n", root))
	s.root = root
	s.opts.SSH = sshOptions(client)
	good := s.mustDeploy()
	s.cfg.Health = &config.Health{URL: "http://127.0.0.1:1/", ExpectStatus: 200, Timeout: config.Duration(time.Second), Interval: config.Duration(100 * time.Millisecond)}
	findings, err := Check(context.Background(), s.cfg, s.opts, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(findings, func(f check.Finding) bool { return f.Code == "health-forwarding" }) {
		t.Errorf("check did not find the refused forwarding: %v", findings)
	}
	s.write("public/index.html", "v2")
	_, err = s.deploy()
	var he *release.HintError
	if !errors.Is(err, host.ErrNoForwarding) || !errors.As(err, &he) || !strings.Contains(he.Hint, "AllowTcpForwarding") {
		t.Fatalf("deploy with health over a server without forwarding: %v; want the refusal, with a hint", err)
	}
	if s.current() != good {
		t.Errorf("current = %s, want %s: the deploy was swapped", s.current(), good)
	}
	s.check()
}

// One unreachable host does not hide the others from status and releases: each healthy host is
// read, the unreachable one carries its error, and the error names it.
func TestSSHStatusWithAHostDownShowsTheOthers(t *testing.T) {
	f := newFleet(t, 3, "")
	id := f.mustDeployFleet()
	f.servers[1].Stop()
	hosts, err := Status(context.Background(), f.cfg, f.opts)
	if err == nil || !strings.Contains(err.Error(), f.names[1]) {
		t.Errorf("status with %s down: %v; want an error naming it", f.names[1], err)
	}
	if len(hosts) != 3 {
		t.Fatalf("status gave %d hosts, want 3", len(hosts))
	}
	for i, h := range hosts {
		if i == 1 {
			if h.Error == "" || h.Current != "" {
				t.Errorf("%s (down): %+v; want only an error", h.Host, h)
			}
			continue
		}
		if h.Error != "" || h.Current != id {
			t.Errorf("%s: current %q, error %q; want %s and no error", h.Host, h.Current, h.Error, id)
		}
	}
}

// ferry run runs a command in the live release of every host at once, or of the hosts of a
// role; a host where it fails does not stop the others, and each host's output is its own.
func TestSSHRunOnAFleet(t *testing.T) {
	f := newFleet(t, 3, "")
	id := f.mustDeployFleet()
	var mu sync.Mutex
	outs := map[string]*strings.Builder{}
	out := func(host string) io.Writer {
		mu.Lock()
		defer mu.Unlock()
		outs[host] = &strings.Builder{}
		return &writerFunc{fn: func(b []byte) { mu.Lock(); defer mu.Unlock(); outs[host].Write(b) }}
	}
	res, err := Run(context.Background(), f.cfg, f.opts, nil, `basename "$(pwd -P)"; test "$FERRY_HOST" != web3`, nil, out)
	if err == nil || !strings.Contains(err.Error(), "web3") {
		t.Errorf("run failing on web3: %v; want an error naming it", err)
	}
	for i, r := range res {
		want := 0
		if r.Host == "web3" {
			want = 1
		}
		if r.ExitCode != want {
			t.Errorf("%s: exit %d, want %d", r.Host, r.ExitCode, want)
		}
		if got := outs[f.names[i]].String(); got != id+"\n" {
			t.Errorf("%s printed %q, want the live release %s", f.names[i], got, id)
		}
	}
	res, err = Run(context.Background(), f.cfg, f.opts, []string{"migrate"}, "true", nil, out)
	if err != nil || len(res) != 1 || res[0].Host != "web2" {
		t.Errorf("run --role migrate: %+v, %v; want web2 alone", res, err)
	}
}

// Hooks and services limited to roles run only on the hosts with one of them.
func TestSSHHooksAndServicesByRole(t *testing.T) {
	f := newFleet(t, 3, `hooks:
  before_activate:
    - run: touch "$FERRY_ROOT/../$FERRY_HOST-before"
      roles: [migrate]
  after_activate:
    - run: touch "$FERRY_ROOT/../$FERRY_HOST-after"
services:
  - name: app
    reload: touch "$FERRY_ROOT/../$FERRY_HOST-reloaded"
    roles: [web]
`)
	f.mustDeployFleet()
	dir := filepath.Dir(f.roots[0])
	for _, name := range f.names {
		onlyWeb2 := name == "web2" // the fleet's one host with roles web and migrate
		for _, what := range []string{"before", "reloaded"} {
			if _, err := os.Stat(filepath.Join(dir, name+"-"+what)); (err == nil) != onlyWeb2 {
				t.Errorf("%s: %s ran: %v, want %v", name, what, err == nil, onlyWeb2)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, name+"-after")); err != nil {
			t.Errorf("%s: the hook without roles did not run: %v", name, err)
		}
	}
}

// A host's vars override the file's for that host: its hooks, its services and its health check
// see its own values, and the others the file's.
func TestSSHVariablesPerHost(t *testing.T) {
	f := newFleetOf(t, 2, func(i int) string {
		if i == 0 {
			return "\n    vars: {port: \"8082\"}"
		}
		return ""
	}, `vars: {port: "8080"}
hooks:
  before_activate:
    - run: echo {{port}} >port.txt
services:
  - name: app
    reload: echo {{port}} >"$FERRY_ROOT/../$FERRY_HOST-reloaded"
`)
	id := f.mustDeployFleet()
	dir := filepath.Dir(f.roots[0])
	for i, want := range []string{"8082", "8080"} {
		if got := strings.TrimSpace(string(mustRead(t, filepath.Join(f.roots[i], "releases", id, "port.txt")))); got != want {
			t.Errorf("%s: the hook saw port %q, want %q", f.names[i], got, want)
		}
		if got := strings.TrimSpace(string(mustRead(t, filepath.Join(dir, f.names[i]+"-reloaded")))); got != want {
			t.Errorf("%s: the service saw port %q, want %q", f.names[i], got, want)
		}
	}
}

// ferry check judges each host by its own config: a service that restarts only where a host's
// vars give it a restart command is found on that host, and missed on the other.
func TestSSHCheckUsesEachHostsVars(t *testing.T) {
	f := newFleetOf(t, 2, func(i int) string {
		if i == 0 {
			return "\n    vars: {rs: \"echo restarting\"}"
		}
		return ""
	}, `vars: {rs: ""}
shared:
  files: [.env]
services:
  - name: app
    reload: "true"
    restart: "{{rs}}"
`)
	for _, root := range f.roots {
		hostShared(t, root, ".env")
	}
	f.mustDeployFleet()
	for _, root := range f.roots {
		os.WriteFile(filepath.Join(root, "shared", ".env"), []byte("CHANGED=1\n"), 0o600)
	}
	findings, err := Check(context.Background(), f.cfg, f.opts, false)
	if err != nil {
		t.Fatal(err)
	}
	warned := map[string]bool{}
	for _, fd := range findings {
		if fd.Code == "env-changed-no-restart" {
			warned[fd.Host] = true
		}
	}
	if warned[f.names[0]] || !warned[f.names[1]] {
		t.Errorf("env-changed-no-restart on %v; want it on %s only (only %s restarts)", warned, f.names[1], f.names[0])
	}
}
