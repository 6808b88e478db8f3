package deploy

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/human"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/transfer"
)

// previous finds the live release's manifest (in the probe's answer, in the cache, or fetched)
// and what of it can be reused: a file edited in place since the release was made is sent, not
// linked, since a hard link would carry the edit into the new release.
func (run *hostRun) previous(ctx context.Context, cfg *config.Config, cache *manifestCache, rep Reporter) error {
	lv := run.probe.Live
	if lv == nil {
		return nil
	}
	cur := run.state.Find(lv.ID)
	if cur == nil || !cur.Live() || lv.ID != run.state.Current {
		return nil
	}
	raw := lv.Manifest
	if raw == nil {
		raw = cache.get(run.Target, lv.ID, cur.Manifest)
	}
	if raw == nil {
		var err error
		if raw, err = run.Root.Manifest(ctx, lv.ID); err != nil {
			rep.Warn(run.Name, fmt.Sprintf("cannot read the manifest of %s (%v): sending every file", lv.ID, err))
			return nil
		}
	}
	m, err := transfer.ParseManifest(raw)
	if err != nil {
		rep.Warn(run.Name, fmt.Sprintf("cannot read the manifest of %s (%v): sending every file", lv.ID, err))
		return nil
	}
	cache.put(run.Target, lv.ID, raw)
	run.prevID, run.prevRaw, run.prevFull, run.prevMan = lv.ID, raw, m, m
	if cfg.Reuse != transfer.ReuseLink {
		return nil
	}
	if !lv.HasLinks {
		// Made by a version of ferry that recorded neither its shared links nor when hooks
		// wrote into it: nothing of it is reused, once.
		run.prevMan = nil
		return nil
	}
	if lv.NoCopy != "" {
		run.noCopy(lv.NoCopy, rep)
		return nil
	}
	idx := m.Index()
	// Paths of the live release that cannot be trusted: files and links written since its
	// manifest, entries its manifest lacks, entries whose type changed (a directory replaced by
	// a link must never be written through), and entries that are gone.
	suspect := map[string]bool{}
	changed := map[string]bool{}
	for _, c := range lv.Changed {
		suspect[c] = true
		changed[c] = true
	}
	// Files whose ctime says they may have changed though their mtime does not are tampered
	// with only if their content differs: ctimes also change when an inode's links or owner
	// do (a run of ferry cut short, a chmod -R, a hand-deleted release).
	tampered := map[string]bool{}
	var candidates []transfer.Entry
	for _, c := range lv.Tampered {
		if e := idx[c]; e != nil && e.Type == transfer.TypeFile && e.Hash != "" {
			candidates = append(candidates, *e)
		}
	}
	if len(candidates) > 0 {
		differ, err := differentHashes(ctx, run.Root, lv.ID, candidates)
		for _, e := range candidates {
			if err != nil || differ[e.Path] {
				suspect[e.Path], changed[e.Path], tampered[e.Path] = true, true, true
			}
		}
	}
	for _, entries := range lv.Children {
		for name, isDir := range entries {
			if e := idx[name]; e == nil || (e.Type == transfer.TypeDir) != isDir {
				suspect[name] = true
			}
		}
	}
	if len(lv.Children) > 0 {
		for _, e := range m.Entries {
			if entries, listed := lv.Children[path.Dir(e.Path)]; listed {
				if _, ok := entries[e.Path]; !ok {
					suspect[e.Path] = true // gone from the live release
					changed[e.Path] = true
				}
			}
		}
	}
	// A file the build wrote in the manifest's own second is newer than the manifest without
	// having changed: its mtime on the host tells, compared with the one the manifest records.
	// One that cannot be told is sent again, without a warning.
	var unsure []transfer.Entry
	for _, e := range m.Entries {
		if e.Type == transfer.TypeFile && changed[e.Path] && !tampered[e.Path] && e.MTime > lv.Stamp {
			unsure = append(unsure, e)
		}
	}
	quiet := map[string]bool{}
	if len(unsure) > 0 {
		same, differ, err := sameMTimes(ctx, run.Root, lv.ID, unsure)
		for _, e := range unsure {
			quiet[e.Path] = err != nil || !differ[e.Path]
			if same[e.Path] {
				delete(changed, e.Path)
				delete(suspect, e.Path)
			}
		}
	}
	run.extra = slices.Sorted(maps.Keys(suspect))
	reusable := &transfer.Manifest{Entries: make([]transfer.Entry, 0, len(m.Entries))}
	var edited []string
	for _, e := range m.Entries {
		if e.Type == transfer.TypeFile && suspect[e.Path] {
			if changed[e.Path] && !quiet[e.Path] {
				edited = append(edited, e.Path)
			}
			continue
		}
		reusable.Entries = append(reusable.Entries, e)
	}
	if len(edited) > 0 {
		rep.Warn(run.Name, fmt.Sprintf("%s of the live release %s changed or went missing since it was deployed (%s): sent fresh instead of linked; see 'ferry check'",
			human.Plural(len(edited), "file"), lv.ID, strings.Join(edited[:min(3, len(edited))], ", ")))
	}
	run.prevMan = reusable
	return nil
}

