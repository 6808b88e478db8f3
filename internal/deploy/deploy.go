package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/human"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/transfer"
)

// DeployOptions are the flags of 'ferry deploy'.
type DeployOptions struct {
	Options
	Message    string
	DryRun     bool
	NoBuild    bool // with DryRun: scan the build output as it is, without running the build
	KeepFailed bool
	// Rolling activates Batch hosts at a time, stopping at the first batch that fails; the
	// default activates every host at once.
	Rolling bool
	Batch   int
	// Now is the clock release ids are made from; tests turn it back.
	Now func() time.Time
	// Ref, when set, ships a clean export of this git ref (a branch, tag or commit of the
	// repository that holds ferry.yaml) instead of the work tree; the build runs in the export.
	Ref string

	git  *release.Git      // the commit the build comes from, read by Deploy
	from map[string][]byte // the content of shared files with from, by path, read by Deploy
}

// HostResult is what a deploy did on one host.
type HostResult struct {
	Host      string         `json:"host"`
	BytesSent int64          `json:"bytes_sent,omitempty"` // on the wire, for SSH hosts
	Previous  string         `json:"previous,omitempty"`
	Stats     transfer.Stats `json:"files"`
	Removed   []string       `json:"removed,omitempty"`
	// RoundTrips counts the requests that waited for the host's answer after the SSH
	// handshake; WireBytes the bytes of the whole connection, both ways, handshake included.
	RoundTrips int64 `json:"round_trips,omitempty"`
	WireBytes  int64 `json:"wire_bytes,omitempty"`
}

// Result is the outcome of a deploy.
type Result struct {
	Release  string        `json:"release"`
	Git      *release.Git  `json:"git,omitempty"`
	DryRun   bool          `json:"dry_run,omitempty"`
	Hosts    []*HostResult `json:"hosts"`
	Duration time.Duration `json:"duration_ns"`
	Plans    []*Plan       `json:"plans,omitempty"` // dry run only
}

