package transfer

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	Files, Sent, Reused int
	Bytes, SentBytes    int64
}

// NewPlan compares m with the previous release's manifest. A file is reused only when path,
// size, mode and content hash all match.
func NewPlan(m, prev *Manifest, prevID, reuse string) *Plan {
	p := &Plan{Manifest: &Manifest{Entries: append([]Entry(nil), m.Entries...)}, Reused: map[string]bool{}, Previous: prevID}
	if prev == nil || prevID == "" || reuse != ReuseLink {
		return p
	}
	old := prev.Index()
	for i := range p.Manifest.Entries {
		e := &p.Manifest.Entries[i]
		o, ok := old[e.Path]
		if ok && e.Type == TypeFile && o.Type == TypeFile && o.Size == e.Size && o.Mode == e.Mode && o.Hash == e.Hash {
			p.Reused[e.Path] = true
			e.MTime = o.MTime // a hard link shares the old inode, and its mtime
		}
	}
	return p
}

// Stats counts what the plan sends and reuses.
func (p *Plan) Stats() Stats {
	var s Stats
	for _, e := range p.Manifest.Entries {
		if e.Type != TypeFile {
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
	tw := tar.NewWriter(w)
	buf := make([]byte, 256<<10)
	for _, e := range p.Manifest.Entries {
		hdr := &tar.Header{
			Name:    id + "/" + e.Path,
			Mode:    int64(e.Mode),
			ModTime: time.Unix(e.MTime, 0),
			Format:  tar.FormatGNU, // raw bytes in names: newlines and non-UTF-8 survive
		}
		switch {
		case e.Type == TypeDir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
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
