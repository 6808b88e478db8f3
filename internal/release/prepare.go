package release

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// SharedPath is a path of shared/ linked into every release.
type SharedPath struct {
	Path  string // relative, cleaned, inside the release
	IsDir bool
	Mode  fs.FileMode // the mode ferry keeps it at; 0: as it was made
	Owner string      // the owner (user or user:group) ferry keeps it at; "": as it was made
	// Upload, for a file ferry provisions (shared.files with from), is where its content is in
	// the stream, relative to the release: it replaces shared/<Path> whenever it differs.
	Upload string
}

// DirMode is the final mode of a directory of a release.
type DirMode struct {
	Path string
	Mode fs.FileMode
}

// Upload describes one new release on a host, prepared in one request around the upload stream:
// before the stream, the previous release is copied as hard links and what must not be kept is
// removed; the stream carries what changed; after it, the shared paths are linked, the manifest
// stored, and, when there are no before_activate hooks, the release completed and its swap
// prepared.
type Upload struct {
	ID, Message, User string
	Git               *Git // the commit the build came from, if it is in a git work tree
	// Lease is the lock this run holds; the upload's last step checks it still does before it
	// logs anything (nil: not checked).
	Lease *Lease
	// Previous is the release whose files are hard-linked into the new one (cp -al); "" to
	// start empty. Next is the scratch copy of Previous the probe made, renamed into the new
	// release instead when it is there.
	Previous, Next string
	// Writable are directories of Previous to make writable before Remove; Remove are the paths
	// copied from Previous that the new release must not have.
	Writable, Remove []string
	// Recover are incomplete releases a killed run left, removed first.
	Recover []string
	Shared  []SharedPath
	Modes   []DirMode // final modes of directories, set after the stream
	// The manifest travels in the stream: either whole (ManifestFull, a path of the stream), or
	// as the lines to drop from Previous's manifest and the lines to add (ManifestDrop,
	// ManifestAdd). ManifestSum is the SHA-256 the stored manifest must have; one assembled
	// from drop and add is checked against it.
	ManifestFull, ManifestDrop, ManifestAdd, ManifestSum string
	// Complete marks the release complete in the same request (no before_activate hooks) and
	// prepares its activation with the hashes of SharedFiles.
	Complete    bool
	SharedFiles []string
}

// Prepared is what preparing a release did.
type Prepared struct {
	Seeded      []string // shared paths seeded from the build
	Provisioned []string // shared files replaced by the content of their from
	// Swap is the prepared activation, when Upload.Complete was set.
	Swap *Swap
	// SharedHashes are the hashes of the shared files, when Upload.Complete was set.
	SharedHashes map[string]string
}

