package release

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ferry-deploy/ferry/internal/host"
)

// ProbeOptions say what one probe of a root does besides reading its state.
type ProbeOptions struct {
	// Lock, when set, is the holder to record in the lock: the probe takes the lock (or reports
	// its holder and stops), and with the lock held recovers what a killed run left behind.
	Lock *Holder
	// Create makes the layout when the root does not exist yet (a first deploy).
	Create bool
	// Live reports the live release: its id, its manifest unless Cached has it, the shared
	// links it was given, and its files and links changed since its manifest was written.
	Live   bool
	Cached []string // release ids whose manifests the caller has
	// Plain sends the manifest as it is rather than gzipped (a host on this machine).
	Plain bool
	// Copy, with Lock and Live, starts the next release while the caller scans its build: the
	// live release is copied as hard links (cp -al) to a scratch directory of releases/, which
	// the upload renames into the new release (see Upload.Next). It is not a release: nothing
	// is logged, and the next probe removes it if it is left.
	Copy bool
	// Links, with Lock, prepares a swap to every release but the current one: a temporary link
	// to each, so that a rollback renames one without another request. The rest are removed
	// when the run ends.
	Links bool
	// Shared are the shared paths whose presence in shared/ to report; SharedFiles the shared
	// files whose hashes to report.
	Shared      []SharedPath
	SharedFiles []string
	// Processes reports the socket services' processes and stable links.
	Processes bool
}

// Probe is what one probe learned of a root.
type Probe struct {
	Missing bool    // there is no releases/ (and Create was not set)
	Locked  bool    // the probe took the lock
	Holder  *Holder // who holds the lock (when Lock was set and it was held, or when reading)
	// HolderRaw is the lock file's content as read, for a takeover.
	HolderRaw []byte
	// NotLink describes a current that is not a symlink ("directory", "file"); "" when fine.
	NotLink string
	// Recovered lists what was removed as left behind by a killed run.
	Recovered []string
	// Warnings are problems that did not stop the probe.
	Warnings []string
	// Now is the host's clock at the probe, in Unix seconds.
	Now   int64
	State *State
	Live  *Live
	// Shared maps each shared path present in shared/ to whether it is a directory.
	Shared map[string]bool
	// SharedHashes maps shared files to their hashes.
	SharedHashes map[string]string
	// SwapLinks maps releases to the temporary links ProbeOptions.Links made to them.
	SwapLinks map[string]string
	// Processes and Links are the socket services' processes and stable links, when
	// ProbeOptions.Processes was set.
	Processes  []Process
	Links      map[string]string // "app.sock" -> the release it points at
	linkPrefix string
}

// Process is a socket service's process of a release, as a probe saw it.
type Process struct {
	Service string `json:"service"`
	Release string `json:"release"`
	PID     int    `json:"pid,omitempty"`
	// State is "running", "draining" (asked to stop), "exited", or "supervised" (started by a
	// supervisor, which ferry does not follow).
	State string `json:"state"`
}

// Live is the live release as the probe saw it.
type Live struct {
	ID       string
	Manifest []byte   // the stored manifest, nil when the caller has it cached
	Links    []string // shared links the release was given
	// Changed lists the paths of the release (files, links and directories) modified since its
	// manifest was written: files edited in place, or written by hooks and the app.
	Changed []string
	// Tampered lists files whose content may have changed though their mtime says not: their
	// ctime is newer than anything ferry did to them.
	Tampered []string
	// Stamp is the mtime of the manifest, in Unix seconds: a file whose recorded mtime is newer
	// may be listed in Changed only because the build wrote it in that second.
	Stamp int64
	// Copy is the scratch copy of the release (ProbeOptions.Copy), or "". NoCopy is why it
	// could not be made (hard links impossible there), or "".
	Copy, NoCopy string
	copyLater    bool          // the probe left the copy to the host's LinkCopier
	copying      chan struct{} // closed when that copy has ended
	stopCopy     func()        // cancels it
	copyErr      string        // why it failed, read once copying is closed
	// HasLinks is false for a release made by a version of ferry that recorded no shared
	// links: it cannot be told from what was written into it since, so nothing of it is reused.
	HasLinks bool
	// ChangedDirs lists the directories modified since the manifest; Children maps each of
	// them, and "." always, to its entries (name to is-directory).
	ChangedDirs []string
	Children    map[string]map[string]bool
}

