package release

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ferry-deploy/ferry/internal/host"
)

// Swap is a prepared change of current: the temporary link exists; Commit renames it over
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

// hashNotes reports the SHA-256 of each shared file that exists: "hash", file, "<key id>:<sum>".
//
// The hash is keyed with .ferry/key, a random key only the deploy user can read, so that the
// log's hashes of a short secret (.env) cannot be tried against guesses. The key's id goes with
// each hash, so that hashes made with another key (or none, by an older ferry) are told apart
// from a changed file (see ChangedShared).
func hashNotes(s *script, files []string) {
	if len(files) == 0 {
		return
	}
	s.line(`kid=$(sha256sum <"$R/.ferry/key" 2>/dev/null | cut -c1-8)`)
	for _, f := range files {
		s.line(`if [ -f "$R/shared/"` + q(f) + ` ]; then h=$({ cat "$R/.ferry/key" 2>/dev/null; cat "$R/shared/"` + q(f) + `; } | sha256sum) && note hash ` + q(f) + ` "$kid:${h%% *}"; fi`)
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

// Commit is the swap itself, one rename(2) of the prepared link over current, followed by
// making it durable, logging it and running w (cleanup and unlock; nil for none). The rename
// and the script that does the rest are sent together, so both cost one round trip: the script
// first waits (up to 10 s) until the link is renamed, and logs nothing if it is not. renamed
// reports whether current was renamed, even when what follows failed.
func (sw *Swap) Commit(ctx context.Context, w *Wrapup) (renamed bool, d *Done, err error) {
	r := sw.root
	sw.ev.Time = time.Now().UTC() // the instant of the swap, before it is made durable
	renameErr := make(chan error, 1)
	go func() { renameErr <- r.Host.Rename(ctx, sw.tmp, r.currentPath()) }()
	f, serr := sw.finish(ctx, w, true)
	rerr := <-renameErr
	var ee *host.ExitError
	switch {
	case serr == nil:
		// The script saw current renamed and logged it, whatever became of the rename's
		// reply (lost with the connection after the rename was made).
		return true, done(w, f), nil
	case rerr == nil && errors.As(serr, &ee) && ee.Code == notRenamed:
		// Renamed later than the script waited: the rest is done now, without waiting.
		if f, serr = sw.finish(ctx, w, false); serr != nil {
			return true, nil, fmt.Errorf("swap current: %w", serr)
		}
		return true, done(w, f), nil
	case rerr == nil:
		return true, nil, fmt.Errorf("swap current: %w", serr)
	default:
		sw.Abort(ctx)
		return false, nil, fmt.Errorf("swap current: %w", rerr)
	}
}

// notRenamed is the exit status of a finish script whose swap was not renamed in time.
const notRenamed = 3

// finish runs what follows the rename: after waiting for it when wait is set.
func (sw *Swap) finish(ctx context.Context, w *Wrapup, wait bool) ([]string, error) {
	r := sw.root
	s := r.newScript()
	if wait {
		wait := int(r.renameWait.Seconds())
		if wait <= 0 {
			wait = 10
		}
		s.line(`while [ -L ` + q(sw.tmp) + ` ] || [ "$(readlink "$R/current")" != ` + q("releases/"+sw.ev.Release) + ` ]; do`)
		s.line(`  e=${e:-$(( $(date +%s) + ` + strconv.Itoa(wait) + ` ))}`)
		s.line(`  [ "$(date +%s)" -lt "$e" ] || { echo "current was not renamed within ` + strconv.Itoa(wait) + ` s"; exit ` + strconv.Itoa(notRenamed) + `; }`)
		s.line(`  sleep 0.01 2>/dev/null || sleep 1`)
		s.line(`done`)
	}
	r.linkSocketsScript(s, sw.ev.Release)
	s.line(`durable "$R/current"`)
	s.event(sw.ev)
	r.wrapupScript(s, w)
	out, err := r.Host.Script(ctx, s.String())
	if err != nil {
		var ee *host.ExitError
		if errors.As(err, &ee) && ee.Code == notRenamed {
			return nil, err
		}
		return nil, scriptError(err)
	}
	return fields(out), nil
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
	_, _, err := sw.Commit(ctx, nil)
	return err
}