// Prepare creates release u.ID from the previous release and the tar stream (paths relative to
// the release). The log records the release before its directory exists, so a crash leaves it
// known and incomplete.
func (r *Root) Prepare(ctx context.Context, u *Upload, stream io.Reader) (*Prepared, error) {
	n := r.ReleaseDir(u.ID)
	before := r.newScript()
	if u.Lease != nil {
		u.Lease.heldScript(before)
	}
	for _, id := range u.Recover {
		r.removeScript(before, id, "incomplete")
	}
	before.line(`N=` + q(n))
	if u.Lease != nil {
		// The id was new when the lock was taken; a directory of that name since is what a run
		// whose lock this run took over made in the same second, its script still going on the
		// host (it stops at its next step, which checks the lock): it goes to the trash.
		t := r.Dir + "/releases/" + trashPrefix + u.ID + "." + randomSuffix()
		before.line(`if [ -e "$N" ] || [ -L "$N" ]; then mv "$N" ` + q(t) + ` || die ` + q("release "+n+" already exists") + `; note warn ` + q("removed "+n+", left by a run whose lock this run took over") + `; fi`)
		before.trash = append(before.trash, t)
	} else {
		before.line(`if [ -e "$N" ] || [ -L "$N" ]; then die ` + q("release "+n+" already exists") + `; fi`)
	}
	before.event(Event{Type: EventPrepare, Release: u.ID, Message: u.Message, User: u.User, Git: u.Git})
	switch {
	case u.Previous != "" && u.Next != "":
		before.line(`if [ -d ` + q(u.Next) + ` ] && [ ! -L ` + q(u.Next) + ` ]; then mv ` + q(u.Next) + ` "$N" || die ` + q("cannot move the copy of release "+u.Previous) + `; ` +
			`else cp -al ` + q(r.ReleaseDir(u.Previous)) + ` "$N" || die ` + q("cannot copy release "+u.Previous+" as hard links") + `; fi`)
	case u.Previous != "":
		before.line(`cp -al ` + q(r.ReleaseDir(u.Previous)) + ` "$N" || die ` + q("cannot copy release "+u.Previous+" as hard links"))
	default:
		before.line(`mkdir "$N" || die ` + q("cannot create "+n))
	}
	for _, d := range u.Writable {
		// chmod follows links: a directory the live release had replaced by one is skipped.
		before.line(`[ -L "$N/"` + q(d) + ` ] || chmod u+w "$N/"` + q(d) + ` 2>/dev/null`)
	}
	for i := 0; i < len(u.Remove); i += 64 {
		var b strings.Builder
		b.WriteString(`rm -rf --`)
		for _, p := range u.Remove[i:min(i+64, len(u.Remove))] {
			b.WriteString(` "$N/"` + q(p))
		}
		// A read-only directory the app made: only directories are made writable, files are
		// hard links shared with the live release.
		before.line(b.String() + ` 2>/dev/null || { find "$N" -type d ! -perm -200 -exec chmod u+w {} + ; ` + b.String() + `; } || die ` + q("cannot remove files copied from "+u.Previous))
	}

	after := r.newScript()
	after.line(`N=` + q(n))
	// The release must still be where the stream went: a run killed on this side leaves this
	// script running on the host, and the run that then takes the lock over removes the
	// release; nothing may recreate it (mkdir -p of a shared path's parent would) or log it.
	after.line(`[ -d "$N" ] && [ ! -L "$N" ] || die ` + q("release "+u.ID+" is gone: another run took over"))
	if u.Lease != nil {
		u.Lease.heldScript(after)
	}
	for _, sp := range u.Shared {
		if sp.Upload != "" {
			r.provisionScript(after, sp)
		}
		r.linkSharedScript(after, u.ID, sp)
	}
	for _, d := range u.Modes {
		after.line(fmt.Sprintf(`chmod %o "$N/"%s || die %s`, d.Mode.Perm(), q(d.Path), q("cannot set the mode of "+d.Path)))
	}
	r.manifestScript(after, u)
	after.line(`durable "$N"`)
	after.settled()
	var sw *Swap
	if u.Complete {
		after.event(Event{Type: EventComplete, Release: u.ID, Manifest: u.ManifestSum})
		sw = r.swapScript(after, Event{Type: EventActivate, Release: u.ID})
		hashNotes(after, u.SharedFiles)
	}
	out, err := r.Host.Unpack(ctx, n, stream, before.String(), after.String())
	if err != nil {
		return nil, scriptError(err)
	}
	f := fields(out)
	p := &Prepared{Swap: sw, SharedHashes: parseHashes(f)}
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "seeded":
			p.Seeded = append(p.Seeded, f[i+1])
			i++
		case "provisioned":
			p.Provisioned = append(p.Provisioned, f[i+1])
			i++
		}
	}
	if sw != nil {
		sw.ev.Shared = p.SharedHashes
	}
	return p, nil
}

// manifestScript stores the new manifest from the stream and checks its hash. Its mtime is the
// instant the release was made: the next deploy asks the host for what changed since.
func (r *Root) manifestScript(s *script, u *Upload) {
	s.line(`T=` + q(r.manifestPath(u.ID)+".tmp-"+randomSuffix()))
	if u.ManifestFull != "" {
		s.line(`mv "$N/"` + q(u.ManifestFull) + ` "$T" || die "cannot store the manifest"`)
	} else {
		s.line(`P=` + q(r.manifestPath(u.Previous)))
		s.line(`{ if [ -s "$N/"` + q(u.ManifestDrop) + ` ]; then grep -v -x -F -f "$N/"` + q(u.ManifestDrop) + ` "$P"; else cat "$P"; fi; st=$?; cat "$N/"` + q(u.ManifestAdd) + `; } >"$T"`)
		s.line(`[ "$st" -le 1 ] || die "cannot assemble the manifest from $P"`)
		s.line(`rm -f "$N/"` + q(u.ManifestDrop) + ` "$N/"` + q(u.ManifestAdd))
		// Assembled on the host from the previous release's: it must be the one ferry made.
		s.line(`h=$(sha256sum <"$T"); if [ "${h%% *}" != ` + q(u.ManifestSum) + ` ]; then rm -f "$T"; die "the manifest stored on the host differs from the one ferry made"; fi`)
	}
	// The manifest's mtime is the whole second before now: the next deploy asks the host for
	// what changed since (find -newer), and BusyBox's find compares whole seconds, so anything
	// written into the release from now on, by hooks, the app or a person, is newer on every
	// host. A build file whose own mtime falls in that second is newer too; the engine tells
	// those apart by the mtime the manifest records (see Live.Stamp).
	// In UTC: a local time is ambiguous in the hour a clock goes back.
	s.line(`t=$(( $(date +%s) - 1 )); TZ=UTC0 touch -t "$(TZ=UTC0 date -d "@$t" +%Y%m%d%H%M.%S)" "$T" && mv "$T" ` + q(r.manifestPath(u.ID)) + ` || die "cannot store the manifest"`)
	var links strings.Builder
	links.WriteString(`: >` + q(r.linksPath(u.ID)))
	for _, sp := range u.Shared {
		links.WriteString(` && printf '%s\000' ` + q(sp.Path) + ` >>` + q(r.linksPath(u.ID)))
	}
	s.line(links.String())
}

