package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/invariants"
	"github.com/ferry-deploy/ferry/internal/transfer"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

// sshSite is a site deployed to one real sshd, GNU or BusyBox userland.
func sshSite(t *testing.T, busybox bool, extra string) (*site, *webtest.SSHD) {
	t.Helper()
	client := webtest.NewSSHClient(t)
	srv := webtest.StartSSHDWith(t, client, webtest.SSHDOptions{BusyBox: busybox})
	client.Alias(t, "web1", srv)
	dir := t.TempDir()
	s := newSite(t, fmt.Sprintf("hosts:\n  - ssh: web1\n    root: %s\n%s", filepath.Join(dir, "web1"), extra))
	s.root = filepath.Join(dir, "web1")
	s.opts.SSH = sshOptions(client)
	return s, srv
}

// writeMany adds n small files to the site, 100 a directory.
func (s *site) writeMany(n int) {
	for i := range n {
		p := filepath.Join(s.src, fmt.Sprintf("public/d%03d/f%05d.txt", i/100, i))
		if i%100 == 0 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		if err := os.WriteFile(p, fmt.Appendf(nil, "file %d\n", i), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
}

// The budgets of DESIGN §6, counted: an incremental deploy of one changed file costs at most 12
// round trips after the handshake, and at most 128 kB on the wire for the whole run, however
// many files the site has.
func TestSSHIncrementalDeployRoundTripsAndBytes(t *testing.T) {
	s, _ := sshSite(t, false, "shared:\n  files: [.env]\n  dirs: [public/uploads]\n")
	hostShared(t, s.root, ".env")
	s.writeMany(20_000)
	s.age()
	first, err := s.deploy()
	if err != nil {
		t.Fatal(err)
	}
	s.check()
	t.Logf("first deploy: %d round trips, %d bytes on the wire", first.Hosts[0].RoundTrips, first.Hosts[0].WireBytes)

	s.write("public/d007/f00700.txt", "changed\n")
	s.age()
	res, err := s.deploy()
	if err != nil {
		t.Fatal(err)
	}
	s.check()
	h := res.Hosts[0]
	t.Logf("incremental deploy: %d round trips, %d bytes on the wire, %+v", h.RoundTrips, h.WireBytes, h.Stats)
	if h.Stats.Sent != 1 || h.Stats.Reused != 20_001 {
		t.Errorf("sent %d files and reused %d; want 1 sent, 20,001 reused", h.Stats.Sent, h.Stats.Reused)
	}
	if h.RoundTrips > 12 {
		t.Errorf("incremental deploy took %d round trips after the handshake; the budget is 12", h.RoundTrips)
	}
	if h.WireBytes > 128<<10 {
		t.Errorf("incremental deploy put %d bytes on the wire; the budget is 128 kB", h.WireBytes)
	}
	if got := s.read("current/public/d007/f00700.txt"); got != "changed\n" {
		t.Errorf("changed file = %q", got)
	}

	// A rollback is the probe (which prepares the swap), and the rename sent together with the
	// request that logs it and unlocks; with the sessions they need, six requests.
	rb := s.mustRollback("")
	t.Logf("rollback: %d round trips", rb.RoundTrips)
	if rb.RoundTrips > 6 {
		t.Errorf("rollback took %d round trips after the handshake; the budget is 6", rb.RoundTrips)
	}
	if rb.To != first.Release || s.current() != first.Release {
		t.Errorf("rolled back to %s, current %s; want %s", rb.To, s.current(), first.Release)
	}
}

// A host with BusyBox userland (as on Alpine) reuses and sends exactly what a GNU host does,
// through every case that decides it: a first deploy, one changed file, a file edited in place
// on the host, a file written into the release by a hook, a shared path seeded from the build,
// a read-only directory, a symlink changed, a file removed, and a rollback.
func TestSSHBusyBoxHostBehavesAsGNU(t *testing.T) {
	type step struct {
		Release string
		Stats   transfer.Stats
		Files   []string
	}
	run := func(busybox bool) []step {
		s, _ := sshSite(t, busybox, "shared:\n  dirs: [public/uploads]\nhooks:\n  before_activate:\n    - run: mkdir -p cache && echo built > cache/compiled\n")
		s.writeMany(300)
		s.write("public/uploads/seed.txt", "seed")
		s.write("readonly/inside.txt", "ro")
		os.Symlink("d000", filepath.Join(s.src, "public/latest"))
		os.Chmod(filepath.Join(s.src, "readonly"), 0o555)
		var steps []step
		deploy := func(check bool) {
			s.t.Helper()
			s.age()
			res, err := s.deploy()
			if err != nil {
				s.t.Fatal(err)
			}
			if check {
				s.check()
			}
			steps = append(steps, step{Stats: res.Hosts[0].Stats, Files: s.files("current/")})
		}
		deploy(true)
		s.write("public/d001/f00100.txt", "changed")
		os.Remove(filepath.Join(s.src, "public/latest"))
		os.Symlink("d001", filepath.Join(s.src, "public/latest"))
		os.Remove(filepath.Join(s.src, "public/d003/f00300.txt"))
		deploy(true)
		s.mustRollback("")
		steps = append(steps, step{Files: s.files("current/")})
		deploy(true)
		// Edited in place on the host, same size: sent fresh, not linked. (The edit reaches the
		// releases that share the file's inode, so only the new release is checked.)
		os.WriteFile(filepath.Join(s.root, "current/public/d002/f00200.txt"), []byte("FILE 200\n"), 0o644)
		deploy(false)
		if got := s.read("current/public/d002/f00200.txt"); got != "file 200\n" {
			t.Errorf("busybox=%v: file edited on the host = %q, want the build's", busybox, got)
		}
		if err := invariants.MatchManifest(s.root, s.current(), s.cfg.SharedPaths()); err != nil {
			t.Errorf("busybox=%v: %v", busybox, err)
		}
		if _, err := os.Stat(filepath.Join(s.root, "current/cache/compiled")); err != nil {
			t.Errorf("busybox=%v: the hook's file: %v", busybox, err)
		}
		return steps
	}
	gnu := run(false)
	bb := run(true)
	if diff := cmp.Diff(gnu, bb); diff != "" {
		t.Errorf("BusyBox host differs from GNU (-gnu +busybox):\n%s", diff)
	}
}

// age sets every file of the build an hour back, as a build made before the deploy: a file the
// build wrote in the second the release was stored is sent again at the next deploy, and the
// comparison of two hosts must not depend on where the test's second boundaries fall.
func (s *site) age() {
	old := time.Now().Add(-time.Hour)
	filepath.WalkDir(s.src, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSymlink == 0 {
			os.Chtimes(p, old, old)
		}
		return nil
	})
}

// files lists the paths under rel in the root, with their kind, for comparing two hosts.
func (s *site) files(rel string) []string {
	s.t.Helper()
	base, err := filepath.EvalSymlinks(filepath.Join(s.root, rel))
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(base, p)
		fi, _ := d.Info()
		if r == "." {
			return nil
		}
		out = append(out, fmt.Sprintf("%s %v", r, fi.Mode()))
		if d.Type()&os.ModeSymlink != 0 {
			t, _ := os.Readlink(p)
			out[len(out)-1] += " -> " + t
		}
		return nil
	})
	return out
}

