package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-deploy/ferry/internal/check"
)

// What people, hooks and apps do to the live release must never leak into the next one, whose
// files are the previous release's hard-linked: each case on this machine and over SSH on GNU
// and BusyBox hosts.
func TestWritesIntoTheLiveReleaseDoNotReachTheNext(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sshBB   bool // over SSH to a BusyBox host; else over SSH to GNU when ssh is set
		ssh     bool
		gnuOnly bool // needs GNU find on the host
		extra   string
		prepare func(s *site)
		tamper  func(t *testing.T, s *site, live string)
		check   func(t *testing.T, s *site, next string)
	}{
		{
			name: "a directory replaced by a symlink is not written through",
			prepare: func(s *site) {
				s.write("data/a.txt", "build v1")
				s.write("data/gone.txt", "dropped next")
			},
			tamper: func(t *testing.T, s *site, live string) {
				outside := filepath.Join(filepath.Dir(s.root), "outside")
				os.MkdirAll(outside, 0o755)
				os.WriteFile(filepath.Join(outside, "a.txt"), []byte("PRECIOUS"), 0o644)
				os.WriteFile(filepath.Join(outside, "gone.txt"), []byte("PRECIOUS"), 0o644)
				os.RemoveAll(filepath.Join(live, "data"))
				os.Symlink(outside, filepath.Join(live, "data"))
				s.write("data/a.txt", "build v2")
				os.Remove(filepath.Join(s.src, "data/gone.txt"))
			},
			check: func(t *testing.T, s *site, next string) {
				outside := filepath.Join(filepath.Dir(s.root), "outside")
				for _, n := range []string{"a.txt", "gone.txt"} {
					if got, err := os.ReadFile(filepath.Join(outside, n)); err != nil || string(got) != "PRECIOUS" {
						t.Errorf("outside/%s = %q, %v: the deploy wrote through the link", n, got, err)
					}
				}
				if got := s.read("releases/" + next + "/data/a.txt"); got != "build v2" {
					t.Errorf("data/a.txt = %q", got)
				}
			},
		},
		{
			name: "a deleted file is back",
			tamper: func(t *testing.T, s *site, live string) {
				os.Remove(filepath.Join(live, "public/app.js"))
			},
			check: func(t *testing.T, s *site, next string) {
				if got := s.read("releases/" + next + "/public/app.js"); got != "console.log(1)" {
					t.Errorf("public/app.js = %q", got)
				}
			},
		},
		{
			name: "files written with old mtimes are not carried",
			tamper: func(t *testing.T, s *site, live string) {
				old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
				os.MkdirAll(filepath.Join(live, "vendor/pkg"), 0o755)
				os.WriteFile(filepath.Join(live, "vendor/pkg/a.php"), []byte("<?php"), 0o644)
				os.WriteFile(filepath.Join(live, "public/stray.txt"), []byte("stray"), 0o644)
				for _, p := range []string{"vendor/pkg/a.php", "vendor/pkg", "vendor", "public/stray.txt"} {
					os.Chtimes(filepath.Join(live, p), old, old)
				}
			},
			check: func(t *testing.T, s *site, next string) {
				for _, p := range []string{"vendor", "public/stray.txt"} {
					if _, err := os.Lstat(filepath.Join(s.root, "releases", next, p)); err == nil {
						t.Errorf("%s was carried into %s", p, next)
					}
				}
			},
		},
		{
			// Found by the file's ctime, which cannot be set back; BusyBox's find has no
			// -cnewer, so on a BusyBox host only 'ferry check --verify' finds it.
			name:    "a same-size edit with its mtime set back is not carried",
			gnuOnly: true,
			tamper: func(t *testing.T, s *site, live string) {
				p := filepath.Join(live, "public/app.js")
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(p, []byte("console.log(6)"), 0o644)
				os.Chtimes(p, fi.ModTime(), fi.ModTime())
			},
			check: func(t *testing.T, s *site, next string) {
				if got := s.read("releases/" + next + "/public/app.js"); got != "console.log(1)" {
					t.Errorf("public/app.js = %q: the edit was carried into the next release", got)
				}
				if !s.rep.warned("public/app.js") {
					t.Errorf("no warning names the edited file; warnings %q", s.rep.warnings)
				}
			},
		},
	} {
		for _, where := range []string{"local", "ssh-gnu", "ssh-busybox"} {
			if tc.gnuOnly && where == "ssh-busybox" {
				continue
			}
			t.Run(where+"/"+tc.name, func(t *testing.T) {
				var s *site
				if where == "local" {
					s = newSite(t, tc.extra)
				} else {
					s, _ = sshSite(t, where == "ssh-busybox", tc.extra)
				}
				if tc.prepare != nil {
					tc.prepare(s)
				}
				first := s.mustDeploy()
				tc.tamper(t, s, filepath.Join(s.root, "releases", first))
				s.write("public/index.html", "v2")
				res, err := s.deploy()
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, s, res.Release)
				if err := matchCurrent(s); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// Names that need quoting in every message of the scripts: a double quote in the root and in
// a read-only directory of the build.
func TestQuotesInTheRootAndInADirectoryName(t *testing.T) {
	dir := t.TempDir()
	s := newSite(t, "")
	s.root = filepath.Join(dir, `my"app $(touch pwned)`)
	s.cfg.Root = s.root
	s.write(`odd"dir/f.txt`, "x")
	os.Chmod(filepath.Join(s.src, `odd"dir`), 0o555)
	defer os.Chmod(filepath.Join(s.src, `odd"dir`), 0o755)
	s.mustDeploy()
	s.write("public/index.html", "v2")
	s.mustDeploy()
	if _, err := os.Stat(filepath.Join(s.src, "..", "pwned")); err == nil {
		t.Fatal("a $(…) in the root ran")
	}
}

// Assets are carried from the previous release only when files are linked from it, and never
// under a directory the new build replaced by a file or a link.
func TestAssetsCarriedOnlyWhereTheyCanBe(t *testing.T) {
	s := newSite(t, "reuse: none\nassets: [public/build]\n")
	s.write("public/build/app.111.js", "v1")
	s.mustDeploy()
	os.Remove(filepath.Join(s.src, "public/build/app.111.js"))
	s.write("public/build/app.222.js", "v2")
	s.mustDeploy()

	s = newSite(t, "assets: [public/build]\n")
	s.write("public/build/js/app.111.js", "v1")
	s.mustDeploy()
	os.RemoveAll(filepath.Join(s.src, "public/build/js"))
	s.write("public/build/js", "now a file")
	s.mustDeploy()
}

func matchCurrent(s *site) error {
	s.t.Helper()
	for _, err := range invariantsOf(s) {
		return err
	}
	return nil
}

// Deleting old releases changes the ctime of the live files they share inodes with; deploys
// back to back, each deleting one, must still take those files for unchanged (ferry did it), and
// send only what changed, locally and over SSH.
func TestBackToBackDeploysWithCleanupSendOnlyWhatChanged(t *testing.T) {
	for _, where := range []string{"local", "ssh-gnu"} {
		t.Run(where, func(t *testing.T) {
			var s *site
			if where == "local" {
				s = newSite(t, "keep_releases: 1\n")
			} else {
				s, _ = sshSite(t, false, "keep_releases: 1\n")
			}
			s.writeMany(300)
			s.mustDeploy()
			for i := range 4 {
				s.write("public/index.html", fmt.Sprint("v", i))
				res, err := s.deploy()
				if err != nil {
					t.Fatal(err)
				}
				if st := res.Hosts[0].Stats; st.Sent != 1 {
					t.Errorf("deploy %d sent %d files, want 1 (%+v)", i, st.Sent, st)
				}
			}
			// A deletion still running in the background (its marker is there) may yet change
			// ctimes: the next deploy does not mistake that for an edit.
			s.releaseDirs() // the deletions before are done
			marker := filepath.Join(s.root, ".ferry", "settling.test")
			os.WriteFile(marker, nil, 0o644)
			defer os.Remove(marker)
			os.Chmod(filepath.Join(s.root, "current", "public/d001/f00100.txt"), 0o644) // a new ctime
			s.write("public/index.html", "last")
			res, err := s.deploy()
			if err != nil {
				t.Fatal(err)
			}
			if st := res.Hosts[0].Stats; st.Sent != 1 {
				t.Errorf("deploy during a background deletion sent %d files, want 1 (%+v)", st.Sent, st)
			}
			if len(s.rep.warnings) > 0 {
				t.Errorf("warnings: %q", s.rep.warnings)
			}
		})
	}
}

// 'ferry check' finds a same-size edit of a live file whose mtime was set back, by its ctime
// (GNU hosts); 'ferry check --verify' hashes the live release and finds it on any host.
func TestCheckFindsAnEditWithItsMTimeSetBack(t *testing.T) {
	for _, where := range []string{"local", "ssh-gnu", "ssh-busybox"} {
		t.Run(where, func(t *testing.T) {
			var s *site
			if where == "local" {
				s = newSite(t, "")
			} else {
				s, _ = sshSite(t, where == "ssh-busybox", "")
			}
			s.mustDeploy()
			if fs, err := Check(context.Background(), s.cfg, s.opts, true); err != nil || slices.ContainsFunc(fs, func(f check.Finding) bool { return f.Code == "release-tampered" }) {
				t.Fatalf("check --verify of an untouched release: %v, %v", fs, err)
			}
			p := filepath.Join(s.root, "current", "public/app.js")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(p, []byte("console.log(6)"), 0o644)
			os.Chtimes(p, fi.ModTime(), fi.ModTime())
			finds := func(verify bool, code string) bool {
				fs, err := Check(context.Background(), s.cfg, s.opts, verify)
				if err != nil {
					t.Fatal(err)
				}
				return slices.ContainsFunc(fs, func(f check.Finding) bool {
					return f.Code == code && strings.Contains(f.What, "public/app.js")
				})
			}
			if where != "ssh-busybox" && !finds(false, "release-modified") {
				t.Error("check did not find the edit")
			}
			if !finds(true, "release-tampered") {
				t.Error("check --verify did not find the edit")
			}
		})
	}
}

// A ctime is also changed by what does not change a file's content (a chmod -R of the root by
// config management, a run cut short after it linked the live release): such files are still
// reused, without a warning, while a real edit among them is found.
func TestNewCtimesWithTheSameContentAreNotEdits(t *testing.T) {
	for _, where := range []string{"local", "ssh-gnu"} {
		t.Run(where, func(t *testing.T) {
			var s *site
			if where == "local" {
				s = newSite(t, "")
			} else {
				s, _ = sshSite(t, false, "")
			}
			s.writeMany(200)
			first := s.mustDeploy()
			live := filepath.Join(s.root, "releases", first)
			filepath.WalkDir(live, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					os.Chmod(p, 0o644) // the same mode: a new ctime only
				}
				return nil
			})
			p := filepath.Join(live, "public/app.js")
			fi, _ := os.Stat(p)
			os.WriteFile(p, []byte("console.log(6)"), 0o644)
			os.Chtimes(p, fi.ModTime(), fi.ModTime())
			s.write("public/index.html", "v2")
			res, err := s.deploy()
			if err != nil {
				t.Fatal(err)
			}
			if st := res.Hosts[0].Stats; st.Sent != 2 {
				t.Errorf("sent %d files, want 2: the changed index.html and the edited app.js (%+v)", st.Sent, st)
			}
			if len(s.rep.warnings) != 1 || !strings.Contains(s.rep.warnings[0], "public/app.js") || strings.Contains(s.rep.warnings[0], "d001") {
				t.Errorf("want one warning naming only public/app.js; got %q", s.rep.warnings)
			}
			if got := s.read("current/public/app.js"); got != "console.log(1)" {
				t.Errorf("public/app.js = %q", got)
			}
		})
	}
}