// provisionScript puts the content the stream brought for shared file sp into shared/, when it
// differs from what is there: written beside it, then renamed over it, so that a reader sees the
// old file or the new one. Its mode is 0600 unless sp says otherwise.
func (r *Root) provisionScript(s *script, sp SharedPath) {
	shared := r.sharedDir() + "/" + sp.Path
	mode := sp.Mode
	if mode == 0 {
		mode = 0o600
	}
	s.line(`S=` + q(shared) + `; T="$N/"` + q(sp.Upload))
	s.line(`if [ -L "$S" ] || [ -d "$S" ]; then die ` + q(fmt.Sprintf("provision shared/%s: it is a link or a directory on the host; ferry provisions a file there", sp.Path)) + `; fi`)
	s.line(`if cmp -s "$T" "$S" 2>/dev/null; then rm -f "$T"; else mkdir -p ` + q(path.Dir(shared)) + ` && (umask 077; cat "$T" >"$S.ferry-new") && chmod ` + fmt.Sprintf("%o", mode.Perm()) +
		` "$S.ferry-new" && mv -f "$S.ferry-new" "$S" && rm -f "$T" || die ` + q("cannot provision shared/"+sp.Path) + `; note provisioned ` + q(sp.Path) + `; fi`)
}

// linkSharedScript replaces shared path sp of release id with a symlink into shared/. On first
// use the shared path is seeded from the release when the build has it, else created empty;
// from then on the shared copy wins and the build's copy is removed from the release. Nothing in
// shared/ is ever removed or overwritten. A shared directory that is itself a symlink (to a
// second disk) is used, never deleted through.
func (r *Root) linkSharedScript(s *script, id string, sp SharedPath) {
	shared := r.sharedDir() + "/" + sp.Path
	inRelease := r.ReleaseDir(id) + "/" + sp.Path
	what := fmt.Sprintf("shared %s %q", kind(sp.IsDir), sp.Path)
	s.line(`S=` + q(shared) + `; X=` + q(inRelease))
	s.line(`if [ -e "$S" ] || [ -L "$S" ]; then`)
	if sp.IsDir {
		s.line(`  [ -d "$S" ] || die ` + q(fmt.Sprintf("link %s: shared/%s is a file, but ferry.yaml lists it under shared.dirs", what, sp.Path)))
	} else {
		s.line(`  [ ! -d "$S" ] || die ` + q(fmt.Sprintf("link %s: shared/%s is a dir, but ferry.yaml lists it under shared.files", what, sp.Path)))
	}
	s.line(`  if [ -e "$X" ] || [ -L "$X" ]; then rm -rf "$X" || die "cannot remove $X"; fi`)
	s.line(`elif [ -L "$X" ]; then die ` + q(fmt.Sprintf("link %s: the build has %s as a symlink, but ferry.yaml lists it under shared.%ss", what, sp.Path, kind(sp.IsDir))))
	s.line(`elif [ -e "$X" ]; then`)
	if sp.IsDir {
		s.line(`  [ -d "$X" ] || die ` + q(fmt.Sprintf("link %s: the build has %s as a file, but ferry.yaml lists it under shared.dirs", what, sp.Path)))
	} else {
		s.line(`  [ ! -d "$X" ] || die ` + q(fmt.Sprintf("link %s: the build has %s as a directory, but ferry.yaml lists it under shared.files", what, sp.Path)))
	}
	seed := `mkdir -p ` + q(path.Dir(shared)) + ` && mv "$X" "$S"`
	if !sp.IsDir {
		// The build's file becomes one of shared/'s, where secrets go: the deploy user's only,
		// unless ferry.yaml gives it a mode.
		seed += ` && chmod go= "$S"`
	}
	s.line(`  ` + seed + ` || die ` + q("link "+what+": cannot seed shared/"+sp.Path))
	s.line(`  note seeded ` + q(sp.Path))
	s.line(`else`)
	if sp.IsDir {
		s.line(`  mkdir -p ` + q(path.Dir(shared)) + ` && mkdir "$S" || die ` + q("link "+what+": cannot create shared/"+sp.Path))
	} else {
		// An empty shared file ferry creates is private: it is where secrets go.
		s.line(`  mkdir -p ` + q(path.Dir(shared)) + ` && (umask 077; set -C; : >"$S") || die ` + q("link "+what+": cannot create shared/"+sp.Path))
	}
	s.line(`fi`)
	// The mode and owner ferry keeps it at; never through a link (an operator's link to a second
	// disk is theirs to set up, and one planted by another user would reach outside the root).
	if sp.Mode != 0 {
		m := fmt.Sprintf("%o", sp.Mode.Perm())
		s.line(`[ -L "$S" ] || [ "$(stat -c %a "$S")" = ` + m + ` ] || chmod ` + m + ` "$S" || die ` + q(fmt.Sprintf("cannot set the mode of shared/%s to %s", sp.Path, m)))
	}
	if sp.Owner != "" {
		format := "%U"
		if strings.Contains(sp.Owner, ":") {
			format = "%U:%G"
		}
		s.line(`[ -L "$S" ] || [ "$(stat -c ` + format + ` "$S")" = ` + q(sp.Owner) + ` ] || chown ` + q(sp.Owner) + ` "$S" 2>/dev/null || die ` +
			q(fmt.Sprintf("cannot chown shared/%s to %s: the deploy user may not. Do it once as root: chown %s %s", sp.Path, sp.Owner, sp.Owner, shared)))
	}
	// A relative link: from releases/<id>/<dir of path> up to <root>, then down into shared/.
	target := strings.Repeat("../", strings.Count(sp.Path, "/")+2) + "shared/" + sp.Path
	s.line(`mkdir -p ` + q(path.Dir(inRelease)) + ` && ln -s ` + q(target) + ` "$X" || die ` + q("link "+what+": cannot create the link"))
}

