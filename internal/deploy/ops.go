package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/release"
)

// ErrNothingToDo marks a command that found nothing to act on, such as a rollback with no
// earlier release.
var ErrNothingToDo = errors.New("nothing to do")

// RollbackResult is what a rollback did.
type RollbackResult struct {
	From string `json:"from"`
	To   string `json:"to"`
	// RoundTrips is the most requests any SSH host waited for after the handshake.
	RoundTrips int64 `json:"round_trips,omitempty"`
}

// Rollback points current back at the previous good release (or at id) on every host. All hosts
// must agree on the target before any is swapped. Nothing is deleted.
func Rollback(ctx context.Context, cfg *config.Config, id string, opts Options, rep Reporter) (*RollbackResult, error) {
	if id != "" {
		if _, err := release.ParseID(id); err != nil {
			return nil, fmt.Errorf("%w: %w", err, config.ErrConfig)
		}
	}
	targets, err := connect(ctx, cfg, opts, false, true)
	if err != nil {
		return nil, err
	}
	defer closeAll(targets)
	// The probe prepares a swap to every release and reads the shared files' hashes, so the
	// rollback itself is one rename and one request that logs it and unlocks.
	probe := func(*Target) release.ProbeOptions {
		return release.ProbeOptions{Links: true, SharedFiles: cfg.Shared.Files}
	}
	hosts, err := lockAll(ctx, targets, opts, probe, false, false, rep)
	if err != nil {
		return nil, err
	}
	defer unlockAll(ctx, hosts)

	var res *RollbackResult
	moves := make([]*move, len(hosts))
	for i, l := range hosts {
		st := l.probe.State
		r := &RollbackResult{From: st.Current}
		if id == "" {
			target, err := st.RollbackTarget()
			if err != nil {
				return nil, fmt.Errorf("%s: %w: %w", l.Name, err, ErrNothingToDo)
			}
			r.To = target.ID
		} else {
			rel := st.Find(id)
			if rel == nil || !rel.Live() {
				return nil, fmt.Errorf("%s: release %s is not a complete release on this host (see 'ferry releases'): %w", l.Name, id, ErrNothingToDo)
			}
			if id == st.Current {
				return nil, fmt.Errorf("%s: release %s is already current: %w", l.Name, id, ErrNothingToDo)
			}
			r.To = id
		}
		if res != nil && *res != *r {
			return nil, fmt.Errorf("hosts disagree: %s would go %s -> %s, another host %s -> %s; roll back each with --host",
				l.Name, r.From, r.To, res.From, res.To)
		}
		res = r
		moves[i] = &move{Target: l.Target, from: st.Current, last: st.LastShared, swap: l.Root.RollbackFrom(l.probe, r.To, r.From), wrapup: &release.Wrapup{Lease: l.lease}}
	}
	err = eachMove(moves, func(m *move) error {
		if m.swap != nil {
			return nil // prepared by the probe
		}
		var err error
		m.swap, err = m.Root.PrepareRollback(ctx, res.To, res.From, cfg.Shared.Files)
		return err
	})
	if err == nil {
		// The target's processes answer before any host swaps (a socket service's process
		// of the release left is stopped when the run ends).
		err = eachMove(moves, func(m *move) error {
			return startProcesses(ctx, cfg, m.Target, res.To, res.From, true, rep)
		})
	}
	if err != nil {
		_ = eachMove(moves, func(m *move) error {
			if m.swap != nil {
				m.swap.Abort(context.WithoutCancel(ctx))
			}
			if len(m.Root.Sockets) > 0 {
				_ = m.Root.KillProcesses(context.WithoutCancel(ctx), res.To)
			}
			return nil
		})
		return nil, err
	}
	// From here an interrupt does not stop ferry: every host is swapped, so none is left split.
	actx := context.WithoutCancel(ctx)
	err = switchover(actx, cfg, moves, res.To, release.EventRollback, false, rep)
	// Every lock is given back here (or was, with the swap's log entry): the processes of the
	// release left behind are asked to stop then, and their drains shown.
	_ = eachOf(moves, 0, func(m *move) error {
		l := hosts[slices.Index(moves, m)]
		d := m.done
		if d == nil {
			var rerr error
			if d, rerr = l.lease.ReleaseDone(actx); rerr != nil {
				rep.Warn(m.Name, fmt.Sprintf("unlock: %v", rerr))
				return nil
			}
			for _, w := range d.Warnings {
				rep.Warn(m.Name, w)
			}
		}
		l.lease = nil
		stoppedSteps(m.Target, d, rep)
		return nil
	})
	for _, l := range hosts {
		if c, ok := l.Root.Host.(host.Counter); ok {
			res.RoundTrips = max(res.RoundTrips, c.RoundTrips())
		}
	}
	if err == nil {
		eventHooks(context.WithoutCancel(ctx), cfg, opts, "after_rollback", cfg.Hooks.AfterRollback,
			[]string{"FERRY_STATUS=rolled_back", "FERRY_RELEASE=" + res.To, "FERRY_PREVIOUS_RELEASE=" + res.From}, rep)
	}
	return res, err
}

