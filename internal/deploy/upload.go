package deploy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	rp, err := run.plan(cfg, manifest)
	if err != nil {
		return err
	}
	// The local host copies the live release while the plan is made. A plan that reuses
	// nothing does not need the copy; one that does is made again without reuse if it failed.
	if lv := run.probe.Live; lv != nil && rp.previous == "" {
		lv.StopCopy()
	} else if lv != nil {
		if reason := lv.WaitCopy(); reason != "" {
			run.noCopy(reason, rep)
			if rp, err = run.plan(cfg, manifest); err != nil {
				return err
			}
		}
	}
	plan, changes, stored := rp.plan, rp.changes, rp.stored
	u := &release.Upload{ID: id, Message: opts.Message, User: user, Git: opts.git, Lease: run.lease, Shared: slices.Clone(shared), SharedFiles: cfg.Shared.Files}
	for _, rel := range run.state.Incomplete() {
		u.Recover = append(u.Recover, rel.ID)
		rep.Warn(run.Name, fmt.Sprintf("removed incomplete release %s left by an interrupted deploy", rel.ID))
	}
	files := map[string][]byte{}
	token := ".ferry-" + randomToken()
	if rp.previous != "" {
		u.Previous = rp.previous
		if lv := run.probe.Live; lv != nil && lv.ID == rp.previous {
			u.Next = lv.Copy
		}
		u.Remove, u.Writable = changes.Remove, changes.Writable
		if rp.drop != nil {
			u.ManifestDrop, u.ManifestAdd = token+".drop", token+".add"
			files[u.ManifestDrop], files[u.ManifestAdd] = rp.drop, rp.add
		}
	}
	if u.ManifestDrop == "" {
		u.ManifestFull = token + ".manifest"
		files[u.ManifestFull] = stored
	}
	// Shared files ferry provisions come in the stream too, and replace shared/ when they differ.
	for i, sp := range u.Shared {
		if content, ok := opts.from[sp.Path]; ok {
			u.Shared[i].Upload = fmt.Sprintf("%s.shared.%d", token, i)
			files[u.Shared[i].Upload] = content
		}
	}
	sum := sha256.Sum256(stored)
	u.ManifestSum = hex.EncodeToString(sum[:])
	for _, d := range changes.Modes {
		u.Modes = append(u.Modes, release.DirMode{Path: d.Path, Mode: d.Mode})
	}
	hooks := hooksOn(run.Target.Cfg.Hooks.BeforeActivate, run.Target, once)
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
	st := Step{Host: run.Name, Kind: StepUpload, Release: id, Files: &stats, Took: time.Since(us)}
	if remote {
		s, r := counter.BytesOnWire()
		run.result.BytesSent = s + r - before
		st.OnWire = run.result.BytesSent
	}
	if stats.Reused > 0 {
		st.From = run.prevID
	}
	rep.Step(st)
	for _, p := range prepared.Provisioned {
		e, _ := cfg.Shared.Entry(p)
		rep.Step(Step{Host: run.Name, Kind: StepShared, Paths: []string{p}, From: e.From})
	}
	for _, p := range prepared.Seeded {
		msg := fmt.Sprintf("seeded shared/%s from the build; from now on the shared copy is kept", p)
		if e, _ := cfg.Shared.Entry(p); e.Mode == "" && slices.Contains(cfg.Shared.Files, p) {
			msg += " (mode 0600, the deploy user's only: give it a mode in ferry.yaml if another user, such as the app's, reads it)"
		}
		rep.Warn(run.Name, msg)
	}
	run.swap = prepared.Swap

	for _, h := range hooks {
		hs := time.Now()
		env := hookEnv(root.Env(id, run.result.Previous, run.Name), opts.git)
		if err := root.RunHook(ctx, id, hookOf(cfg, h), env, func(p []byte) { rep.Output(run.Name, p) }); err != nil {
			return fmt.Errorf("before_activate %w", err)
		}
		rep.Step(Step{Host: run.Name, Kind: StepHook, Command: h.Run, Took: time.Since(hs)})
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

// releasePlan is what a new release takes from the build and the live release.
type releasePlan struct {
	plan     *transfer.Plan
	changes  *transfer.Changes
	previous string // the release whose files are linked, or "" (everything is sent)
	stored   []byte // the new release's manifest as the host stores it
	// drop and add turn the previous release's stored manifest into stored, when that is
	// smaller to send than stored itself.
	drop, add []byte
}

// plan decides what of manifest is linked from the live release and what is sent.
func (run *hostRun) plan(cfg *config.Config, manifest *transfer.Manifest) (*releasePlan, error) {
	var prevMan *transfer.Manifest
	if run.prevMan != nil {
		// A path that is shared is never linked from the previous release: seeding moves it into
		// shared/, and shared/ must not share an inode with a release.
		prevMan = run.prevMan.Without(cfg.SharedPaths())
	}
	rp := &releasePlan{plan: transfer.NewPlan(manifest, prevMan, run.prevID, cfg.Reuse, cfg.Assets)}
	lines, err := rp.plan.Manifest.Without(cfg.SharedPaths()).Lines()
	if err != nil {
		return nil, err
	}
	rp.stored = transfer.JoinLines(lines)
	if run.prevMan == nil || run.prevFull == nil || cfg.Reuse != transfer.ReuseLink {
		rp.changes = rp.plan.Changes(nil, nil)
		return rp, nil
	}
	rp.previous = run.prevID
	extra := append(append([]string(nil), run.probe.Live.Links...), run.extra...)
	rp.changes = rp.plan.Changes(run.prevFull, extra)
	// On this machine the whole manifest costs nothing to send, and nothing to assemble.
	if run.spec.Local {
		return rp, nil
	}
	if drop, add, result, ok := transfer.Delta(run.prevRaw, lines); ok {
		rp.drop, rp.add, rp.stored = drop, add, result
	}
	return rp, nil
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
		out = append(out, sharedPath(cfg, f, false))
	}
	for _, d := range cfg.Shared.Dirs {
		out = append(out, sharedPath(cfg, d, true))
	}
	return out
}

