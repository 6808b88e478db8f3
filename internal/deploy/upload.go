package deploy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/transfer"
)

// prepare makes the new release on one host: one upload request, then the before_activate
// hooks, then (with hooks) the request that completes it.
func (run *hostRun) prepare(ctx context.Context, cfg *config.Config, opts DeployOptions, id, user, src string,
	full *transfer.Manifest, shared []release.SharedPath, cache *manifestCache, once bool, rep Reporter) error {
	root := run.Root
	// Shared paths already in shared/ win over the build: their build copies are not sent. The
	// others are sent so that the host can seed shared/ from them.
	var existing []string
	for _, sp := range shared {
		if _, ok := run.probe.Shared[sp.Path]; ok {
			existing = append(existing, sp.Path)
			if full.Has(sp.Path) {
				rep.Warn(run.Name, fmt.Sprintf("the build ships %s, but shared/%s exists and wins; remove it from the build", sp.Path, sp.Path))
			}
		}
	}
	manifest := full.Without(existing)
	var prevMan *transfer.Manifest
	if run.prevMan != nil {
		// A path that is shared is never linked from the previous release: seeding moves it into
		// shared/, and shared/ must not share an inode with a release.
		prevMan = run.prevMan.Without(cfg.SharedPaths())
	}
	plan := transfer.NewPlan(manifest, prevMan, run.prevID, cfg.Reuse, cfg.Assets)
	lines, err := plan.Manifest.Without(cfg.SharedPaths()).Lines()
	if err != nil {
		return err
	}
	stored := transfer.JoinLines(lines)
	u := &release.Upload{ID: id, Message: opts.Message, User: user, Git: opts.git, Lease: run.lease, Shared: shared, SharedFiles: cfg.Shared.Files}
	for _, rel := range run.state.Incomplete() {
		u.Recover = append(u.Recover, rel.ID)
		rep.Warn(run.Name, fmt.Sprintf("removed incomplete release %s left by an interrupted deploy", rel.ID))
	}
	var changes *transfer.Changes
	files := map[string][]byte{}
	token := ".ferry-" + randomToken()
	if run.prevMan != nil && run.prevFull != nil && cfg.Reuse == transfer.ReuseLink {
		u.Previous = run.prevID
		if lv := run.probe.Live; lv != nil && lv.ID == run.prevID {
			u.Next = lv.Copy
		}
		extra := append(append([]string(nil), run.probe.Live.Links...), run.extra...)
		changes = plan.Changes(run.prevFull, extra)
		u.Remove, u.Writable = changes.Remove, changes.Writable
		if drop, add, result, ok := transfer.Delta(run.prevRaw, lines); ok {
			u.ManifestDrop, u.ManifestAdd = token+".drop", token+".add"
			files[u.ManifestDrop], files[u.ManifestAdd] = drop, add
			stored = result
		}
	} else {
		changes = plan.Changes(nil, nil)
	}
	if u.ManifestDrop == "" {
		u.ManifestFull = token + ".manifest"
		files[u.ManifestFull] = stored
	}
	sum := sha256.Sum256(stored)
	u.ManifestSum = hex.EncodeToString(sum[:])
	for _, d := range changes.Modes {
		u.Modes = append(u.Modes, release.DirMode{Path: d.Path, Mode: d.Mode})
	}
	hooks := hooksOn(cfg.Hooks.BeforeActivate, run.Target, once)
	u.Complete = len(hooks) == 0

	// Upload: one request that copies the previous release as hard links, unpacks what changed
	// and links the shared paths.
	us := time.Now()
	stats := plan.Stats()
	run.result.Stats = stats
	counter, remote := root.Host.(host.Counter)
	var before int64
	if remote {
		s, r := counter.BytesOnWire()
		before = s + r
	}
	add, done := rep.Progress(run.Name, stats.SentBytes)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(plan.Write(pw, src, changes.Send, files, add)) }()
	run.prepared = true // the log may record the release from here on
	prepared, err := root.Prepare(ctx, u, pr)
	pr.CloseWithError(errors.New("upload ended"))
	done()
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	msg := fmt.Sprintf("%s: %s files, %s sent (%s)", id, count(stats.Files), count(stats.Sent), bytesize(stats.SentBytes))
	if remote {
		s, r := counter.BytesOnWire()
		run.result.BytesSent = s + r - before
		msg += fmt.Sprintf(", %s on the wire", bytesize(run.result.BytesSent))
	}
	if stats.Reused > 0 {
		msg += fmt.Sprintf(", %s reused from %s", count(stats.Reused), run.prevID)
	}
	if stats.Carried > 0 {
		msg += fmt.Sprintf(", %s carried over", plural(stats.Carried, "old asset"))
	}
	rep.Step(run.Name, "upload", msg, time.Since(us))
	for _, p := range prepared.Seeded {
		rep.Warn(run.Name, fmt.Sprintf("seeded shared/%s from the build; from now on the shared copy is kept", p))
	}
	run.swap = prepared.Swap

	for _, h := range hooks {
		hs := time.Now()
		env := hookEnv(root.Env(id, run.result.Previous, run.Name), opts.git)
		if err := root.RunHook(ctx, id, hookOf(cfg, h), env, func(p []byte) { rep.Output(run.Name, p) }); err != nil {
			return fmt.Errorf("before_activate %w", err)
		}
		rep.Step(run.Name, "hook", h.Run, time.Since(hs))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if run.swap == nil {
		if run.swap, err = root.Complete(ctx, id, u.ManifestSum, cfg.Shared.Files); err != nil {
			return err
		}
	}
	cache.put(run.Target, id, stored)
	return nil
}

func randomToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hookOf(cfg *config.Config, h config.Hook) release.Hook {
	timeout := time.Duration(h.Timeout)
	if timeout == 0 {
		timeout = time.Duration(cfg.HookTimeout)
	}
	return release.Hook{Script: h.Run, Timeout: timeout}
}

// onceTarget is the host that runs hooks marked once: the first with role migrate, else the first.
// hooksOn is the hooks of a stage that run on t: those limited to roles t has none of are left
// out, and a once hook runs only on the once host.
func hooksOn(hooks []config.Hook, t *Target, once bool) []config.Hook {
	var out []config.Hook
	for _, h := range hooks {
		if (!h.Once || once) && hasRole(t, h.Roles) {
			out = append(out, h)
		}
	}
	return out
}

// hasRole reports whether t has one of roles, or roles is empty (every host).
func hasRole(t *Target, roles []string) bool {
	return len(roles) == 0 || slices.ContainsFunc(roles, func(r string) bool { return slices.Contains(t.Roles, r) })
}

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
