package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/invariants"
)

// site is a build directory and a deploy root in temporary directories, with a ferry.yaml.
type site struct {
	t    *testing.T
	root string
	src  string
	cfg  *config.Config
	rep  *recorder
	opts Options
}

// optsWith returns the site's options changed by fn.
func (s *site) optsWith(fn func(*Options)) Options {
	o := s.opts
	fn(&o)
	return o
}

// newSite writes a config with the given extra YAML and a small build.
func newSite(t *testing.T, extra string) *site {
	t.Helper()
	dir := t.TempDir()
	s := &site{t: t, root: filepath.Join(dir, "srv"), src: filepath.Join(dir, "build"), rep: &recorder{}}
	t.Cleanup(func() { waitSettled(t, s.root) })
	s.opts.CacheDir = filepath.Join(dir, "cache")
	s.write("public/index.html", "hello")
	s.write("public/app.js", "console.log(1)")
	yml := fmt.Sprintf("root: %s\nsource: ./build\n%s", s.root, extra)
	cfgPath := filepath.Join(dir, "ferry.yaml")
	if err := os.WriteFile(cfgPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s.cfg = cfg
	return s
}

func loadConfig(p string) (*config.Config, error) { return config.Load(p) }

// hostShared creates empty shared files in root, as an operator does on a host before its first
// deploy (ferry refuses to deploy a shared file that is nowhere).
func hostShared(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		f := filepath.Join(root, "shared", p)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *site) write(rel, content string) {
	s.t.Helper()
	p := filepath.Join(s.src, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *site) deploy() (*Result, error) {
	return Deploy(context.Background(), s.cfg, DeployOptions{Options: s.opts, Message: "test"}, s.rep)
}

func (s *site) mustDeploy() string {
	s.t.Helper()
	res, err := s.deploy()
	if err != nil {
		s.t.Fatalf("deploy: %v", err)
	}
	s.check()
	return res.Release
}

func (s *site) mustRollback(id string) *RollbackResult {
	s.t.Helper()
	res, err := Rollback(context.Background(), s.cfg, id, s.opts, s.rep)
	if err != nil {
		s.t.Fatalf("rollback: %v", err)
	}
	s.check()
	return res
}

// check asserts every invariant on the settled root.
func (s *site) check() {
	s.t.Helper()
	for _, err := range invariants.Check(s.root, invariants.Options{Settled: true, Shared: s.cfg.SharedPaths()}) {
		s.t.Error(err)
	}
}

// current returns the release id current points at, read from the link as a user would.
func (s *site) current() string {
	s.t.Helper()
	target, err := os.Readlink(filepath.Join(s.root, "current"))
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimPrefix(target, "releases/")
}

func (s *site) read(rel string) string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.root, rel))
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

// releaseDirs lists releases/ on disk.
func (s *site) releaseDirs() []string {
	s.t.Helper()
	return releasesIn(s.t, s.root)
}

// releasesIn lists releases/ of root as a user would, once ferry's background deletions there
// (releases/.ferry-trash-*) are done.
func releasesIn(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	waitFor(t, "releases being deleted in the background to go", func() bool {
		entries, err := os.ReadDir(filepath.Join(root, "releases"))
		if err != nil {
			t.Fatal(err)
		}
		out = out[:0]
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".ferry-trash-") {
				return false
			}
			out = append(out, e.Name())
		}
		return true
	})
	return out
}

// recorder is a Reporter that keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	steps    []string // as Step keeps them
	kept     []Step
	warnings []string
	output   strings.Builder
}

// Step keeps each step as "host kind {its fields}"; the wording is the cli's.
func (r *recorder) Step(s Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kept = append(r.kept, s)
	s.Took = 0
	r.steps = append(r.steps, fmt.Sprintf("%s %s %+v", s.Host, s.Kind, s))
}

func (r *recorder) Warn(host, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnings = append(r.warnings, msg)
}

func (r *recorder) Output(host string, p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.output.Write(p)
}

func (r *recorder) Progress(string, int64) (func(int64), func()) { return func(int64) {}, func() {} }

func (r *recorder) warned(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.warnings {
		if strings.Contains(w, substr) {
			return true
		}
	}
	return false
}
