package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/service"
)

// move is one host's part of a switchover: current goes from one release to another.
type move struct {
	*Target
	from    string            // where current pointed before; "" for a first deploy
	last    map[string]string // hashes of shared files at the last activation
	swap    *release.Swap     // prepared: the temporary link exists
	wrapup  *release.Wrapup   // cleanup and unlock, run with the swap's log entry when nothing follows it
	done    *release.Done     // what the wrapup did, once it ran
	restart bool
	swapped bool
}

// switchover points current at to on every host, tells the services, and polls the health
// check. Every move's swap is prepared. kind is release.EventActivate for a deploy or
// release.EventRollback for a rollback. When any of that fails and undo is set, every host
// already swapped goes back to where it was (the release to is then marked bad) and its
// services are told again; the error says so.
func switchover(ctx context.Context, cfg *config.Config, moves []*move, to, kind string, undo bool, rep Reporter) error {
	for _, m := range moves {
		if changed := release.ChangedShared(m.last, m.swap.Shared()); len(changed) > 0 && hasRestart(m.Cfg) {
			m.restart = true
			rep.Step(Step{Host: m.Name, Kind: StepEnv, Paths: changed})
		}
	}
	// With nothing after the swap that can fail, a single host ends its run in the swap's last
	// request. A fleet does not: a host whose finish fails puts every host back, and a host
	// must hold its lock while it may be swapped back.
	followed := len(moves) > 1 || slices.ContainsFunc(moves, func(m *move) bool { return len(m.Cfg.Services) > 0 || m.Cfg.Health != nil })
	// The swaps go out on every host at once, whatever --parallel says: each is one round
	// trip, so the fleet runs mixed releases for as short a time as the slowest takes.
	start := time.Now()
	err := eachOf(moves, len(moves), func(m *move) error {
		var w *release.Wrapup
		if !followed {
			w = m.wrapup
		}
		renamed, d, err := m.swap.Commit(ctx, w)
		m.swapped = renamed
		if err != nil {
			return err
		}
		if w != nil {
			m.done = d
		}
		if kind == release.EventRollback {
			rep.Step(Step{Host: m.Name, Kind: StepRollback, Release: to, Previous: m.from, Took: time.Since(start)})
		} else {
			rep.Step(Step{Host: m.Name, Kind: StepActivate, Release: to, Took: time.Since(start)})
		}
		return nil
	})
	if err == nil {
		err = eachMove(moves, func(m *move) error { return notify(ctx, cfg, m, to, m.restart, rep) })
	}
	if err != nil {
		if undo {
			return errors.Join(err, revert(ctx, cfg, moves, to, rep))
		}
		return err
	}
	err = eachMove(moves, func(m *move) error {
		if m.Cfg.Health == nil {
			return nil
		}
		start := time.Now()
		resp, err := service.Poll(ctx, m.Root.Host.DialContext, healthCheck(m.Cfg), to)
		if err != nil {
			return err
		}
		rep.Step(Step{Host: m.Name, Kind: StepHealth, URL: m.Cfg.Health.URL, Status: resp.Status, Took: time.Since(start)})
		return nil
	})
	if err != nil {
		if undo {
			return errors.Join(err, revert(ctx, cfg, moves, to, rep))
		}
		return err
	}
	return nil
}