// startCopy begins the copy that the probe left to the host (copylater), under the lock the
// probe took: NoCopy says after WaitCopy why it failed.
func (lv *Live) startCopy(ctx context.Context, r *Root) {
	if !lv.copyLater || lv.copying != nil {
		return
	}
	lc := r.Host.(host.LinkCopier)
	ctx, cancel := context.WithCancel(ctx)
	lv.copying, lv.stopCopy = make(chan struct{}), cancel
	go func() {
		defer close(lv.copying)
		defer cancel()
		if err := lc.LinkCopy(ctx, r.ReleaseDir(lv.ID), lv.Copy); err != nil {
			lv.copyErr = err.Error()
		}
	}()
}

// WaitCopy waits for the copy of the live release to end, where the host makes it while the
// caller plans, and returns NoCopy: why it could not be made, or "". Only one goroutine may
// call it.
func (lv *Live) WaitCopy() string {
	if lv.copying != nil {
		<-lv.copying
		if lv.copyErr != "" {
			lv.Copy, lv.NoCopy = "", lv.copyErr
		}
	}
	return lv.NoCopy
}

// StopCopy stops a copy still running and waits for its end: the lock it runs under is about
// to go, or the run will not use it.
func (lv *Live) StopCopy() {
	if lv.copying != nil {
		lv.stopCopy()
		<-lv.copying
	}
}

// layoutPaths are the parts of a root's layout that must never be symlinks, relative to it.
// Paths inside shared/ may be: an operator links shared/uploads to a second disk.
const layoutPaths = `releases shared run .ferry .ferry/manifests .ferry/key .ferry/settled .ferry/log.jsonl .ferry/lock .ferry/proc`

// nextPrefix names the scratch copies of releases/ (ProbeOptions.Copy), and trashPrefix the
// releases being deleted. Both live in releases/ itself, so that moving one in or out is a
// rename in one directory, which works whatever filesystem releases/ is on.
const (
	nextPrefix  = ".ferry-next-"
	trashPrefix = ".ferry-trash-"
)

