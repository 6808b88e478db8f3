package transfer

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Reuse modes of ferry.yaml.
const (
	ReuseLink = "link" // hard-link unchanged files from the previous release
	ReuseCopy = "copy" // copy them on the host (locally: same as sending them)
	ReuseNone = "none" // send every file
)

// Plan says, for each file of a new release, whether it crosses the wire or is reused.
type Plan struct {
	Manifest *Manifest       // the new release; linked entries carry the previous release's mtime
	Reused   map[string]bool // paths hard-linked from the previous release
	Previous string          // id of the release files are linked from
}

// Stats sums up a plan.
type Stats struct {
	Files     int   `json:"files"`
	Sent      int   `json:"sent"`
	Reused    int   `json:"reused"`
	Carried   int   `json:"carried,omitempty"`
	Bytes     int64 `json:"bytes"`
	SentBytes int64 `json:"sent_bytes"`
}

// NewPlan compares m with the previous release's manifest. A file is reused only when path,
// size, mode and content hash all match. Files that prev had under one of the assets
// directories and m lacks are carried over (linked from prev) unless prev itself had carried
// them: an asset stays reachable for exactly one release after the build dropped it.
func NewPlan(m, prev *Manifest, prevID, reuse string, assets []string) *Plan {
	p := &Plan{Manifest: &Manifest{Entries: append([]Entry(nil), m.Entries...)}, Reused: map[string]bool{}, Previous: prevID}
	if prev == nil || prevID == "" {
		return p
	}
	if reuse == ReuseLink {
		old := prev.Index()
		for i := range p.Manifest.Entries {
			e := &p.Manifest.Entries[i]
			o, ok := old[e.Path]
			if ok && e.Type == TypeFile && o.Type == TypeFile && o.Size == e.Size && o.Mode == e.Mode && o.Hash == e.Hash {
				p.Reused[e.Path] = true
				e.MTime = o.MTime // a hard link shares the old inode, and its mtime
			}
		}
	}
	if reuse == ReuseLink {
		p.carry(prev, assets) // carried files are the previous release's, linked
	}
	return p
}

