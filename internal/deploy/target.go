// Package deploy runs ferry's commands across the hosts of a config: it connects, locks every
// host, prepares releases, activates them together, rolls back on failure, cleans up, and reports
// each step through a Reporter. It holds no layout logic of its own (that is package release)
// and prints nothing itself (that is package cli).
package deploy

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/host/local"
	"github.com/ferry-deploy/ferry/internal/host/ssh"
	"github.com/ferry-deploy/ferry/internal/release"
)

// Reporter receives what happens, host by host. Implementations must be safe for concurrent use.
type Reporter interface {
	// Step reports a finished step of a host (see Step).
	Step(s Step)
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
	// Cfg is the config as this host sees it: the file decoded with the host's own vars, if it
	// has any (hooks, services and the health check may differ per host).
	Cfg  *config.Config
	spec config.Host
}

// Options common to the commands.
type Options struct {
	Hosts    []string      // limit to these host names; empty: all
	Parallel int           // hosts worked on at once; 0: 10
	LockWait time.Duration // how long to wait for another run's lock
	Command  string        // recorded in the lock
	// SSH locates the SSH files for ssh hosts; empty fields take the defaults under ~/.ssh.
	SSH ssh.Options
	// CacheDir keeps manifests of live releases between runs; "" is the user's cache
	// directory (os.UserCacheDir()/ferry).
	CacheDir string
}

// connect opens every selected host of cfg, SSH hosts in parallel (at most parallel at once).
// warmUpload and warmSwap open, in the background, what an upload and a swap will need.
func connect(ctx context.Context, cfg *config.Config, opts Options, warmUpload, warmSwap bool) ([]*Target, error) {
	targets, err := selectTargets(cfg, opts)
	if err != nil {
		return nil, err
	}
	err = eachHostN(targets, opts.Parallel, func(t *Target) error { return dial(ctx, t, opts, warmUpload, warmSwap) })
	if err != nil {
		closeAll(targets)
		return nil, err
	}
	return targets, nil
}