// activateAll switches every host over at once, or batch by batch with Rolling. A rolling
// deploy stops at the first batch whose activation or health check fails: that batch is swapped
// back, the batches before it stay on the new release, the ones after it were never touched.
func activateAll(ctx context.Context, cfg *config.Config, opts DeployOptions, moves []*move, id string, rep Reporter) error {
	if !opts.Rolling {
		return switchover(ctx, cfg, moves, id, release.EventActivate, true, rep)
	}
	batch := max(opts.Batch, 1)
	var done []string
	for i := 0; i < len(moves); i += batch {
		part := moves[i:min(i+batch, len(moves))]
		if err := switchover(ctx, cfg, part, id, release.EventActivate, true, rep); err != nil {
			var rest []string
			for _, m := range moves[i+len(part):] {
				rest = append(rest, m.Name)
				m.swap.Abort(ctx)
			}
			// What the failed batch did is in err; the earlier batches stay on the new release.
			return fmt.Errorf("rolling deploy stopped at batch %d: %w; earlier batches stay on %s: %s; not reached, untouched: %s",
				i/batch+1, err, id, orNone(done), orNone(rest))
		}
		for _, m := range part {
			done = append(done, m.Name)
		}
	}
	return nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// hostRun is the state of one host during a deploy.
type hostRun struct {
	*locked
	state    *release.State
	prevID   string
	prevRaw  []byte             // the live release's stored manifest
	prevFull *transfer.Manifest // parsed
	prevMan  *transfer.Manifest // what of it the host can reuse: files not changed since
	extra    []string           // paths of the live release not to keep in its copy
	result   *HostResult
	prepared bool
	swap     *release.Swap
}

// Deploy ships cfg's source to every selected host as a new release and activates it on all
// of them, or on none. Each host costs a handful of requests: one probe (lock, recovery, state,
// what changed in the live release), one upload that prepares the whole release, the swap's
// rename, and one request that logs it, cleans up and unlocks.
func Deploy(ctx context.Context, cfg *config.Config, opts DeployOptions, rep Reporter) (*Result, error) {
	res, err := deploy(ctx, cfg, &opts, rep)
	var se *transfer.SourceError
	if err == nil || opts.DryRun || errors.Is(err, release.ErrLocked) || errors.Is(err, config.ErrConfig) || errors.As(err, &se) {
		return res, err // done, or refused before anything was tried: nothing to alert about
	}
	status := "failed"
	if errors.Is(err, ErrRolledBack) {
		status = "rolled_back"
	}
	env := []string{"FERRY_STATUS=" + status, "FERRY_ERROR=" + err.Error()}
	if res != nil {
		env = append(env, "FERRY_RELEASE="+res.Release)
	}
	if opts.git != nil {
		env = append(env, "FERRY_COMMIT="+opts.git.Commit)
	}
	hctx := context.WithoutCancel(ctx)
	eventHooks(hctx, cfg, opts.Options, "on_failure", cfg.Hooks.OnFailure, env, rep)
	if status == "rolled_back" {
		eventHooks(hctx, cfg, opts.Options, "after_rollback", cfg.Hooks.AfterRollback, env, rep)
	}
	return res, err
}

func deploy(ctx context.Context, cfg *config.Config, opts *DeployOptions, rep Reporter) (*Result, error) {
	start := time.Now()
	if opts.Ref != "" {
		dir, g, cleanup, err := exportRef(ctx, cfg.Dir, opts.Ref)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		rep.Step(Step{Host: "local", Kind: StepExport, Ref: opts.Ref, Commit: g.Commit, Dir: dir, Took: time.Since(start)})
		// The source and the build are the export's; the work tree is left alone.
		c := *cfg
		c.Dir = dir
		cfg = &c
		opts.git = g
	} else {
		opts.git = gitOf(ctx, cfg.Dir)
		if err := checkGit(cfg, opts.git, rep); err != nil {
			return nil, err
		}
	}
	from, err := readFrom(cfg)
	if err != nil {
		return nil, err
	}
	opts.from = from
	targets, err := connect(ctx, cfg, opts.Options, !opts.DryRun, !opts.DryRun)
	if err != nil {
		return nil, err
	}
	defer closeAll(targets)
	if opts.DryRun {
		// The build runs (it is this machine's) so that the plan is the deploy's; no lock is
		// taken and no host is changed.
		if cfg.Build != nil && !opts.NoBuild {
			if err := build(ctx, cfg, rep); err != nil {
				return nil, err
			}
		}
		full, err := scan(cfg, rep)
		if err != nil {
			return nil, err
		}
		return dryRun(cfg, targets, full, start, rep)
	}

	cache := openCache(opts.CacheDir)
	shared := sharedPaths(cfg)
	probe := func(t *Target) release.ProbeOptions {
		return release.ProbeOptions{Live: true, Cached: cache.ids(t), Shared: shared, Plain: t.spec.Local, Copy: cfg.Reuse == transfer.ReuseLink}
	}
	// With a build, every lock is taken first and the build runs under them: a second deploy
	// exits 3 (or queues) before it rebuilds what the first one is uploading.
	var hosts []*locked
	if cfg.Build != nil {
		if hosts, err = lockAll(ctx, targets, opts.Options, probe, false, true, rep); err != nil {
			return nil, err
		}
		stop := keepAlive(targets)
		err := build(ctx, cfg, rep)
		stop()
		if err != nil {
			unlockAll(ctx, hosts)
			return nil, err
		}
	}

	// The build is scanned while every host is probed and locked (after a build, on its own).
	var full *transfer.Manifest
	var scanErr error
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		full, scanErr = scan(cfg, rep)
	}()
	if hosts == nil {
		hosts, err = lockAll(ctx, targets, opts.Options, probe, false, true, rep)
	}
	if err == nil && !slices.ContainsFunc(hosts, func(l *locked) bool { return l.probe.Missing }) {
		// While the scan goes on, each host's live manifest is read and compared.
		runs, err := newRuns(ctx, cfg, hosts, cache, rep)
		<-scanned
		return deployLocked(ctx, cfg, *opts, runs, targets, full, scanErr, err, shared, cache, start, rep)
	}
	<-scanned
	if err == nil && scanErr != nil {
		unlockAll(ctx, hosts)
		return nil, scanErr
	}
	if err != nil {
		return nil, err
	}
	if err := missingShared(cfg, full, opts.from, hosts, func(l *locked, p string) bool { _, ok := l.probe.Shared[p]; return ok }); err != nil {
		unlockAll(ctx, hosts)
		return nil, err
	}
	// A first deploy creates the root only once the build is known to be good.
	unlockAll(ctx, hosts)
	if hosts, err = lockAll(ctx, targets, opts.Options, probe, true, false, rep); err != nil {
		return nil, err
	}
	runs, err := newRuns(ctx, cfg, hosts, cache, rep)
	return deployLocked(ctx, cfg, *opts, runs, targets, full, nil, err, shared, cache, start, rep)
}