// Cleanup removes old, failed and incomplete releases on every host.
func Cleanup(ctx context.Context, cfg *config.Config, opts Options, rep Reporter) (map[string][]string, error) {
	targets, err := connect(ctx, cfg, opts, false, false)
	if err != nil {
		return nil, err
	}
	defer closeAll(targets)
	hosts, err := lockAll(ctx, targets, opts, func(*Target) release.ProbeOptions { return release.ProbeOptions{} }, false, false, rep)
	if err != nil {
		return nil, err
	}
	defer unlockAll(ctx, hosts)
	out := map[string][]string{}
	var mu sync.Mutex
	err = eachHost(targets, func(t *Target) error {
		l := hosts[slices.Index(targets, t)]
		start := time.Now()
		d, err := t.Root.Cleanup(ctx, l.probe.State, cfg.Keep(), l.lease)
		if err != nil {
			return err
		}
		l.lease = nil
		mu.Lock()
		out[t.Name] = d.Removed
		mu.Unlock()
		for _, w := range d.Warnings {
			rep.Warn(t.Name, w)
		}
		rep.Step(Step{Host: t.Name, Kind: StepCleanup, Removed: d.Removed, Kept: cfg.Keep(), Took: time.Since(start)})
		return nil
	})
	return out, err
}

// HostStatus is what 'ferry status' and 'ferry releases' show for one host.
type HostStatus struct {
	Host       string             `json:"host"`
	Root       string             `json:"root"`
	Current    string             `json:"current"`
	Lock       *release.Holder    `json:"lock,omitempty"`
	LockStale  bool               `json:"lock_stale,omitempty"`
	Incomplete []string           `json:"incomplete"`
	Unknown    []string           `json:"unknown,omitempty"`
	Rollback   string             `json:"rollback_target,omitempty"`
	Releases   []*release.Release `json:"releases"`
	// Sockets maps each socket service's stable link to the release it points at; Processes
	// are the socket services' processes.
	Sockets   map[string]string `json:"sockets,omitempty"`
	Processes []release.Process `json:"processes,omitempty"`
	// Error is why the host could not be read (unreachable, refused); the rest is then empty.
	Error string `json:"error,omitempty"`
}

// Status reads every host's state without taking the lock and without changing anything: one
// request a host, all hosts at once. A host that cannot be read does not hide the others: its
// status holds the error, and the error returned names every such host.
func Status(ctx context.Context, cfg *config.Config, opts Options) ([]*HostStatus, error) {
	targets, err := selectTargets(cfg, opts)
	if err != nil {
		return nil, err
	}
	defer closeAll(targets)
	out := make([]*HostStatus, len(targets))
	err = eachHostN(targets, opts.Parallel, func(t *Target) error {
		hs, err := statusOf(ctx, t, opts)
		if err != nil {
			hs = &HostStatus{Host: t.Name, Root: t.Root.Dir, Error: err.Error(), Incomplete: []string{}, Releases: []*release.Release{}}
		}
		out[slices.Index(targets, t)] = hs
		return err
	})
	return out, err
}

// statusOf connects to t and reads its state.
func statusOf(ctx context.Context, t *Target, opts Options) (*HostStatus, error) {
	if err := dial(ctx, t, opts, false, false); err != nil {
		return nil, err
	}
	p, err := t.Root.Probe(ctx, release.ProbeOptions{Processes: true})
	if err != nil {
		return nil, err
	}
	st := p.State
	hs := &HostStatus{Host: t.Name, Root: t.Root.Dir, Current: st.Current, Unknown: st.Unknown, Incomplete: []string{}, Sockets: p.Links, Processes: p.Processes}
	hs.Releases = []*release.Release{}
	for _, rel := range st.Releases {
		if rel.Exists {
			hs.Releases = append(hs.Releases, rel)
		}
	}
	for _, rel := range st.Incomplete() {
		hs.Incomplete = append(hs.Incomplete, rel.ID)
	}
	if target, err := st.RollbackTarget(); err == nil {
		hs.Rollback = target.ID
	}
	if hs.Lock = p.Holder; hs.Lock != nil {
		hs.LockStale = hs.Lock.Stale()
	}
	return hs, nil
}

// Unlock removes the lock on every selected host and returns the former holders by host. The
// lock of a run still alive on this machine is kept unless force is set.
func Unlock(ctx context.Context, cfg *config.Config, opts Options, force bool) (map[string]*release.Holder, error) {
	targets, err := connect(ctx, cfg, opts, false, false)
	if err != nil {
		return nil, err
	}
	defer closeAll(targets)
	out := map[string]*release.Holder{}
	for _, t := range targets {
		h, err := t.Root.Unlock(ctx, force)
		if err != nil {
			return out, fmt.Errorf("%s: %w", t.Name, err)
		}
		out[t.Name] = h
	}
	return out, nil
}