// revert swaps every swapped host back to its previous release, marking bad the release it
// leaves, and tells the services again. Once every host is back, the error wraps ErrRolledBack,
// with any service that failed again on the old release joined to it.
func revert(ctx context.Context, cfg *config.Config, moves []*move, bad string, rep Reporter) error {
	var mu sync.Mutex
	var stuck, after []error
	var back []string
	fail := func(list *[]error, err error) {
		mu.Lock()
		*list = append(*list, err)
		mu.Unlock()
	}
	_ = eachMove(moves, func(m *move) error {
		if !m.swapped {
			return nil
		}
		if m.from == "" {
			fail(&stuck, fmt.Errorf("%s: no earlier release to go back to; current stays on %s", m.Name, bad))
			return nil
		}
		start := time.Now()
		if err := m.Root.RollbackTo(ctx, m.from, bad, cfg.Shared.Files); err != nil {
			fail(&stuck, fmt.Errorf("%s: could not swap back to %s: %w", m.Name, m.from, err))
			return nil
		}
		m.swapped = false
		mu.Lock()
		back = append(back, m.Name)
		mu.Unlock()
		rep.Step(Step{Host: m.Name, Kind: StepRollback, Release: m.from, Previous: bad, Reverted: true, Took: time.Since(start)})
		if err := notify(ctx, cfg, m, m.from, m.restart, rep); err != nil {
			fail(&after, fmt.Errorf("%s: after swapping back: %w", m.Name, err))
		}
		return nil
	})
	if len(stuck) > 0 {
		return errors.Join(append(stuck, after...)...)
	}
	slices.Sort(back)
	return errors.Join(append([]error{fmt.Errorf("back on the previous release: %s: %w", orNone(back), ErrRolledBack)}, after...)...)
}

// ErrRolledBack tells that a failed activation was undone.
var ErrRolledBack = errors.New("rolled back")

func notify(ctx context.Context, cfg *config.Config, m *move, id string, restart bool, rep Reporter) error {
	var services []service.Service
	for _, s := range servicesOn(m.Target) {
		if !s.Socket() { // moved with the swap
			services = append(services, service.Service{Name: s.Name, Reload: s.Reload, Restart: s.Restart, RestartAlways: s.RestartAlways})
		}
	}
	if len(services) == 0 {
		return nil
	}
	env := m.Root.Env(id, m.from, m.Name)
	actions, err := service.Notify(ctx, m.Root.Host, m.Root.ReleaseDir(id), env, services, restart,
		time.Duration(cfg.HookTimeout), func(p []byte) { rep.Output(m.Name, p) })
	for _, a := range actions {
		rep.Step(Step{Host: m.Name, Kind: a.Kind, Service: a.Service, Took: a.Took})
	}
	return err
}

// servicesOn is the services that run on t: those limited to roles t has none of are left out.
func servicesOn(t *Target) []config.Service {
	var out []config.Service
	for _, s := range t.Cfg.Services {
		if hasRole(t, s.Roles) {
			out = append(out, s)
		}
	}
	return out
}

func hasRestart(cfg *config.Config) bool {
	for _, s := range cfg.Services {
		if s.Restart != "" {
			return true
		}
	}
	return false
}

func healthCheck(cfg *config.Config) service.Check {
	h := cfg.Health
	return service.Check{URL: h.URL, ExpectStatus: h.ExpectStatus, Contains: h.Contains,
		Timeout: time.Duration(h.Timeout), Interval: time.Duration(h.Interval)}
}

// healthReachable fails when the health check cannot reach t at all: its sshd refuses the
// forwarded connection the check is made through. It is found before the swap, so a deploy
// is not swapped and then rolled back for it. Anything else (nothing listens yet, on a first
// deploy) is for the check itself to judge.
func healthReachable(ctx context.Context, t *Target) error {
	if t.Cfg.Health == nil {
		return nil
	}
	u, err := url.Parse(t.Cfg.Health.URL)
	if err != nil {
		return nil // refused at load
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	c, err := t.Root.Host.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if errors.Is(err, host.ErrNoForwarding) {
		return &release.HintError{
			Err:  fmt.Errorf("health check %s: %w", t.Cfg.Health.URL, err),
			Hint: "ferry makes the health check through the SSH connection: allow forwarding for the deploy user (Match User <user> with AllowTcpForwarding local), or remove health: from ferry.yaml",
		}
	}
	if c != nil {
		c.Close()
	}
	return nil
}

// eachMove runs fn for every host's move in parallel; errors are prefixed by host.
func eachMove(moves []*move, fn func(m *move) error) error { return eachOf(moves, 0, fn) }
