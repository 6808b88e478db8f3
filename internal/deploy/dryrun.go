package deploy

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/transfer"
)

// Plan is what a dry run would do on one host.
type Plan struct {
	Host     string         `json:"host"`
	Root     string         `json:"root"`
	NewRoot  bool           `json:"new_root,omitempty"`
	Release  string         `json:"release"`
	Previous string         `json:"previous,omitempty"`
	Stats    transfer.Stats `json:"files"`
	Shared   []string       `json:"shared,omitempty"`
	Seed     []string       `json:"seed,omitempty"`
	Hooks    []string       `json:"hooks,omitempty"`
	After    []string       `json:"after_activate,omitempty"`
	Services []string       `json:"services,omitempty"`
	Health   string         `json:"health,omitempty"`
	Removes  []string       `json:"removes,omitempty"`
	Locked   string         `json:"locked_by,omitempty"`
}

// dryRun reads each host's state, touching nothing, and returns the plan in the result: what
// would be sent and reused, the shared paths, hooks (a once hook on its one host), services,
// the health check and cleanup, with the warnings the deploy would give.
func dryRun(cfg *config.Config, targets []*Target, full *transfer.Manifest, start time.Time, rep Reporter) (*Result, error) {
	res := &Result{DryRun: true}
	once := onceTarget(targets)
	warned := false
	var plans []*Plan
	var states []*release.State
	for _, t := range targets {
		p := &Plan{Host: t.Name, Root: t.Root.Dir}
		probe, err := t.Root.Probe(context.Background(), release.ProbeOptions{Live: true, Shared: sharedPaths(cfg)})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		p.NewRoot = probe.Missing
		st := probe.State
		if h := probe.Holder; h != nil {
			p.Locked = h.String()
		}
		var prev *transfer.Manifest
		if lv := probe.Live; lv != nil && lv.ID == st.Current {
			prev, _ = transfer.ParseManifest(lv.Manifest)
			p.Previous = lv.ID
		}
		var existing []string
		for sp := range probe.Shared {
			existing = append(existing, sp)
		}
		p.Stats = transfer.NewPlan(full.Without(existing), prev, p.Previous, cfg.Reuse, cfg.Assets).Stats()
		for _, sp := range cfg.SharedPaths() {
			if !slices.Contains(existing, sp) && full.Has(sp) {
				p.Seed = append(p.Seed, sp)
			}
			p.Shared = append(p.Shared, sp)
		}
		if !warned {
			for _, f := range destructiveMigrations(cfg, full, prev) {
				rep.Warn(t.Name, "destructive migration "+f+": old code runs against the new schema until the swap; drop in a later release (expand and contract)")
			}
			warned = true
		}
		for _, h := range hooksOn(t.Cfg.Hooks.BeforeActivate, t, t == once) {
			p.Hooks = append(p.Hooks, h.Run)
		}
		for _, h := range hooksOn(t.Cfg.Hooks.AfterActivate, t, t == once) {
			p.After = append(p.After, h.Run)
		}
		for _, sv := range servicesOn(t) {
			var what string
			switch {
			case sv.Socket():
				what = fmt.Sprintf("start %s in the new release before the swap, then %s.sock -> it; the previous release's process gets SIG%s and %s to drain", sv.Start, sv.Name, sv.StopSignal, time.Duration(*sv.Drain))
			case sv.Reload != "" && sv.Restart != "":
				what = fmt.Sprintf("reload: %s (restart: %s when a shared file changed)", sv.Reload, sv.Restart)
			case sv.Reload != "":
				what = "reload: " + sv.Reload
			case sv.RestartAlways:
				what = "restart: " + sv.Restart
			default:
				what = fmt.Sprintf("restart: %s, only when a shared file changed", sv.Restart)
			}
			p.Services = append(p.Services, sv.Name+": "+what)
		}
		if h := t.Cfg.Health; h != nil {
			p.Health = fmt.Sprintf("GET %s, expect %d", h.URL, h.ExpectStatus)
			if h.Contains != "" {
				p.Health += fmt.Sprintf(" with %q in the body", h.Contains)
			}
		}
		plans = append(plans, p)
		states = append(states, st)
	}
	id := release.NewID(time.Now(), states...)
	res.Release = id
	for i, p := range plans {
		p.Release = id
		// Cleanup as it would run after activation: the new release complete and current.
		st := *states[i]
		st.Releases = append(append([]*release.Release(nil), st.Releases...), &release.Release{ID: id, Status: release.StatusComplete, Exists: true})
		st.Current = id
		p.Removes = st.Removable(cfg.Keep(), "")
		res.Hosts = append(res.Hosts, &HostResult{Host: p.Host, Previous: p.Previous, Stats: p.Stats, Removed: p.Removes})
		res.Plans = append(res.Plans, p)
	}
	res.Duration = time.Since(start)
	return res, nil
}