func sharedPath(cfg *config.Config, p string, dir bool) release.SharedPath {
	sp := release.SharedPath{Path: p, IsDir: dir}
	if e, ok := cfg.Shared.Entry(p); ok {
		if m, err := strconv.ParseUint(e.Mode, 8, 32); err == nil {
			sp.Mode = fs.FileMode(m)
		}
		sp.Owner = e.Owner
	}
	return sp
}

// missingShared refuses a deploy before it changes anything when a shared file is on none of
// the places it can come from: on the host (shared/), in the build (seeded from it), or from
// this machine (from:). Deploying it anyway would give the app an empty file (a .env without
// its variables) and break it after the swap. present says whether host has shared file p.
func missingShared(cfg *config.Config, full *transfer.Manifest, from map[string][]byte, hosts []*locked, present func(l *locked, p string) bool) error {
	var missing []string
	var example string
	for _, l := range hosts {
		for _, f := range cfg.Shared.Files {
			if _, ok := from[f]; ok || full.Has(f) || present(l, f) {
				continue
			}
			missing = append(missing, l.Name+": shared/"+f)
			if example == "" {
				p := host.Quote(l.Root.Dir + "/shared/" + f)
				example = fmt.Sprintf("umask 077; mkdir -p $(dirname %s) && : >>%s", p, p)
				if !l.spec.Local {
					example = fmt.Sprintf("ssh %s %s", host.Quote(l.spec.SSH), host.Quote(example))
				}
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &release.HintError{
		Err:  fmt.Errorf("shared files on neither the host nor in the build, and without from: %s: %w", strings.Join(missing, ", "), config.ErrConfig),
		Hint: fmt.Sprintf("create each on its host, then fill it in (%s), or seed it from the build, or give it from: in ferry.yaml (a file on this machine that ferry uploads)", example),
	}
}

// maxFromSize is the largest file shared.files' from may name: a secret or a config, not data.
const maxFromSize = 1 << 20

// readFrom reads the content of every shared file with from, on this machine, relative to
// ferry.yaml. A missing or oversized file is an error before any host is touched.
func readFrom(cfg *config.Config) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, e := range cfg.Shared.FileEntries {
		if e.From == "" {
			continue
		}
		p := e.From
		if !filepath.IsAbs(p) {
			p = filepath.Join(cfg.Dir, p)
		}
		fi, err := os.Stat(p)
		if err == nil && !fi.Mode().IsRegular() {
			err = errors.New("not a regular file")
		}
		if err == nil && fi.Size() > maxFromSize {
			err = fmt.Errorf("%d bytes, more than the %d a shared file from this machine may have", fi.Size(), maxFromSize)
		}
		var b []byte
		if err == nil {
			b, err = os.ReadFile(p)
		}
		if err != nil {
			return nil, fmt.Errorf("shared file %s: from %s: %w: %w", e.Path, e.From, err, config.ErrConfig)
		}
		out[e.Path] = b
	}
	return out, nil
}
