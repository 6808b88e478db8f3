package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/release"
)

// ErrNothingToDo marks a command that found nothing to act on, such as a rollback with no
// earlier release.
var ErrNothingToDo = errors.New("nothing to do")

// RollbackResult is what a rollback did.
type RollbackResult struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Rollback points current back at the previous good release (or at id) on every host. All hosts
// must agree on the target before any is swapped. Nothing is deleted.
func Rollback(ctx context.Context, cfg *config.Config, id string, opts Options, rep Reporter) (*RollbackResult, error) {
	if id != "" {
		if _, err := release.ParseID(id); err != nil {
			return nil, fmt.Errorf("%w: %w", err, config.ErrConfig)
		}
	}
	targets, done, err := openLocked(ctx, cfg, opts, rep)
	if err != nil {
		return nil, err
	}
	defer done()

	var res *RollbackResult
	var moves []*move
	for _, t := range targets {
		st, err := t.Root.State()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		r := &RollbackResult{From: st.Current}
		if id == "" {
			target, err := st.RollbackTarget()
			if err != nil {
				return nil, fmt.Errorf("%s: %w: %w", t.Name, err, ErrNothingToDo)
			}
			r.To = target.ID
		} else {
			rel := st.Find(id)
			if rel == nil || !rel.Live() {
				return nil, fmt.Errorf("%s: release %s is not a complete release on this host (see 'ferry releases'): %w", t.Name, id, ErrNothingToDo)
			}
			if id == st.Current {
				return nil, fmt.Errorf("%s: release %s is already current: %w", t.Name, id, ErrNothingToDo)
			}
			r.To = id
		}
		if res != nil && *res != *r {
			return nil, fmt.Errorf("hosts disagree: %s would go %s -> %s, another host %s -> %s; roll back each with --host",
				t.Name, r.From, r.To, res.From, res.To)
		}
		res = r
		moves = append(moves, &move{Target: t, from: st.Current, last: st.LastShared})
	}
	// From here an interrupt does not stop ferry: every host is swapped, so none is left split.
	if err := switchover(context.WithoutCancel(ctx), cfg, moves, res.To, release.EventRollback, false, rep); err != nil {
		return res, err
	}
	return res, nil
}

// openLocked connects to the hosts of an existing deploy and locks them all; release unlocks
// and disconnects.
func openLocked(ctx context.Context, cfg *config.Config, opts Options, rep Reporter) ([]*Target, func(), error) {
	targets, err := connect(ctx, cfg, opts.Hosts, opts.Parallel)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := lockAll(ctx, targets, opts, false, rep)
	if err != nil {
		closeAll(targets)
		return nil, nil, err
	}
	return targets, func() { unlock(); closeAll(targets) }, nil
}

// Cleanup removes old, failed and incomplete releases on every host.
func Cleanup(ctx context.Context, cfg *config.Config, opts Options, rep Reporter) (map[string][]string, error) {
	targets, done, err := openLocked(ctx, cfg, opts, rep)
	if err != nil {
		return nil, err
	}
	defer done()
	out := map[string][]string{}
	for _, t := range targets {
		start := time.Now()
		removed, err := t.Root.Cleanup(cfg.Keep(), "")
		out[t.Name] = removed
		if err != nil {
			return out, fmt.Errorf("%s: %w", t.Name, err)
		}
		rep.Step(t.Name, "cleanup", fmt.Sprintf("removed %s, kept up to %d", plural(len(removed), "release"), cfg.Keep()), time.Since(start))
	}
	return out, nil
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
}

// Status reads every host's state without taking the lock and without changing anything.
func Status(ctx context.Context, cfg *config.Config, opts Options) ([]*HostStatus, error) {
	targets, err := connect(ctx, cfg, opts.Hosts, opts.Parallel)
	if err != nil {
		return nil, err
	}
	defer closeAll(targets)
	var out []*HostStatus
	for _, t := range targets {
		st, err := t.Root.State()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		hs := &HostStatus{Host: t.Name, Root: t.Root.Dir, Current: st.Current, Unknown: st.Unknown, Incomplete: []string{}}
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
		if hs.Lock, err = t.Root.Holder(); err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		if hs.Lock != nil {
			hs.LockStale = hs.Lock.Stale()
		}
		out = append(out, hs)
	}
	return out, nil
}

// Unlock removes the lock on every selected host and returns the former holders by host.
func Unlock(ctx context.Context, cfg *config.Config, opts Options) (map[string]*release.Holder, error) {
	targets, err := connect(ctx, cfg, opts.Hosts, opts.Parallel)
	if err != nil {
		return nil, err
	}
	defer closeAll(targets)
	out := map[string]*release.Holder{}
	for _, t := range targets {
		h, err := t.Root.Unlock()
		if err != nil {
			return out, fmt.Errorf("%s: %w", t.Name, err)
		}
		out[t.Name] = h
	}
	return out, nil
}