// selectTargets returns the hosts of cfg that opts selects, not connected yet.
func selectTargets(cfg *config.Config, opts Options) ([]*Target, error) {
	var targets []*Target
	for i, hc := range cfg.Hosts {
		name := hc.DisplayName()
		if len(opts.Hosts) > 0 && !slices.Contains(opts.Hosts, name) {
			continue
		}
		root := cfg.Root
		if hc.Root != "" {
			root = hc.Root
		}
		t := &Target{Name: name, Roles: hc.Roles, Root: release.New(nil, root), Cfg: cfg.ForHost(i), spec: hc}
		t.Root.Environment, t.Root.FromEnv = cfg.Environment, cfg.FromEnv
		for _, sv := range servicesOn(t) {
			if sv.Socket() {
				t.Root.Sockets = append(t.Root.Sockets, release.Socket{Name: sv.Name, Start: sv.Start, Stop: sv.Stop, Signal: sv.StopSignal, Drain: time.Duration(*sv.Drain)})
			}
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		var names []string
		for _, hc := range cfg.Hosts {
			names = append(names, hc.DisplayName())
		}
		return nil, fmt.Errorf("no host matches --host %s (hosts: %s): %w", strings.Join(opts.Hosts, ","), strings.Join(names, ", "), config.ErrConfig)
	}
	return targets, nil
}

// dial connects t, opening ahead the channels the caller will need.
func dial(ctx context.Context, t *Target, opts Options, warmUpload, warmSwap bool) error {
	if t.spec.Local {
		t.Root.Host = local.New()
		return nil
	}
	h, err := ssh.Dial(ctx, t.Name, t.spec.SSH, opts.SSH)
	if err != nil {
		return err
	}
	h.Warm(warmUpload, warmSwap)
	t.Root.Host = h
	return nil
}

func closeAll(targets []*Target) {
	for _, t := range targets {
		if t.Root.Host != nil {
			_ = t.Root.Host.Close()
		}
	}
}

// locked is a host whose lock this run holds, with what the probe that took it learned.
type locked struct {
	*Target
	probe *release.Probe
	lease *release.Lease
}

// lockAll takes the lock on every target at once, one probe each, or on none. If a host is held
// by another run, the locks already taken are given back and, within opts.LockWait, all are
// tried again after a pause; then the error names the holder.
//
// Two fleet runs that start together cannot deadlock: a run never waits while it holds a lock.
// Each attempt either takes every lock or releases all it took before it waits, so whichever run
// finds the fleet free proceeds, and the random pause keeps two runs from colliding in step.
//
// create makes the layout of a root that does not exist; missing says what to do with one when
// create is not set: fail (deploy first), or report it (probe.Missing, no lease) for the caller to
// lock again with create once it knows the deploy will go ahead.
func lockAll(ctx context.Context, targets []*Target, opts Options, o func(*Target) release.ProbeOptions, create, allowMissing bool, rep Reporter) ([]*locked, error) {
	me := release.CurrentHolder(opts.Command)
	deadline := time.Now().Add(opts.LockWait)
	start := time.Now()
	waited := false
	for {
		out := make([]*locked, len(targets))
		err := eachHostN(targets, opts.Parallel, func(t *Target) error {
			po := o(t)
			po.Create = create
			p, lease, err := t.Root.Lock(ctx, me, 0, po, func(msg string) { rep.Warn(t.Name, msg) })
			var le *release.LockedError
			if errors.As(err, &le) && le.Holder != nil && le.Holder.Is(me) {
				// Held by this very run: another host of the config is the same server and root.
				return fmt.Errorf("%s is already locked by this run through another host of the config: the same server and root are listed twice; list each once: %w", t.Root.Dir, config.ErrConfig)
			}
			if err != nil {
				return err
			}
			out[slices.Index(targets, t)] = &locked{Target: t, probe: p, lease: lease}
			if p.Missing && !allowMissing {
				return fmt.Errorf("no releases under %s: deploy first", t.Root.Dir)
			}
			return nil
		})
		if err == nil {
			for _, l := range out {
				for _, w := range l.probe.Warnings {
					rep.Warn(l.Name, w)
				}
				for _, w := range l.probe.Recovered {
					rep.Warn(l.Name, w)
				}
			}
			if waited {
				for _, l := range out {
					rep.Step(Step{Host: l.Name, Kind: StepLock, Took: time.Since(start)})
				}
			}
			return out, nil
		}
		unlockAll(ctx, out)
		if !errors.Is(err, release.ErrLocked) || time.Now().After(deadline) {
			return nil, err
		}
		waited = true
		pause := 200*time.Millisecond + time.Duration(mrand.Int64N(int64(300*time.Millisecond)))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// unlockAll gives back every lock taken, in parallel.
func unlockAll(ctx context.Context, ls []*locked) {
	var wg sync.WaitGroup
	for _, l := range ls {
		if l != nil && l.lease != nil {
			wg.Go(func() { _ = l.lease.Release(context.WithoutCancel(ctx)) })
		}
	}
	wg.Wait()
}

// eachHost runs fn for every target in parallel and joins the errors, each prefixed by host.
func eachHost(targets []*Target, fn func(t *Target) error) error {
	return eachHostN(targets, 0, fn)
}

// eachHostN is eachHost with at most n hosts at once (0: 10).
func eachHostN(targets []*Target, n int, fn func(t *Target) error) error {
	return eachOf(targets, n, fn)
}

// targeted is what the phases work on per host: a target, a host's run, a host's move.
type targeted interface{ target() *Target }

func (t *Target) target() *Target { return t }

// eachOf runs fn for every x in parallel, at most n at once (0: 10), and joins the errors,
// each prefixed by its host.
func eachOf[T targeted](xs []T, n int, fn func(x T) error) error {
	if n <= 0 {
		n = 10
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	errs := make([]error, len(xs))
	for i, x := range xs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := fn(x); err != nil {
				errs[i] = fmt.Errorf("%s: %w", x.target().Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