// Complete records release id complete once its before_activate hooks succeeded, and prepares
// its activation with the hashes of sharedFiles.
func (r *Root) Complete(ctx context.Context, id, manifestSum string, sharedFiles []string) (*Swap, error) {
	s := r.newScript()
	s.line(`durable ` + q(r.ReleaseDir(id)))
	s.event(Event{Type: EventComplete, Release: id, Manifest: manifestSum})
	sw := r.swapScript(s, Event{Type: EventActivate, Release: id})
	hashNotes(s, sharedFiles)
	f, err := s.run(ctx)
	if err != nil {
		return nil, err
	}
	sw.ev.Shared = parseHashes(f)
	return sw, nil
}

// Fail records that preparing release id failed and removes it, unless keep is set. w (the
// unlock) runs in the same request.
func (r *Root) Fail(ctx context.Context, id string, cause error, keep bool, w *Wrapup) (*Done, error) {
	s := r.newScript()
	s.event(Event{Type: EventFailed, Release: id, Error: r.forLog(cause)})
	s.line(`for f in "$R"/` + tempLinkGlob + `; do if [ -L "$f" ]; then rm -f "$f"; fi; done`)
	if !keep {
		r.killScript(s, id)
		r.removeScript(s, id, "failed")
	}
	r.wrapupScript(s, w)
	f, err := s.run(ctx)
	if err != nil {
		return nil, err
	}
	return done(w, f), nil
}

// Manifest returns the stored manifest of release id.
func (r *Root) Manifest(ctx context.Context, id string) ([]byte, error) {
	s := r.newScript()
	s.line(`cat ` + q(r.manifestPath(id)))
	out, err := r.Host.Script(ctx, s.String())
	return out, scriptError(err)
}

// keyID is the id of the key a shared file's hash was made with ("" for none).
func keyID(h string) string {
	id, _, ok := strings.Cut(h, ":")
	if !ok {
		return "unkeyed"
	}
	return id
}

// ChangedShared lists the files whose hash differs between two activations. Nothing has changed
// when there is no earlier record.
func ChangedShared(before, now map[string]string) []string {
	if before == nil {
		return nil
	}
	var out []string
	for f, h := range now {
		// A hash made with another key, or by an older ferry with none, tells nothing.
		if b, ok := before[f]; ok && keyID(b) != keyID(h) {
			continue
		}
		if before[f] != h {
			out = append(out, f)
		}
	}
	for f := range before {
		if _, ok := now[f]; !ok {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}
