package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/transfer"
	"golang.org/x/sync/errgroup"
)

// DeployOptions are the flags of 'ferry deploy'.
type DeployOptions struct {
	Options
	Message    string
	DryRun     bool
	KeepFailed bool
	// Rolling activates Batch hosts at a time, stopping at the first batch that fails; the
	// default activates every host at once.
	Rolling bool
	Batch   int
	// Now is the clock release ids are made from; tests turn it back.
	Now func() time.Time
}

// HostResult is what a deploy did on one host.
type HostResult struct {
	Host      string         `json:"host"`
	BytesSent int64          `json:"bytes_sent,omitempty"` // on the wire, for SSH hosts
	Previous  string         `json:"previous,omitempty"`
	Stats     transfer.Stats `json:"files"`
	Removed   []string       `json:"removed,omitempty"`
}

// Result is the outcome of a deploy.
type Result struct {
	Release  string        `json:"release"`
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
			}
			return fmt.Errorf("rolling deploy stopped at batch %d: %w; on %s: %s; untouched: %s",
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

// preview is what a host's live release offers for reuse: its manifest less the files that no
// longer match it (changed), when reuse is link.
type preview struct {
	id      string
	man     *transfer.Manifest
	changed []string
	err     error
}

func previewHost(ctx context.Context, cfg *config.Config, t *Target) *preview {
	st, err := t.Root.State()
	if err != nil {
		return &preview{}
	}
	m, id := liveManifest(t.Root, st)
	p := &preview{id: id, man: m}
	if m != nil && cfg.Reuse == transfer.ReuseLink {
		p.man, p.changed, p.err = reusable(ctx, t.Root, id, m)
	}
	return p
}

// hostRun is the state of one host during a deploy.
type hostRun struct {
	*Target
	state    *release.State
	prevMan  *transfer.Manifest
	plan     *transfer.Plan
	result   *HostResult
	prepared bool
}

// Deploy ships cfg's source to every selected host as a new release and activates it on all
// of them, or on none.
func Deploy(ctx context.Context, cfg *config.Config, opts DeployOptions, rep Reporter) (*Result, error) {
	start := time.Now()
	if cfg.Build != nil && !opts.DryRun {
		if err := build(ctx, cfg, rep); err != nil {
			return nil, err
		}
	}
	targets, err := connect(ctx, cfg, opts.Hosts, opts.Parallel)
	if err != nil {
		return nil, err
	}
	defer closeAll(targets)
	// While the build is scanned, each host reads its live release's manifest and checks its
	// files: both are read-only and are used after the lock only if current has not moved.
	previews := make([]*preview, len(targets))
	var wg sync.WaitGroup
	if !opts.DryRun {
		for i, t := range targets {
			wg.Go(func() { previews[i] = previewHost(ctx, cfg, t) })
		}
	}
	scanStart := time.Now()
	src := cfg.SourceDir()
	cache := transfer.OpenHashCache(src)
	full, err := transfer.Scan(src, cfg.Exclude, cache)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	cache.Save()
	shared := sharedPaths(cfg)
	n, size := full.Without(cfg.SharedPaths()).Files()
	rep.Step("local", "scan", fmt.Sprintf("%s files (%s) in %s", count(n), bytesize(size), src), time.Since(scanStart))
	if opts.DryRun {
		return dryRun(cfg, targets, full, start)
	}

	unlock, err := lockAll(ctx, targets, opts.Options, true, rep)
	if err != nil {
		return nil, err
	}
	defer unlock()

	runs := make([]*hostRun, len(targets))
	states := make([]*release.State, len(targets))
	for i, t := range targets {
		st, err := t.Root.State()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		run := &hostRun{Target: t, state: st, result: &HostResult{Host: t.Name, Previous: st.Current}}
		p := previews[i]
		if cur := st.Find(st.Current); cur == nil || !cur.Live() || p.id != st.Current {
			p = previewHost(ctx, cfg, t) // current moved while we scanned: look again, locked
		}
		run.prevMan = p.man
		switch {
		case p.err != nil:
			rep.Warn(t.Name, fmt.Sprintf("cannot verify the files of %s (%v): sending every file", p.id, p.err))
			run.prevMan = nil
		case len(p.changed) > 0:
			rep.Warn(t.Name, fmt.Sprintf("%s of the live release %s changed since it was deployed (%s): sent fresh instead of linked; see 'ferry check'",
				plural(len(p.changed), "file"), p.id, strings.Join(p.changed[:min(3, len(p.changed))], ", ")))
		}
		runs[i] = run
		states[i] = st
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	id := release.NewID(now(), states...)
	res := &Result{Release: id}
	for _, run := range runs {
		res.Hosts = append(res.Hosts, run.result)
	}

	// The cheap part of ferry check: migrations that break the code still running.
	// The build is the same for every host; the first host's live release will do.
	for _, f := range destructiveMigrations(cfg, full, runs[0].prevMan) {
		rep.Warn(runs[0].Name, "destructive migration "+f+": old code runs against the new schema until the swap; drop in a later release (expand and contract)")
	}

	// prepare: every host in parallel; nothing is swapped anywhere unless all succeed.
	onceHost := onceTarget(targets)
	user := release.CurrentHolder("").User
	err = eachHost(targets, func(t *Target) error {
		run := runs[slices.Index(targets, t)]
		return run.prepare(ctx, cfg, opts, id, user, src, full, shared, t == onceHost, rep)
	})
	if err != nil {
		for _, run := range runs {
			if !run.prepared {
				continue
			}
			if ferr := run.Root.Fail(id, err, opts.KeepFailed); ferr != nil {
				rep.Warn(run.Name, fmt.Sprintf("could not remove failed release %s: %v", id, ferr))
			} else if opts.KeepFailed {
				rep.Warn(run.Name, fmt.Sprintf("kept the failed release for inspection: %s", run.Root.ReleaseDir(id)))
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted while preparing %s; nothing was activated: %w", id, ctx.Err())
		}
		return nil, fmt.Errorf("prepare %s failed, nothing was activated: %w", id, err)
	}

	// activate: from here an interrupt no longer stops ferry halfway; it finishes or swaps back.
	actx := context.WithoutCancel(ctx)
	moves := make([]*move, len(runs))
	for i, run := range runs {
		moves[i] = &move{Target: run.Target, from: run.state.Current, last: run.state.LastShared}
	}
	if err := activateAll(actx, cfg, opts, moves, id, rep); err != nil {
		return nil, fmt.Errorf("activate %s: %w", id, err)
	}

	// finish: problems here are warnings; the release stays live.
	_ = eachHost(targets, func(t *Target) error {
		run := runs[slices.Index(targets, t)]
		for _, h := range cfg.Hooks.AfterActivate {
			if h.Once && run.Target != onceHost {
				continue
			}
			hs := time.Now()
			env := run.Root.Env(id, run.result.Previous, run.Name)
			if err := run.Root.RunHook(actx, id, hookOf(cfg, h), env, func(p []byte) { rep.Output(run.Name, p) }); err != nil {
				rep.Warn(run.Name, fmt.Sprintf("after_activate %v", err))
				continue
			}
			rep.Step(run.Name, "hook", h.Run, time.Since(hs))
		}
		cs := time.Now()
		removed, err := run.Root.Cleanup(cfg.Keep(), "")
		run.result.Removed = removed
		if err != nil {
			rep.Warn(run.Name, fmt.Sprintf("cleanup: %v", err))
		} else if len(removed) > 0 {
			rep.Step(run.Name, "cleanup", fmt.Sprintf("removed %s", plural(len(removed), "old release")), time.Since(cs))
		}
		return nil
	})
	res.Duration = time.Since(start)
	return res, nil
}

func (run *hostRun) prepare(ctx context.Context, cfg *config.Config, opts DeployOptions, id, user, src string,
	full *transfer.Manifest, shared []release.SharedPath, once bool, rep Reporter) error {
	root := run.Root
	// Shared paths already in shared/ win over the build: their build copies are not sent. The
	// others are sent so that LinkShared can seed shared/ from them.
	existing, err := root.SharedExisting(shared)
	if err != nil {
		return err
	}
	for _, p := range existing {
		if full.Has(p) {
			rep.Warn(run.Name, fmt.Sprintf("the build ships %s, but shared/%s exists and wins; remove it from the build", p, p))
		}
	}
	manifest := full.Without(existing)
	if err := root.Begin(id, opts.Message, user); err != nil {
		return err
	}
	run.prepared = true

	// Upload: one tar stream; reused files are hard links to the previous release.
	us := time.Now()
	prevID := ""
	if run.prevMan != nil {
		prevID = run.result.Previous
	}
	run.plan = transfer.NewPlan(manifest, run.prevMan, prevID, cfg.Reuse, cfg.Assets)
	stats := run.plan.Stats()
	run.result.Stats = stats
	counter, remote := root.Host.(interface{ BytesSent() int64 })
	var before int64
	if remote {
		before = counter.BytesSent()
	}
	add, done := rep.Progress(run.Name, stats.SentBytes)
	err = upload(ctx, root, run.plan, src, id, add)
	done()
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	msg := fmt.Sprintf("%s: %s files, %s sent (%s)", id, count(stats.Files), count(stats.Sent), bytesize(stats.SentBytes))
	if remote {
		run.result.BytesSent = counter.BytesSent() - before
		msg += fmt.Sprintf(", %s on the wire", bytesize(run.result.BytesSent))
	}
	if stats.Reused > 0 {
		msg += fmt.Sprintf(", %s reused from %s", count(stats.Reused), prevID)
	}
	if stats.Carried > 0 {
		msg += fmt.Sprintf(", %s carried over", plural(stats.Carried, "old asset"))
	}
	rep.Step(run.Name, "upload", msg, time.Since(us))

	if len(shared) > 0 {
		ss := time.Now()
		if err := root.LinkShared(id, shared, func(m string) { rep.Warn(run.Name, m) }); err != nil {
			return err
		}
		rep.Step(run.Name, "shared", fmt.Sprintf("linked %s", plural(len(shared), "shared path")), time.Since(ss))
	}

	for _, h := range cfg.Hooks.BeforeActivate {
		if h.Once && !once {
			continue
		}
		hs := time.Now()
		env := root.Env(id, run.result.Previous, run.Name)
		if err := root.RunHook(ctx, id, hookOf(cfg, h), env, func(p []byte) { rep.Output(run.Name, p) }); err != nil {
			return fmt.Errorf("before_activate %w", err)
		}
		rep.Step(run.Name, "hook", h.Run, time.Since(hs))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := run.plan.Manifest.Without(cfg.SharedPaths()).Marshal()
	if err != nil {
		return err
	}
	return root.Complete(id, data)
}

// uploadStreams is how many tar streams a large upload is split into.
const uploadStreams = 4

// upload sends the plan to the host as tar streams unpacked in releases/: one stream when few
// files are sent (hard links are quick to make); when many are, a skeleton of directories and
// symlinks first, then the files in uploadStreams streams unpacked in parallel, then the modes of
// read-only directories.
func upload(ctx context.Context, root *release.Root, plan *transfer.Plan, src, id string, add func(int64)) error {
	unpack := func(write func(io.Writer) error) error {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(write(pw)) }()
		err := root.Host.Unpack(ctx, root.ReleasesDir(), pr)
		pr.CloseWithError(errors.New("unpack ended"))
		return err
	}
	if plan.Stats().Sent < 256 {
		return unpack(func(w io.Writer) error { return plan.Write(w, src, id, add) })
	}
	if err := unpack(func(w io.Writer) error { return plan.WriteSkeleton(w, id) }); err != nil {
		return err
	}
	var g errgroup.Group
	for k := range uploadStreams {
		g.Go(func() error {
			return unpack(func(w io.Writer) error { return plan.WritePart(w, src, id, k, uploadStreams, add) })
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, d := range plan.ReadOnlyDirs() {
		if err := root.Host.Chmod(root.ReleaseDir(id)+"/"+d.Path, d.Mode); err != nil {
			return err
		}
	}
	return nil
}

func hookOf(cfg *config.Config, h config.Hook) release.Hook {
	timeout := time.Duration(h.Timeout)
	if timeout == 0 {
		timeout = time.Duration(cfg.HookTimeout)
	}
	return release.Hook{Script: h.Run, Timeout: timeout}
}

// onceTarget is the host that runs hooks marked once: the first with role migrate, else the first.
func onceTarget(targets []*Target) *Target {
	for _, t := range targets {
		if slices.Contains(t.Roles, "migrate") {
			return t
		}
	}
	return targets[0]
}

func sharedPaths(cfg *config.Config) []release.SharedPath {
	var out []release.SharedPath
	for _, f := range cfg.Shared.Files {
		out = append(out, release.SharedPath{Path: f})
	}
	for _, d := range cfg.Shared.Dirs {
		out = append(out, release.SharedPath{Path: d, IsDir: true})
	}
	return out
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
	rep.Step("local", "build", cfg.Build.Command, time.Since(bs))
	return nil
}

type writerFunc struct{ fn func([]byte) }

func (w *writerFunc) Write(p []byte) (int, error) { w.fn(p); return len(p), nil }