// carry adds the assets that the build dropped since prev, and the directories they need.
func (p *Plan) carry(prev *Manifest, assets []string) {
	if len(assets) == 0 {
		return
	}
	have := p.Manifest.Index()
	var added []Entry
	for _, o := range prev.Entries {
		if o.Carried || o.Type != TypeFile || !slices.ContainsFunc(assets, func(a string) bool { return under(o.Path, a) }) {
			continue
		}
		if _, ok := have[o.Path]; ok {
			continue
		}
		if !dirsAbove(o.Path, have) {
			continue // the new build has a file or a link where the asset's directory was
		}
		for dir := path.Dir(o.Path); dir != "."; dir = path.Dir(dir) {
			if _, ok := have[dir]; !ok {
				d := Entry{Path: dir, Type: TypeDir, Mode: 0o755, Carried: true}
				have[dir] = &d
				added = append(added, d)
			}
		}
		o.Carried = true
		added = append(added, o)
		p.Reused[o.Path] = true
	}
	if len(added) == 0 {
		return
	}
	p.Manifest.Entries = append(p.Manifest.Entries, added...)
	slices.SortFunc(p.Manifest.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
}

// Stats counts what the plan sends and reuses.
func (p *Plan) Stats() Stats {
	var s Stats
	for _, e := range p.Manifest.Entries {
		if e.Type != TypeFile {
			continue
		}
		if e.Carried {
			s.Carried++
			continue
		}
		s.Files++
		s.Bytes += e.Size
		if p.Reused[e.Path] {
			s.Reused++
		} else {
			s.Sent++
			s.SentBytes += e.Size
		}
	}
	return s
}

// Changes is what a host does to turn a hard-linked copy of the previous release (cp -al) into
// the new release, besides unpacking the stream.
type Changes struct {
	Remove   []string        // paths of the copy the new release must not have
	Writable []string        // directories of the copy to make writable before removing
	Send     map[string]bool // paths the stream carries
	Modes    []Entry         // directories whose final mode is set after the stream
}

// Changes compares the plan with prev, the full manifest of the release the host copies from
// (nil when it starts empty). extra are paths the previous release has that its manifest does
// not list (its shared links, files written into it after it was made): they are removed too.
func (p *Plan) Changes(prev *Manifest, extra []string) *Changes {
	c := &Changes{Send: map[string]bool{}}
	old := map[string]*Entry{}
	if prev != nil {
		old = prev.Index()
	}
	next := p.Manifest.Index()
	removed := map[string]bool{}
	remove := func(path string) {
		for d := path; d != "."; d = pathDir(d) {
			if removed[d] {
				return // already gone with a directory above it
			}
		}
		removed[path] = true
		c.Remove = append(c.Remove, path)
	}
	if prev != nil {
		for _, o := range prev.Entries {
			if o.Type == TypeDir && o.Mode&0o200 == 0 {
				c.Writable = append(c.Writable, o.Path)
			}
		}
		// What cannot be trusted goes first, so that nothing is removed below it: a directory
		// replaced by a link must be removed as the link, never entered.
		slices.Sort(extra)
		for _, x := range extra {
			remove(x)
		}
		for _, o := range prev.Entries {
			n, ok := next[o.Path]
			keep := ok && n.Type == o.Type && (o.Type == TypeDir ||
				(o.Type == TypeFile && p.Reused[o.Path]) ||
				(o.Type == TypeSymlink && n.Target == o.Target))
			if !keep {
				remove(o.Path)
			}
		}
	}
	for _, e := range p.Manifest.Entries {
		o, had := old[e.Path]
		gone := false
		for d := e.Path; d != "."; d = pathDir(d) {
			gone = gone || removed[d]
		}
		present := had && !gone
		switch {
		case e.Type == TypeDir:
			if !present {
				c.Send[e.Path] = true
			}
			if (!present && e.Mode&0o700 != 0o700) || (present && (o.Mode != e.Mode || o.Mode&0o200 == 0)) {
				c.Modes = append(c.Modes, e)
			}
		case !present || !p.Reused[e.Path] && e.Type == TypeFile:
			c.Send[e.Path] = true
		case e.Type == TypeSymlink && o.Target != e.Target:
			c.Send[e.Path] = true
		}
	}
	return c
}

func pathDir(p string) string { return path.Dir(p) }

// Write streams the entries of the plan that send holds (all when send is nil) as a tar archive
// to be unpacked in the release directory, followed by files, extra entries of ferry's own
// (path to content). Directories are sent writable by their owner, so that the stream can fill
// them; Changes lists their real modes. progress, if set, is told of every byte sent as it is
// sent. A file whose content no longer matches the scan fails the stream with ErrSourceChanged.
func (p *Plan) Write(w io.Writer, srcDir string, send map[string]bool, files map[string][]byte, progress func(int64)) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 256<<10)
	for _, e := range p.Manifest.Entries {
		if send != nil && !send[e.Path] {
			continue
		}
		hdr := &tar.Header{
			Name:    e.Path,
			Mode:    int64(e.Mode),
			ModTime: time.Unix(e.MTime, 0),
			Format:  tar.FormatGNU, // raw bytes in names: newlines and non-UTF-8 survive
		}
		switch e.Type {
		case TypeDir:
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", hdr.Mode|0o700
		case TypeSymlink:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.Target
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, e.Size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("upload %q: %w", e.Path, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := copyFile(tw, filepath.Join(srcDir, filepath.FromSlash(e.Path)), e, buf, progress); err != nil {
				return err
			}
		}
	}
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		data := files[name]
		hdr := &tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: time.Now(), Typeflag: tar.TypeReg, Format: tar.FormatGNU}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, p string, e Entry, buf []byte, progress func(int64)) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	out := io.MultiWriter(w, h)
	if progress != nil {
		out = progressWriter{out, progress}
	}
	n, err := io.CopyBuffer(out, io.LimitReader(f, e.Size), buf)
	if err != nil {
		return fmt.Errorf("upload %q: %w", e.Path, err)
	}
	if n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.Hash {
		return fmt.Errorf("%w: %q (rebuild, then deploy again)", ErrSourceChanged, e.Path)
	}
	return nil
}

// progressWriter reports every write, so a progress bar moves with the bytes of a large file.
type progressWriter struct {
	w        io.Writer
	progress func(int64)
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.progress(int64(n))
	return n, err
}

// dirsAbove reports whether every directory above p that have lists is a directory.
func dirsAbove(p string, have map[string]*Entry) bool {
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		if e, ok := have[dir]; ok && e.Type != TypeDir {
			return false
		}
	}
	return true
}