// keepAlive keeps the SSH connections of targets from looking idle (to a NAT or a firewall)
// while the build runs, with a request every 30 s; stop ends it.
func keepAlive(targets []*Target) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, tg := range targets {
					if k, ok := tg.Root.Host.(interface{ KeepAlive() error }); ok {
						_ = k.KeepAlive()
					}
				}
			}
		}
	}()
	return func() { close(done) }
}

// newRuns starts the run of every locked host and reads what its live release offers.
func newRuns(ctx context.Context, cfg *config.Config, hosts []*locked, cache *manifestCache, rep Reporter) ([]*hostRun, error) {
	runs := make([]*hostRun, len(hosts))
	for i, l := range hosts {
		runs[i] = &hostRun{locked: l, state: l.probe.State, result: &HostResult{Host: l.Name, Previous: l.probe.State.Current}}
	}
	err := eachOf(runs, 0, func(run *hostRun) error {
		return run.previous(ctx, cfg, cache, rep)
	})
	return runs, err
}

// deployLocked deploys to hosts whose locks runs hold; every lock is given back when it returns.
func deployLocked(ctx context.Context, cfg *config.Config, opts DeployOptions, runs []*hostRun, targets []*Target,
	full *transfer.Manifest, scanErr, err error, shared []release.SharedPath, cache *manifestCache, start time.Time, rep Reporter) (*Result, error) {
	// Every exit that does not give a host's lock back in its last request gives it back here.
	defer func() {
		var left []*locked
		for _, run := range runs {
			if run != nil && run.lease != nil {
				left = append(left, run.locked)
			}
		}
		unlockAll(ctx, left)
	}()
	if scanErr != nil {
		return nil, scanErr
	}
	if err != nil {
		return nil, err
	}
	locks := make([]*locked, len(runs))
	for i, run := range runs {
		locks[i] = run.locked
	}
	if err := missingShared(cfg, full, opts.from, locks, func(l *locked, p string) bool { _, ok := l.probe.Shared[p]; return ok }); err != nil {
		return nil, err
	}
	src := cfg.SourceDir()
	states := make([]*release.State, len(runs))
	for i, run := range runs {
		states[i] = run.state
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	id := release.NewID(now(), states...)
	res := &Result{Release: id, Git: opts.git}
	for _, run := range runs {
		res.Hosts = append(res.Hosts, run.result)
	}

	// The cheap part of ferry check: migrations that break the code still running.
	// The build is the same for every host; the first host's live release will do.
	for _, f := range destructiveMigrations(cfg, full, runs[0].prevFull) {
		rep.Warn(runs[0].Name, "destructive migration "+f+": old code runs against the new schema until the swap; drop in a later release (expand and contract)")
	}

	// prepare: every host in parallel; nothing is swapped anywhere unless all succeed.
	onceHost := onceTarget(targets)
	user := release.CurrentHolder("").User
	err = eachOf(runs, 0, func(run *hostRun) error {
		// While the release is prepared: can the health check reach the host at all?
		reach := make(chan error, 1)
		go func() { reach <- healthReachable(ctx, run.Target) }()
		err := run.prepare(ctx, cfg, opts, id, user, src, full, shared, cache, run.Target == onceHost, rep)
		if rerr := <-reach; err == nil {
			err = rerr
		}
		if err == nil {
			err = startProcesses(ctx, cfg, run.Target, id, run.state.Current, false, rep)
		}
		return err
	})
	if err != nil {
		_ = eachOf(runs, 0, func(run *hostRun) error {
			if !run.prepared {
				return nil
			}
			d, ferr := run.Root.Fail(context.WithoutCancel(ctx), id, err, opts.KeepFailed, &release.Wrapup{Lease: run.lease})
			if ferr != nil {
				rep.Warn(run.Name, fmt.Sprintf("could not remove failed release %s: %v", id, ferr))
				return nil
			}
			run.lease = nil
			for _, w := range d.Warnings {
				rep.Warn(run.Name, w)
			}
			if opts.KeepFailed {
				rep.Warn(run.Name, fmt.Sprintf("kept the failed release for inspection: %s", run.Root.ReleaseDir(id)))
			}
			return nil
		})
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted while preparing %s; nothing was activated: %w", id, ctx.Err())
		}
		return nil, fmt.Errorf("prepare %s failed, nothing was activated: %w", id, err)
	}

	// activate: from here an interrupt no longer stops ferry halfway; it finishes or swaps back.
	actx := context.WithoutCancel(ctx)
	moves := make([]*move, len(runs))
	for i, run := range runs {
		moves[i] = &move{Target: run.Target, from: run.state.Current, last: run.state.LastShared, swap: run.swap}
		if len(hooksOn(run.Target.Cfg.Hooks.AfterActivate, run.Target, run.Target == onceHost)) == 0 {
			moves[i].wrapup = run.wrapup(cfg, id)
		}
	}
	if err := activateAll(actx, cfg, opts, moves, id, rep); err != nil {
		return nil, fmt.Errorf("activate %s: %w", id, err)
	}

	// finish: problems here are warnings; the release stays live. An interrupt stops the
	// after_activate hooks (their process groups are killed); the run still cleans up and
	// unlocks, and says what did not run.
	_ = eachOf(runs, 0, func(run *hostRun) error {
		m := moves[slices.Index(runs, run)]
		for _, h := range hooksOn(run.Target.Cfg.Hooks.AfterActivate, run.Target, run.Target == onceHost) {
			if ctx.Err() != nil {
				rep.Warn(run.Name, fmt.Sprintf("interrupted: after_activate hook %q did not run", h.Run))
				continue
			}
			hs := time.Now()
			env := hookEnv(run.Root.Env(id, run.result.Previous, run.Name), opts.git)
			if err := run.Root.RunHook(ctx, id, hookOf(cfg, h), env, func(p []byte) { rep.Output(run.Name, p) }); err != nil {
				if ctx.Err() != nil {
					rep.Warn(run.Name, fmt.Sprintf("interrupted: after_activate hook %q was stopped", h.Run))
					continue
				}
				rep.Warn(run.Name, fmt.Sprintf("after_activate %v", err))
				continue
			}
			rep.Step(Step{Host: run.Name, Kind: StepHook, Command: h.Run, Took: time.Since(hs)})
		}
		d := m.done
		if d == nil {
			var err error
			cs := time.Now()
			if d, err = run.Root.Finish(actx, run.wrapup(cfg, id)); err != nil {
				rep.Warn(run.Name, fmt.Sprintf("cleanup: %v", err))
				return nil
			}
			if len(d.Removed) > 0 {
				rep.Step(Step{Host: run.Name, Kind: StepCleanup, Removed: d.Removed, Took: time.Since(cs)})
			}
		} else if len(d.Removed) > 0 {
			rep.Step(Step{Host: run.Name, Kind: StepCleanup, Removed: d.Removed})
		}
		run.lease = nil
		run.result.Removed = d.Removed
		stoppedSteps(run.Target, d, rep)
		for _, w := range d.Warnings {
			rep.Warn(run.Name, w)
		}
		return nil
	})
	for _, run := range runs {
		if c, ok := run.Root.Host.(host.Counter); ok {
			sent, received := c.BytesOnWire()
			run.result.RoundTrips, run.result.WireBytes = c.RoundTrips(), sent+received
		}
	}
	res.Duration = time.Since(start)
	if ctx.Err() != nil {
		return res, fmt.Errorf("interrupted after %s was activated (it is live; see the warnings for the after_activate hooks that did not finish): %w", id, ctx.Err())
	}
	return res, nil
}