// differentHashes tells which files of release id no longer have the content the manifest
// records, or are gone, hashing them on the host in one request (sha256sum through xargs; a file
// that is not a regular file, or cannot be read, gives no line and counts as changed).
func differentHashes(ctx context.Context, root *release.Root, id string, files []transfer.Entry) (map[string]bool, error) {
	var b strings.Builder
	b.WriteString("cd " + host.Quote(root.ReleaseDir(id)) + " || exit 1\nprintf '%s\\0'")
	for _, e := range files {
		b.WriteString(" " + host.Quote("./"+e.Path))
	}
	b.WriteString(" | xargs -0 sha256sum -- 2>/dev/null\nexit 0\n")
	out, err := root.Host.Script(ctx, b.String())
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for line := range strings.SplitSeq(string(out), "\n") {
		// "<hash>  ./<name>"; a name with a backslash or a newline is escaped, and its line
		// starts with a backslash.
		escaped := strings.HasPrefix(line, "\\")
		h, name, ok := strings.Cut(strings.TrimPrefix(line, "\\"), "  ./")
		if !ok {
			continue
		}
		if escaped {
			name = strings.NewReplacer("\\\\", "\\", "\\n", "\n", "\\r", "\r").Replace(name)
		}
		got[name] = h
	}
	differ := map[string]bool{}
	for _, e := range files {
		if got[e.Path] != e.Hash {
			differ[e.Path] = true
		}
	}
	return differ, nil
}

// sameMTimes tells, of files of release id, which still have on the host the mtime and size
// the manifest records and which do not, in one request: which exist, then one stat(1) for those.
func sameMTimes(ctx context.Context, root *release.Root, id string, files []transfer.Entry) (same, differ map[string]bool, err error) {
	var b strings.Builder
	b.WriteString("cd " + host.Quote(root.ReleaseDir(id)) + " || exit 1\nset --\n")
	for _, e := range files {
		p := host.Quote(e.Path)
		b.WriteString("if [ -f " + p + " ] && [ ! -L " + p + " ]; then set -- \"$@\" " + p + "; printf 1; else printf 0; fi\n")
	}
	b.WriteString("echo; [ $# -eq 0 ] || stat -c '%Y %s' -- \"$@\"\n")
	out, err := root.Host.Script(ctx, b.String())
	if err != nil {
		return nil, nil, err
	}
	exists, rest, _ := strings.Cut(string(out), "\n")
	stats := strings.Fields(rest)
	if len(exists) != len(files) || 2*strings.Count(exists, "1") != len(stats) {
		return nil, nil, fmt.Errorf("unexpected answer %q", out)
	}
	same, differ = map[string]bool{}, map[string]bool{}
	k := 0
	for i, e := range files {
		if exists[i] != '1' {
			differ[e.Path] = true
			continue
		}
		if stats[k] == strconv.FormatInt(e.MTime, 10) && stats[k+1] == strconv.FormatInt(e.Size, 10) {
			same[e.Path] = true
		} else {
			differ[e.Path] = true
		}
		k += 2
	}
	return same, differ, nil
}

// noCopy gives up reusing the live release, which could not be hard-linked into the next one.
func (run *hostRun) noCopy(reason string, rep Reporter) {
	rep.Warn(run.Name, fmt.Sprintf("cannot hard-link release %s into the next one (%s): sending every file", run.prevID, reason))
	run.prevMan = nil
}