// Probe reads the root's state in one request, taking the lock and recovering leftovers first
// when o.Lock is set.
func (r *Root) Probe(ctx context.Context, o ProbeOptions) (*Probe, error) {
	mark := "ferry-section-" + rand.Text()
	s := r.newScript()
	s.line("M=" + q(mark))
	s.line(`sec() { printf '\n%s %s\n' "$M" "$1"; }`)
	// ferry never follows a symlink in its own layout: a planted link would turn a cleanup into
	// a delete elsewhere, or a write into one. Checked before anything is made.
	s.line(`for d in ` + layoutPaths + `; do`)
	s.line(`  if [ -L "$R/$d" ]; then h=; [ "$d" != shared ] || h=" (to keep shared state on another disk, link the paths inside shared/ instead, such as shared/uploads)"; die "$R/$d is a symlink: ferry does not follow symlinks in its own layout; remove it$h"; fi`)
	s.line(`done`)
	if o.Lock != nil || o.Create {
		// What is in .ferry decides what ferry deletes and which processes it signals: it must
		// be the deploying user's own, not another user's who could write there.
		s.line(`if [ -d "$R/.ferry" ] && [ ! -O "$R/.ferry" ]; then die "$R/.ferry belongs to another user than $(id -un), who runs ferry: ferry acts on what is in it, so it must be yours (chown -R $(id -un) $R/.ferry, or run ferry as its owner)"; fi`)
		// Whoever owns the root can rename anything in it while a run goes on (.ferry itself):
		// it must be the deploying user, or root.
		s.line(`if [ -d "$R" ] && [ ! -O "$R" ] && [ "$(stat -c %u "$R")" != 0 ]; then die "$R belongs to $(stat -c %U "$R"), not to $(id -un), who runs ferry: its owner could make ferry act outside it; run ferry as $(stat -c %U "$R"), or chown $(id -un) $R"; fi`)
	}
	s.line(`if [ ! -d "$R/releases" ]; then`)
	if o.Create {
		s.line(`  mkdir -p "$R/releases" || die ` + q("cannot create "+r.Dir+"/releases"))
	} else {
		// The shared files an operator made before the first deploy count already.
		sharedScript(s, o.Shared)
		s.line(`  sec missing; exit 0`)
	}
	s.line(`fi`)
	if o.Lock != nil || o.Create {
		s.line(`mkdir -p "$R/shared" "$R/.ferry/manifests" || die "cannot create the layout under $R"`)
	}
	if o.Lock != nil || o.Create {
		// .ferry is the deploy user's alone: the lock, the log with its hashes, and the key.
		s.line(`chmod 700 "$R/.ferry" 2>/dev/null`)
		s.line(`[ -s "$R/.ferry/key" ] || [ -L "$R/.ferry/key" ] || (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$R/.ferry/key")`)
	}
	s.line(`if [ -e "$R/current" ] && [ ! -L "$R/current" ]; then sec notlink; if [ -d "$R/current" ]; then echo directory; else echo file; fi`)
	if o.Lock != nil {
		s.line(`  exit 0`)
	}
	s.line(`fi`)
	if o.Lock != nil {
		data, err := json.Marshal(o.Lock)
		if err != nil {
			return nil, err
		}
		s.line(`T="$R/.ferry/lock.new-` + randomSuffix() + `"`)
		s.line(`printf '%s' ` + q(string(data)) + ` >"$T" || die "cannot write $T"`)
		// A lock released between the link and the read is tried again.
		s.line(`i=0; while :; do`)
		s.line(`  if ln "$T" "$R/.ferry/lock" 2>/dev/null; then rm -f "$T"; sec locked; break; fi`)
		s.line(`  c=$(cat "$R/.ferry/lock" 2>/dev/null) && [ -n "$c" ] && { rm -f "$T"; sec holder; printf '%s' "$c"; exit 0; }`)
		s.line(`  i=$((i+1)); [ $i -lt 10 ] || { rm -f "$T"; die ` + q("cannot create the lock "+r.Dir+"/.ferry/lock") + `; }`)
		s.line(`done`)
		r.recoverScript(s)
	} else {
		s.line(`if [ -f "$R/.ferry/lock" ]; then sec holder; cat "$R/.ferry/lock"; fi`)
	}
	s.line(`sec now; date +%s`)
	if o.Plain {
		s.line(`sec log; cat "$L" 2>/dev/null`)
	} else {
		s.line(`if [ -s "$L" ]; then sec loggz; gzip -c <"$L"; fi`)
	}
	s.line(`sec releases`)
	s.line(`for d in "$R"/releases/* "$R"/releases/.[!.]* "$R"/releases/..?*; do`)
	s.line(`  case ${d##*/} in ` + nextPrefix + `*|` + trashPrefix + `*) continue ;; esac`)
	s.line(`  if [ -d "$d" ] && [ ! -L "$d" ]; then printf 'd%s\000' "${d##*/}"; elif [ -e "$d" ] || [ -L "$d" ]; then printf 'f%s\000' "${d##*/}"; fi`)
	s.line(`done`)
	s.line(`if [ -L "$R/current" ]; then sec current; readlink "$R/current"; fi`)
	if o.Live {
		s.line(`c=$(readlink "$R/current" 2>/dev/null); id=${c##*/}`)
		s.line(`case $c in releases/*|"$R"/releases/*) ;; *) id= ;; esac`)
		s.line(`m="$R/.ferry/manifests/$id.json"`)
		s.line(`if [ -n "$id" ] && [ -f "$m" ] && [ -d "$R/releases/$id" ]; then`)
		s.line(`  sec live; printf '%s' "$id"`)
		send := `gzip -c <"$m"`
		if o.Plain {
			send = `sec plain; cat "$m"`
		}
		s.line(`  case ' ` + strings.Join(o.Cached, " ") + ` ' in *" $id "*) ;; *) sec manifest; ` + send + ` ;; esac`)
		s.line(`  if [ -f "$R/.ferry/manifests/$id.links" ]; then sec links; cat "$R/.ferry/manifests/$id.links"; fi`)
		s.line(`  sec stamp; stat -c %Y "$m"`)
		// What was written into the release since its manifest: files and links, and
		// directories; of each such directory (and of the release's top, always) every entry,
		// since a file added with an old mtime or deleted changes only its directory's mtime.
		s.line(`  cd "$R/releases/$id" || die "cannot read release $id"`)
		// Files whose ctime is newer than the settled stamp are listed too (tampered): changed
		// since ferry last touched their inodes, even with the mtime set back (touch -r). Only
		// where find has -cnewer (GNU), and only when no deletion of ferry's may have changed
		// ctimes since.
		s.line(`  S="$R/.ferry/settled"; ct=`)
		s.line(`  if [ -z "$churn" ] && [ -f "$S" ] && ! ls "$R"/.ferry/` + settlingPrefix + `* >/dev/null 2>&1 && find "$S" -maxdepth 0 -cnewer "$S" >/dev/null 2>&1; then ct=1; fi`)
		// GNU find lists all of it in one pass over the release, to files; others take a pass
		// for each list.
		s.line(`  P="$R/.ferry/probe.tmp-` + randomSuffix() + `"; D=`)
		s.line(`  if [ -w "$R/.ferry" ] && find "$m" -maxdepth 0 -fprint0 /dev/null 2>/dev/null; then`)
		s.line(`    if [ -n "$ct" ]; then`)
		s.line(`      find . \( -type d ! -path . -newer "$m" -fprint0 "$P.d" \) , \( ! -type d -newer "$m" -fprint0 "$P.f" \) , \( ! -type d -cnewer "$S" -fprint0 "$P.t" \) 2>/dev/null`)
		s.line(`    else`)
		s.line(`      find . \( -type d ! -path . -newer "$m" -fprint0 "$P.d" \) , \( ! -type d -newer "$m" -fprint0 "$P.f" \) 2>/dev/null`)
		s.line(`    fi`)
		s.line(`    sec changed; cat "$P.f"; sec changeddirs; cat "$P.d"; D="$P.d"`)
		s.line(`    if [ -n "$ct" ]; then sec tampered; cat "$P.t"; fi`)
		s.line(`  else`)
		s.line(`    sec changed; find . -newer "$m" ! -type d -print0 2>/dev/null`)
		s.line(`    sec changeddirs; find . -newer "$m" -type d ! -path . -print0 2>/dev/null`)
		s.line(`    if [ -n "$ct" ]; then sec tampered; find . ! -type d -cnewer "$S" -print0 2>/dev/null; fi`)
		s.line(`  fi`)
		s.line(`  sec children; { printf '.\000'; if [ -n "$D" ]; then cat "$D"; else find . -newer "$m" -type d ! -path . -print0 2>/dev/null; fi; } | xargs -0 -r sh -c 'for d; do printf "%s\001" "$d"; find "$d" -mindepth 1 -maxdepth 1 -type d -exec printf "d%s\000" {} + 2>/dev/null; find "$d" -mindepth 1 -maxdepth 1 ! -type d -exec printf "f%s\000" {} + 2>/dev/null; printf "\002"; done' sh`)
		s.line(`  rm -f "$P".?`)
		s.line(`  cd "$R"`)
		if o.Copy && o.Lock != nil {
			// A release made by a version of ferry that kept no .links is not copied.
			s.line(`  C="$R/releases/` + nextPrefix + randomSuffix() + `"`)
			s.line(`  if [ -f "$R/.ferry/manifests/$id.links" ]; then`)
			if _, ok := r.Host.(host.LinkCopier); ok {
				// The host copies in process, while the caller plans (see Live.WaitCopy).
				s.line(`    sec copylater; printf '%s' "$C"`)
			} else {
				s.line(`    if e=$(cp -al "$R/releases/$id" "$C" 2>&1); then sec copy; printf '%s' "$C"; else rm -rf "$C"; sec nocopy; printf '%s' "$e" | head -n 1; fi`)
			}
			s.line(`  fi`)
		}
		s.line(`fi`)
	}
	var linkPrefix string
	if o.Links && o.Lock != nil {
		// Named current.<6 hex of this probe><6 hex of a counter>, as every temporary link.
		linkPrefix = randomSuffix()[:6]
		s.line(`sec swaplinks; i=0; c=$(readlink "$R/current" 2>/dev/null)`)
		s.line(`for d in "$R"/releases/*; do n=${d##*/}; if [ -d "$d" ] && [ ! -L "$d" ] && [ "releases/$n" != "$c" ]; then`)
		s.line(`  i=$((i+1)); t="$R/current.` + linkPrefix + `$(printf %06x $i)"; ln -s "releases/$n" "$t" && note "$n" "$t"`)
		s.line(`fi; done`)
	}
	sharedScript(s, o.Shared)
	if len(o.SharedFiles) > 0 {
		s.line(`sec hashes`)
		hashNotes(s, o.SharedFiles)
	}
	if o.Processes {
		s.line(`if [ -d "$R/.ferry/proc" ] && [ ! -L "$R/.ferry/proc" ]; then`)
		s.line(procFunctions)
		s.line(`sec procs; for p in "$R/.ferry/proc/"*; do [ -f "$p" ] || continue; b=${p##*/}; case $b in *.tmp) continue ;; esac; set -- $(cat "$p") ""; ` +
			`st=exited; if [ "$1" = supervised ]; then st=supervised; elif alive "$1" "$2"; then st=running; fi; case $b in *.stopping.*) [ $st = running ] || continue; st=draining ;; esac; printf '%s\000%s\000%s\000' "$b" "$1" "$st"; done`)
		s.line(`sec links; for l in "$R"/*.sock; do if [ -L "$l" ]; then n=${l##*/}; k=$(readlink "$l"); k=${k#run/${n%.sock}.}; printf '%s\000%s\000' "$n" "${k%%.*}"; fi; done`)
		s.line(`fi`)
	}
	s.line(`sec end`)

	out, err := r.Host.Script(ctx, s.String())
	if err == nil && o.Lock == nil {
		return parseProbe(r, out, mark, o, linkPrefix)
	}
	var p *Probe
	if err == nil {
		p, err = parseProbe(r, out, mark, o, linkPrefix)
	}
	if err == nil && p.Live != nil {
		p.Live.startCopy(ctx, r)
	}
	if err != nil && o.Lock != nil {
		// The probe may have taken the lock before it failed: give it back if it is ours.
		data, _ := json.Marshal(o.Lock)
		(&Lease{root: r, data: data}).Release(context.WithoutCancel(ctx))
		return nil, scriptError(err)
	}
	return p, scriptError(err)
}

