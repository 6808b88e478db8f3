package release

import (
	"context"
	"fmt"
	"strings"
)

// Removable lists the releases that cleanup removes, newest first: every incomplete or failed
// release (except preparing, the one this run is building), and complete releases beyond the
// newest keep. The current release and the rollback target are always kept and count toward
// keep. Order is the log's, never mtimes.
func (st *State) Removable(keep int, preparing string) []string {
	protect := map[string]bool{st.Current: true, preparing: true}
	if target, err := st.RollbackTarget(); err == nil {
		protect[target.ID] = true
	}
	var out []string
	kept := 0
	for i := len(st.Releases) - 1; i >= 0; i-- {
		rel := st.Releases[i]
		if !rel.Exists || protect[rel.ID] {
			if rel.Live() {
				kept++
			}
			continue
		}
		if rel.Status == StatusComplete && kept < keep {
			kept++
			continue
		}
		out = append(out, rel.ID)
	}
	return out
}

// removeScript takes release id out of releases/ with one rename into the trash, so that no
// half-deleted release is ever visible under releases/, logs it, and deletes it. A release that
// cannot be moved or deleted is a warning, never a failure: the next run tries again.
func (r *Root) removeScript(s *script, id, reason string) {
	rel, t := q(r.ReleaseDir(id)), r.Dir+"/releases/"+trashPrefix+id+"."+randomSuffix()
	// A release that cannot be moved (releases/ not writable by this user) stays, with a
	// warning: cleanup never stops a run.
	// A release whose process still runs (it drains) is kept: a later run removes it.
	s.line(r.runningScript(id))
	s.line(`if [ -n "$busy" ]; then note kept ` + q(id) + ` warn "kept release ` + id + `: its $busy process still runs (draining); a later run removes it"`)
	s.line(`elif [ ! -e ` + rel + ` ] || e=$(mv ` + rel + ` ` + q(t) + ` 2>&1); then`)
	s.event(Event{Type: EventRemoved, Release: id, Message: reason})
	s.line(`rm -f ` + q(r.manifestPath(id)) + ` ` + q(r.linksPath(id)))
	// The release's processes' files: sockets, logs, process files.
	s.line(`rm -f "$R/run/"*.` + q(id) + `.sock "$R/run/"*.` + q(id) + `.*.sock "$R/run/"*.` + q(id) + `.log "$R/.ferry/proc/"*.` + q(id) + ` "$R/.ferry/proc/"*.` + q(id) + `.stopping.*`)
	s.line(`else note kept ` + q(id) + ` warn ` + q("could not remove release "+id+": ") + `"$e"; fi`)
	s.trash = append(s.trash, t)
}

// emptyTrash deletes what the script moved to the trash, in the background: deleting a release
// of thousands of files is work for the disk, not for the deploy, and what is left (a killed run,
// a file ferry may not delete) is deleted by the next run's probe, which warns about it.
//
// Deleting a release changes the inodes it shares with the live one (their link count, so their
// ctime): while it runs a marker says so, and when it is done the settled stamp is renewed.
func (s *script) emptyTrash() {
	if len(s.trash) == 0 {
		return
	}
	var b strings.Builder
	b.WriteString(`M="$R/.ferry/` + settlingPrefix + randomSuffix() + `"; : >"$M"; ( for t in`)
	for _, t := range s.trash {
		b.WriteString(" " + q(t))
	}
	// Only directories are made writable: files are hard links shared with live releases.
	b.WriteString(`; do rm -rf "$t" 2>/dev/null || { find "$t" -type d -exec chmod u+w {} +; rm -rf "$t"; }; done; ` + settledLine() + `; rm -f "$M" ) </dev/null >/dev/null 2>&1 &`)
	s.line(b.String())
	s.trash = nil
}

// Wrapup is what a run does last on a host, in the same request as its last step: remove
// releases, then give the lock up.
type Wrapup struct {
	Remove []string // releases to remove (see Removable)
	Reason string   // why, for the log ("cleanup", "failed")
	Lease  *Lease   // the lock to give up, if any
}

func (r *Root) wrapupScript(s *script, w *Wrapup) {
	if w == nil {
		return
	}
	for _, id := range w.Remove {
		r.removeScript(s, id, w.Reason)
	}
	if w.Lease != nil {
		w.Lease.unlockScript(s)
	}
	s.emptyTrash()
}

// Done is what a request that ended a run reports.
type Done struct {
	Removed  []string
	Warnings []string
	Stopped  []string // "<service> <release>" of each process asked to stop
}

func done(w *Wrapup, f []string) *Done {
	d := &Done{}
	kept := map[string]bool{}
	for i := 0; i+1 < len(f); i += 2 {
		switch f[i] {
		case "warn":
			d.Warnings = append(d.Warnings, f[i+1])
		case "kept":
			kept[f[i+1]] = true
		case "stopped":
			d.Stopped = append(d.Stopped, f[i+1])
		}
	}
	if w != nil {
		for _, id := range w.Remove {
			if !kept[id] {
				d.Removed = append(d.Removed, id)
			}
		}
	}
	return d
}

// Finish runs w on its own.
func (r *Root) Finish(ctx context.Context, w *Wrapup) (*Done, error) {
	s := r.newScript()
	r.wrapupScript(s, w)
	f, err := s.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Dir, err)
	}
	return done(w, f), nil
}

// Cleanup removes what Removable lists on the state st, and gives up lease when it is set.
func (r *Root) Cleanup(ctx context.Context, st *State, keep int, lease *Lease) (*Done, error) {
	return r.Finish(ctx, &Wrapup{Remove: st.Removable(keep, ""), Reason: "cleanup", Lease: lease})
}