// wrapup is the end of a deploy on the host: old releases removed, the lock given up. The
// state is the one read under the lock, with the new release complete and current.
func (run *hostRun) wrapup(cfg *config.Config, id string) *release.Wrapup {
	st := *run.state
	st.Releases = append(append([]*release.Release(nil), st.Releases...), &release.Release{ID: id, Status: release.StatusComplete, Exists: true})
	st.Current = id
	for _, rel := range st.Releases {
		rel.Current = rel.ID == id
	}
	return &release.Wrapup{Remove: st.Removable(cfg.Keep(), ""), Reason: "cleanup", Lease: run.lease}
}

// scan reads the build into a manifest, through the hash cache.
func scan(cfg *config.Config, rep Reporter) (*transfer.Manifest, error) {
	start := time.Now()
	src := cfg.SourceDir()
	cache := transfer.OpenHashCache(src)
	full, err := transfer.Scan(src, cfg.Exclude, cache)
	if err != nil {
		return nil, err
	}
	if err := sharedThroughLinks(full, cfg.SharedPaths()); err != nil {
		return nil, err
	}
	cache.Save()
	n, size := full.Without(cfg.SharedPaths()).Files()
	rep.Step(Step{Host: "local", Kind: StepScan, Files: &transfer.Stats{Files: n, Bytes: size}, Dir: src, Took: time.Since(start)})
	if secrets := transfer.Secrets(full, cfg.SharedPaths()); len(secrets) > 0 {
		rep.Warn("local", fmt.Sprintf("%s that look like secrets will be in the release, readable by whoever reads the release (%s): list them under shared.files, or add them to exclude",
			human.Plural(len(secrets), "file"), strings.Join(secrets[:min(3, len(secrets))], ", ")))
	}
	return full, nil
}