// parseProbe reads the answer of a probe.
// sharedScript reports which of the shared paths are in shared/, and whether each is a directory.
func sharedScript(s *script, shared []SharedPath) {
	if len(shared) == 0 {
		return
	}
	s.line(`sec shared`)
	s.line(`x() { if [ -d "$1" ]; then printf 'd%s\000' "$2"; elif [ -e "$1" ] || [ -L "$1" ]; then printf 'f%s\000' "$2"; fi; }`)
	for _, sp := range shared {
		s.line(`x "$R/shared/"` + q(sp.Path) + ` ` + q(sp.Path))
	}
}

func parseProbe(r *Root, out []byte, mark string, o ProbeOptions, linkPrefix string) (*Probe, error) {
	secs, err := sections(out, mark)
	if err != nil {
		return nil, err
	}
	p := &Probe{}
	p.Shared = map[string]bool{}
	for _, e := range fields(secs["shared"]) {
		if e != "" {
			p.Shared[e[1:]] = e[0] == 'd'
		}
	}
	if _, ok := secs["missing"]; ok {
		p.Missing = true
		p.State = &State{}
		return p, nil
	}
	if v, ok := secs["notlink"]; ok {
		p.NotLink = strings.TrimSpace(string(v))
	}
	if v, ok := secs["holder"]; ok {
		p.HolderRaw = v
		var h Holder
		if json.Unmarshal(v, &h) == nil {
			p.Holder = &h
		} else {
			p.Holder = &Holder{Command: fmt.Sprintf("unreadable lock file (%d bytes)", len(v))}
		}
	}
	_, p.Locked = secs["locked"]
	if o.Lock != nil && !p.Locked {
		return p, nil // held by another run, or current is not a link: nothing else was read
	}
	if _, ok := secs["end"]; !ok {
		return nil, fmt.Errorf("probe of %s ended early: %s", r.Dir, strings.TrimSpace(string(out)))
	}
	p.Recovered = fields(secs["recovered"])
	p.Warnings = fields(secs["warn"])
	entries := map[string]bool{}
	for _, e := range fields(secs["releases"]) {
		if e != "" {
			entries[e[1:]] = e[0] == 'd'
		}
	}
	p.Now, _ = strconv.ParseInt(strings.TrimSpace(string(secs["now"])), 10, 64)
	log := secs["log"]
	if gz, ok := secs["loggz"]; ok {
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return nil, fmt.Errorf("read the log of %s: %w (the host sent %q)", r.Dir, err, gz[:min(80, len(gz))])
		}
		if log, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("read the log of %s: %w", r.Dir, err)
		}
	}
	p.State = buildState(log, entries, strings.TrimSuffix(string(secs["current"]), "\n"), r.releasesDir())
	if f := fields(secs["procs"]); len(f) > 0 {
		for i := 0; i+2 < len(f); i += 3 {
			name, id, _ := strings.Cut(f[i], ".")
			id, _, _ = strings.Cut(id, ".stopping.")
			pid, _ := strconv.Atoi(f[i+1])
			p.Processes = append(p.Processes, Process{Service: name, Release: id, PID: pid, State: f[i+2]})
		}
	}
	if _, ok := secs["links"]; ok {
		p.Links = pairs(secs["links"])
	}
	if id, ok := secs["live"]; ok {
		lv := &Live{ID: string(id), Links: fields(secs["links"])}
		lv.Stamp, _ = strconv.ParseInt(strings.TrimSpace(string(secs["stamp"])), 10, 64)
		lv.Copy = string(secs["copy"])
		lv.NoCopy = strings.TrimSpace(string(secs["nocopy"]))
		if c, ok := secs["copylater"]; ok {
			lv.Copy = string(c)
			lv.copyLater = true
		}
		_, lv.HasLinks = secs["links"]
		for _, d := range fields(secs["changeddirs"]) {
			if d = strings.TrimPrefix(d, "./"); d != "." && d != "" {
				lv.ChangedDirs = append(lv.ChangedDirs, d)
			}
		}
		lv.Children = children(secs["children"])
		if plain, ok := secs["plain"]; ok {
			lv.Manifest = plain
		} else if gz, ok := secs["manifest"]; ok {
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				return nil, fmt.Errorf("read manifest of %s: %w", id, err)
			}
			if lv.Manifest, err = io.ReadAll(zr); err != nil {
				return nil, fmt.Errorf("read manifest of %s: %w", id, err)
			}
		}
		for _, c := range fields(secs["changed"]) {
			if c = strings.TrimPrefix(c, "./"); c != "." && c != "" {
				lv.Changed = append(lv.Changed, c)
			}
		}
		for _, c := range fields(secs["tampered"]) {
			if c = strings.TrimPrefix(c, "./"); c != "." && c != "" {
				lv.Tampered = append(lv.Tampered, c)
			}
		}
		p.Live = lv
	}
	p.SharedHashes = parseHashes(fields(secs["hashes"]))
	if v, ok := secs["swaplinks"]; ok {
		p.SwapLinks, p.linkPrefix = pairs(v), linkPrefix
	}
	return p, nil
}

