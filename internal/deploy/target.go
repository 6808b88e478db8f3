// Package deploy runs ferry's commands across the hosts of a config: it connects, locks every
// host, prepares releases, activates them together, rolls back on failure, cleans up, and reports
// each step through a Reporter. It holds no layout logic of its own (that is package release)
// and prints nothing itself (that is package cli).
package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/transfer"
)

// Reporter receives what happens, host by host. Implementations must be safe for concurrent use.
type Reporter interface {
	// Step reports a finished step of a host, with how long it took.
	Step(host, step, msg string, took time.Duration)
	// Warn reports something the user should know that did not stop the run.
	Warn(host, msg string)
	// Output is raw output of a hook or service command.
	Output(host string, p []byte)
	// Progress starts showing an upload of total bytes to host: add reports bytes sent, done
	// ends it. Either may be a no-op.
	Progress(host string, total int64) (add func(int64), done func())
}

// Target is one host of the config, connected, with its root.
type Target struct {
	Name  string
	Roles []string
	Root  *release.Root
	spec  config.Host
}

// Options common to the commands.
type Options struct {
	Hosts    []string      // limit to these host names; empty: all
	Parallel int           // hosts worked on at once; 0: 10
	LockWait time.Duration // how long to wait for another run's lock
	Command  string        // recorded in the lock
}

// SSHOptions locate the SSH files for ssh hosts; tests point them at their own.
var SSHOptions host.SSHOptions

// connect opens every selected host of cfg, SSH hosts in parallel (at most parallel at once).
func connect(ctx context.Context, cfg *config.Config, only []string, parallel int) ([]*Target, error) {
	var targets []*Target
	for _, hc := range cfg.Hosts {
		name := hc.DisplayName()
		if len(only) > 0 && !slices.Contains(only, name) {
			continue
		}
		root := cfg.Root
		if hc.Root != "" {
			root = hc.Root
		}
		targets = append(targets, &Target{Name: name, Roles: hc.Roles, Root: release.New(nil, root), spec: hc})
	}
	if len(targets) == 0 {
		var names []string
		for _, hc := range cfg.Hosts {
			names = append(names, hc.DisplayName())
		}
		return nil, fmt.Errorf("no host matches --host %s (hosts: %s): %w", strings.Join(only, ","), strings.Join(names, ", "), config.ErrConfig)
	}
	err := eachHostN(targets, parallel, func(t *Target) error {
		if t.spec.Local {
			t.Root.Host = host.NewLocal()
			return nil
		}
		h, err := host.DialSSH(ctx, t.Name, t.spec.SSH, SSHOptions)
		if err != nil {
			return err
		}
		t.Root.Host = h
		return nil
	})
	if err != nil {
		closeAll(targets)
		return nil, err
	}
	return targets, nil
}

func closeAll(targets []*Target) {
	for _, t := range targets {
		if t.Root.Host != nil {
			_ = t.Root.Host.Close()
		}
	}
}

// lockAll takes the lock on every target, or on none: if one host is locked, the locks already
// taken are released and the error names the holder. Only a deploy creates a missing root.
func lockAll(ctx context.Context, targets []*Target, opts Options, create bool, rep Reporter) (unlock func(), err error) {
	me := release.CurrentHolder(opts.Command)
	var unlocks []func() error
	release := func() {
		for _, u := range unlocks {
			_ = u()
		}
	}
	for _, t := range targets {
		start := time.Now()
		if !create {
			if _, err := t.Root.Host.Lstat(t.Root.ReleasesDir()); err != nil {
				release()
				return nil, fmt.Errorf("%s: no releases under %s (%w): deploy first", t.Name, t.Root.Dir, err)
			}
		}
		if err := t.Root.EnsureLayout(); err != nil {
			release()
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		u, err := t.Root.Lock(ctx, me, opts.LockWait, func(msg string) { rep.Warn(t.Name, msg) })
		if err != nil {
			release()
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		unlocks = append(unlocks, u)
		if err := t.Root.Recover(func(msg string) { rep.Warn(t.Name, msg) }); err != nil {
			release()
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		if took := time.Since(start); took > time.Second {
			rep.Step(t.Name, "lock", "acquired after waiting", took)
		}
	}
	return release, nil
}

// eachHost runs fn for every target in parallel and joins the errors, each prefixed by host.
func eachHost(targets []*Target, fn func(t *Target) error) error {
	return eachHostN(targets, 0, fn)
}

// eachHostN is eachHost with at most n hosts at once (0: 10).
func eachHostN(targets []*Target, n int, fn func(t *Target) error) error {
	if n <= 0 {
		n = 10
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	errs := make([]error, len(targets))
	for i, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := fn(t); err != nil {
				errs[i] = fmt.Errorf("%s: %w", t.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// liveManifest returns the manifest of the release current points at, and its id, or nil and
// "" when there is no complete current release with a readable manifest.
func liveManifest(root *release.Root, st *release.State) (*transfer.Manifest, string) {
	cur := st.Find(st.Current)
	if cur == nil || !cur.Live() {
		return nil, ""
	}
	data, err := root.Manifest(cur.ID)
	if err != nil {
		return nil, ""
	}
	m, err := transfer.ParseManifest(data)
	if err != nil {
		return nil, ""
	}
	return m, cur.ID
}

// fileStat is a file's size and mtime as the host sees them.
type fileStat struct {
	Size  int64
	MTime float64 // Unix seconds with fraction
}

// releaseFiles lists the regular files of release id with their size and mtime, with one find(1)
// on the host (GNU find, as every Linux has).
func releaseFiles(ctx context.Context, root *release.Root, id string) (map[string]fileStat, error) {
	out, err := root.Host.Output(ctx, "cd "+host.Quote(root.ReleaseDir(id))+" && find . -type f -printf '%s %T@ %P\\0'")
	if err != nil {
		return nil, fmt.Errorf("list release %s: %w", id, err)
	}
	files := map[string]fileStat{}
	for _, rec := range strings.Split(string(out), "\x00") {
		size, rest, ok1 := strings.Cut(rec, " ")
		mtime, p, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 {
			continue
		}
		n, _ := strconv.ParseInt(size, 10, 64)
		t, _ := strconv.ParseFloat(mtime, 64)
		files[p] = fileStat{Size: n, MTime: t}
	}
	return files, nil
}

// reusable returns prev less the files that no longer match it on the host (edited in place
// since the release was made), so that they are sent instead of linked: a hard link would copy
// the edit into the new release.
func reusable(ctx context.Context, root *release.Root, id string, prev *transfer.Manifest) (*transfer.Manifest, []string, error) {
	files, err := releaseFiles(ctx, root, id)
	if err != nil {
		return nil, nil, err
	}
	out := &transfer.Manifest{Entries: make([]transfer.Entry, 0, len(prev.Entries))}
	var changed []string
	for _, e := range prev.Entries {
		if e.Type == transfer.TypeFile {
			f, ok := files[e.Path]
			if !ok || f.Size != e.Size || int64(f.MTime) != e.MTime {
				changed = append(changed, e.Path)
				continue
			}
		}
		out.Entries = append(out.Entries, e)
	}
	return out, changed, nil
}
