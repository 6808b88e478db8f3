package transfer

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
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
	p.carry(prev, assets)
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

// Write streams the plan as a tar archive to be unpacked in <root>/releases: entries are named
// "<id>/<path>", and reused files are hard links to "<previous>/<path>", so one stream both uploads
// the changed files and links the unchanged ones. progress, if set, is told of every byte sent.
// A file whose content no longer matches the scan fails the stream with ErrSourceChanged.
func (p *Plan) Write(w io.Writer, srcDir, id string, progress func(int64)) error {
	return p.write(w, srcDir, id, func(int, Entry) bool { return true }, false, progress)
}

// WriteSkeleton writes the directories and symlinks of the plan, each directory writable by its
// owner so that parallel streams can fill it (see ReadOnlyDirs).
func (p *Plan) WriteSkeleton(w io.Writer, id string) error {
	return p.write(w, "", id, func(_ int, e Entry) bool { return e.Type != TypeFile }, true, nil)
}

// WritePart writes the files of part k of n (by position), for n streams unpacked in parallel
// after the skeleton: creating files is most of a deploy's time, and filesystems create them in
// parallel much faster than one by one.
func (p *Plan) WritePart(w io.Writer, srcDir, id string, k, n int, progress func(int64)) error {
	return p.write(w, srcDir, id, func(i int, e Entry) bool { return e.Type == TypeFile && i%n == k }, false, progress)
}

// ReadOnlyDirs lists the directories whose mode WriteSkeleton widened, with their real mode.
func (p *Plan) ReadOnlyDirs() []Entry {
	var out []Entry
	for _, e := range p.Manifest.Entries {
		if e.Type == TypeDir && e.Mode&0o700 != 0o700 {
			out = append(out, e)
		}
	}
	return out
}

func (p *Plan) write(w io.Writer, srcDir, id string, want func(int, Entry) bool, writableDirs bool, progress func(int64)) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 256<<10)
	for i, e := range p.Manifest.Entries {
		if !want(i, e) {
			continue
		}
		hdr := &tar.Header{
			Name:    id + "/" + e.Path,
			Mode:    int64(e.Mode),
			ModTime: time.Unix(e.MTime, 0),
			Format:  tar.FormatGNU, // raw bytes in names: newlines and non-UTF-8 survive
		}
		switch {
		case e.Type == TypeDir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
			if writableDirs {
				hdr.Mode |= 0o700
			}
		case e.Type == TypeSymlink:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.Target
		case p.Reused[e.Path]:
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, p.Previous+"/"+e.Path
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
	return tw.Close()
}

func copyFile(w io.Writer, p string, e Entry, buf []byte, progress func(int64)) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), io.LimitReader(f, e.Size), buf)
	if err != nil {
		return fmt.Errorf("upload %q: %w", e.Path, err)
	}
	if n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.Hash {
		return fmt.Errorf("%w: %q (rebuild, then deploy again)", ErrSourceChanged, e.Path)
	}
	if progress != nil {
		progress(n)
	}
	return nil
}