// State reads the root's state: the log, releases/ and where current points. It changes nothing.
func (r *Root) State() (*State, error) {
	p, err := r.Probe(context.Background(), ProbeOptions{})
	if err != nil {
		return nil, err
	}
	return p.State, nil
}

// recoverScript removes what a killed run left behind: temporary current.* links, temporary
// files, scratch copies and the trash. It runs with the lock held. Incomplete releases are
// removed by the next request, once the engine has read the log. What cannot be deleted (a
// file of another user's) is a warning: it never stops a run.
func (r *Root) recoverScript(s *script) {
	s.line(`for f in "$R"/` + tempLinkGlob + ` "$R"/*.sock.` + strings.Repeat("[0-9a-f]", 12) + `; do if [ -L "$f" ] && rm -f "$f"; then sec recovered; note "removed temporary link ${f##*/} left by an interrupted swap"; fi; done`)
	s.line(`find "$R/.ferry" "$R/.ferry/manifests" -maxdepth 1 -type f -name '*.tmp-*' -exec rm -f {} + 2>/dev/null`)
	// A run waiting for the lock writes lock.new-* while we hold it: only old ones are leftovers.
	// So does a background deletion (settling.*), and one left by a reboot is old.
	s.line(`find "$R/.ferry" -maxdepth 1 -type f \( -name 'lock.new-*' -o -name 'lock.stale-*' -o -name 'lock.gone-*' \) -mmin +10 -exec rm -f {} + 2>/dev/null`)
	s.line(`find "$R/.ferry" -maxdepth 1 -name '` + settlingPrefix + `*' -mmin +10 -exec rm -rf {} + 2>/dev/null`)
	// .ferry/trash is where older versions of ferry put releases being deleted.
	s.line(`for t in "$R"/releases/` + nextPrefix + `* "$R"/releases/` + trashPrefix + `* "$R"/.ferry/trash; do`)
	s.line(`  [ -e "$t" ] && [ ! -L "$t" ] || continue`)
	s.line(`  churn=1; rm -rf "$t" 2>/dev/null || { find "$t" -type d -exec chmod u+w {} + 2>/dev/null; rm -rf "$t" 2>/dev/null; } ||`)
	s.line(`    { sec warn; note "could not delete $t (a file ferry may not delete, or a mount point): remove it by hand"; }`)
	s.line(`done`)
}

