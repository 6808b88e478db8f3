package release

import (
	"context"
	"fmt"
	"time"
)

// Swap is a prepared change of current: the temporary link exists; Rename renames it over
// current. Splitting the two lets a fleet create its links first and then rename them all at
// once, so the hosts switch within a round trip of each other.
type Swap struct {
	root *Root
	tmp  string
	ev   Event
}

// swapScript adds the creation of the temporary link for ev to s.
func (r *Root) swapScript(s *script, ev Event) *Swap {
	sw := &Swap{root: r, tmp: r.currentPath() + "." + randomSuffix(), ev: ev}
	s.line(`ln -s ` + q("releases/"+ev.Release) + ` ` + q(sw.tmp) + ` || die ` + q("cannot create the link "+sw.tmp))
	return sw
}

// PrepareActivate prepares pointing current at release id, with the hashes of sharedFiles as
// they are at this activation.
func (r *Root) PrepareActivate(ctx context.Context, id string, sharedFiles []string) (*Swap, error) {
	return r.prepareSwap(ctx, Event{Type: EventActivate, Release: id}, sharedFiles)
}

// PrepareRollback prepares pointing current at target; the release it leaves, from, is marked
// bad so that the next rollback goes further back.
func (r *Root) PrepareRollback(ctx context.Context, target, from string, sharedFiles []string) (*Swap, error) {
	return r.prepareSwap(ctx, Event{Type: EventRollback, Release: target, From: from}, sharedFiles)
}

func (r *Root) prepareSwap(ctx context.Context, ev Event, sharedFiles []string) (*Swap, error) {
	s := r.newScript()
	// Never point current at a release that is not there.
	s.line(`[ -d ` + q(r.ReleaseDir(ev.Release)) + ` ] || die ` + q("release "+ev.Release+" does not exist on this host"))
	sw := r.swapScript(s, ev)
	hashNotes(s, sharedFiles)
	f, err := s.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("swap current: %w", err)
	}
	sw.ev.Shared = parseHashes(f)
	return sw, nil
}

// Shared is the hashes of the shared files at this swap.
func (sw *Swap) Shared() map[string]string { return sw.ev.Shared }

// hashNotes reports the SHA-256 of each shared file that exists: "hash", file, sum.
func hashNotes(s *script, files []string) {
	for _, f := range files {
		s.line(`if [ -f "$R/shared/"` + q(f) + ` ]; then h=$(sha256sum <"$R/shared/"` + q(f) + `) && note hash ` + q(f) + ` "${h%% *}"; fi`)
	}
}

func parseHashes(f []string) map[string]string {
	out := map[string]string{}
	for i := 0; i+2 < len(f); i++ {
		if f[i] == "hash" {
			out[f[i+1]] = f[i+2]
			i += 2
		}
	}
	return out
}

// RollbackFrom returns the swap to target that probe p prepared (ProbeOptions.Links), with the
// hashes of the shared files it read, or nil when it prepared none.
func (r *Root) RollbackFrom(p *Probe, target, from string) *Swap {
	tmp, ok := p.SwapLinks[target]
	if !ok {
		return nil
	}
	return &Swap{root: r, tmp: tmp, ev: Event{Type: EventRollback, Release: target, From: from, Shared: p.SharedHashes}}
}

// Release is the release the swap points current at.
func (sw *Swap) Release() string { return sw.ev.Release }

// Abort removes the temporary link of a swap that will not be renamed.
func (sw *Swap) Abort(ctx context.Context) {
	s := sw.root.newScript()
	s.line(`rm -f ` + q(sw.tmp))
	_, _ = s.run(ctx)
}

// Rename is the swap itself: one rename(2) of the prepared link over current.
func (sw *Swap) Rename(ctx context.Context) error {
	if err := sw.root.Host.Rename(ctx, sw.tmp, sw.root.currentPath()); err != nil {
		sw.Abort(ctx)
		return fmt.Errorf("swap current: %w", err)
	}
	sw.ev.Time = time.Now().UTC() // the instant of the swap, before it is made durable
	return nil
}

// Finish makes a renamed swap durable and logs it, then runs w (cleanup and unlock) in the same
// request.
func (sw *Swap) Finish(ctx context.Context, w *Wrapup) (*Done, error) {
	r := sw.root
	s := r.newScript()
	s.line(`durable "$R/current"`)
	s.event(sw.ev)
	r.wrapupScript(s, w)
	f, err := s.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("swap current: %w", err)
	}
	return done(w, f), nil
}

// Activate points current at release id: a new symlink current.<random> is created and renamed
// over current, so current is never missing and never half-written.
func (r *Root) Activate(ctx context.Context, id string, sharedFiles []string) error {
	sw, err := r.PrepareActivate(ctx, id, sharedFiles)
	if err != nil {
		return err
	}
	return sw.commit(ctx)
}

// RollbackTo points current at target and marks from bad.
func (r *Root) RollbackTo(ctx context.Context, target, from string, sharedFiles []string) error {
	sw, err := r.PrepareRollback(ctx, target, from, sharedFiles)
	if err != nil {
		return err
	}
	return sw.commit(ctx)
}

func (sw *Swap) commit(ctx context.Context) error {
	if err := sw.Rename(ctx); err != nil {
		return err
	}
	_, err := sw.Finish(ctx, nil)
	return err
}