// Over SSH, as on this machine, a release gets the build's permissions masked by the deploying
// user's umask, and never setuid, setgid or sticky bits: on GNU and BusyBox hosts alike.
func TestSSHModesFollowTheBuildAndTheUmask(t *testing.T) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var umask os.FileMode
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			umask = os.FileMode(n)
		}
	}
	for _, busybox := range []bool{false, true} {
		t.Run(fmt.Sprint("busybox=", busybox), func(t *testing.T) {
			s, _ := sshSite(t, busybox, "")
			s.write("bin/tool", "#!/bin/sh\n")
			os.Chmod(filepath.Join(s.src, "bin/tool"), 0o755|os.ModeSetuid|os.ModeSetgid)
			os.Chmod(filepath.Join(s.src, "bin"), 0o777|os.ModeSticky)
			os.Chmod(filepath.Join(s.src, "public/index.html"), 0o666)
			s.mustDeploy()
			for p, want := range map[string]os.FileMode{"bin/tool": 0o755, "bin": 0o777, "public/index.html": 0o666} {
				fi, err := os.Stat(filepath.Join(s.root, "current", p))
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky); got != want&^umask {
					t.Errorf("%s: mode %v, want %v", p, got, want&^umask)
				}
			}
		})
	}
}

// A shared file with from goes up in the upload's own request, on GNU and BusyBox hosts: the
// host's copy is replaced when it differs, with its mode, and the swap restarts the service
// that reads it. A missing one refuses the deploy before the host is touched.
func TestSSHSharedFileFromThisMachine(t *testing.T) {
	for _, busybox := range []bool{false, true} {
		t.Run(map[bool]string{false: "gnu", true: "busybox"}[busybox], func(t *testing.T) {
			s, _ := sshSite(t, busybox, "shared:\n  files:\n    - {path: config/.env, from: env.local, mode: \"0640\"}\n  dirs:\n    - {path: storage, mode: \"0770\"}\nservices:\n  - name: app\n    reload: \"true\"\n    restart: echo restarted\n")
			local := filepath.Join(s.cfg.Dir, "env.local")
			if _, err := s.deploy(); err == nil || !errors.Is(err, config.ErrConfig) || !strings.Contains(err.Error(), "env.local") {
				t.Fatalf("deploy without the from file: %v, want a config error naming it", err)
			}
			if _, err := os.Stat(s.root); err == nil {
				t.Fatalf("the root was made by a deploy that was refused")
			}
			os.WriteFile(local, []byte("DB=one\n"), 0o600)
			s.mustDeploy()
			for _, c := range []struct{ path, mode, content string }{{"shared/config/.env", "640", "DB=one\n"}, {"shared/storage", "770", ""}} {
				fi, err := os.Stat(filepath.Join(s.root, c.path))
				if err != nil {
					t.Fatal(err)
				}
				if got := fmt.Sprintf("%o", fi.Mode().Perm()); got != c.mode {
					t.Errorf("%s: mode %s, want %s", c.path, got, c.mode)
				}
			}
			if got := s.read("current/config/.env"); got != "DB=one\n" {
				t.Fatalf("current/config/.env = %q", got)
			}
			os.WriteFile(local, []byte("DB=two\n"), 0o600)
			s.mustDeploy()
			if got := s.read("current/config/.env"); got != "DB=two\n" {
				t.Fatalf("current/config/.env after the change = %q", got)
			}
			if !slices.ContainsFunc(s.rep.kept, func(st Step) bool { return st.Kind == "restart" }) {
				t.Errorf("the changed shared file did not restart the service: %v", s.rep.steps)
			}
		})
	}
}