// pairs reads NUL-separated fields as key, value, key, value….
func pairs(sec []byte) map[string]string {
	out := map[string]string{}
	f := fields(sec)
	for i := 0; i+1 < len(f); i += 2 {
		out[f[i]] = f[i+1]
	}
	return out
}

// sections splits a script's output at lines "<mark> <name>" into named sections.
func sections(out []byte, mark string) (map[string][]byte, error) {
	sep := []byte("\n" + mark + " ")
	parts := bytes.Split(out, sep)
	secs := map[string][]byte{}
	for _, part := range parts[1:] {
		name, body, ok := bytes.Cut(part, []byte("\n"))
		if !ok {
			return nil, errors.New("malformed answer from the host")
		}
		secs[string(name)] = append(secs[string(name)], body...)
	}
	return secs, nil
}

// children parses the listing of directories' entries: for each directory, its path, \001, its
// entries as "d<path>\000" or "f<path>\000", and \002.
func children(sec []byte) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, block := range strings.Split(string(sec), "\x02") {
		dir, entries, ok := strings.Cut(block, "\x01")
		if !ok {
			continue
		}
		dir = strings.TrimPrefix(dir, "./")
		m := map[string]bool{}
		for _, e := range fields([]byte(entries)) {
			if len(e) < 2 {
				continue
			}
			m[strings.TrimPrefix(e[1:], "./")] = e[0] == 'd'
		}
		out[dir] = m
	}
	return out
}