// sharedThroughLinks refuses a build where shared paths and links meet in a way that would
// reach outside the release once the shared paths are links into <root>/shared: a shared path
// under a directory the build has as a link (its link would be made through it, somewhere
// else), and a link that climbs back out of a shared path ("uploads/.." is shared/ itself).
func sharedThroughLinks(m *transfer.Manifest, shared []string) error {
	idx := m.Index()
	for _, sp := range shared {
		for d := path.Dir(sp); d != "."; d = path.Dir(d) {
			if e := idx[d]; e != nil && e.Type == transfer.TypeSymlink {
				return &transfer.SourceError{Path: d, Err: fmt.Errorf("shared path %q is under %q, which the build has as a symlink; make %q a directory in the build", sp, d, d)}
			}
		}
	}
	for _, e := range m.Entries {
		if e.Type != transfer.TypeSymlink {
			continue
		}
		comps := strings.Split(e.Target, "/")
		if dir := path.Dir(e.Path); dir != "." {
			comps = append(strings.Split(dir, "/"), comps...)
		}
		var at []string
		for _, c := range comps {
			switch c {
			case "", ".":
				continue
			case "..":
				if len(at) > 0 && slices.Contains(shared, strings.Join(at, "/")) {
					return &transfer.SourceError{Path: e.Path, Err: fmt.Errorf("symlink %q points to %q, which climbs out of the shared path %q: in the release that is <root>/shared, outside the release", e.Path, e.Target, strings.Join(at, "/"))}
				}
				if len(at) > 0 {
					at = at[:len(at)-1]
				}
			default:
				at = append(at, c)
			}
		}
	}
	return nil
}

// build runs the build command on this machine, in the config's directory.
func build(ctx context.Context, cfg *config.Config, rep Reporter) error {
	bs := time.Now()
	cmd := exec.CommandContext(ctx, "sh", "-c", cfg.Build.Command)
	cmd.Dir = cfg.Dir
	out := &writerFunc{fn: func(p []byte) { rep.Output("local", p) }}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = os.Environ()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %q: %w", cfg.Build.Command, err)
	}
	rep.Step(Step{Host: "local", Kind: StepBuild, Command: cfg.Build.Command, Took: time.Since(bs)})
	return nil
}

type writerFunc struct{ fn func([]byte) }

func (w *writerFunc) Write(p []byte) (int, error) { w.fn(p); return len(p), nil }
