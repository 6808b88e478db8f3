package ssh

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// semiCompressible is content like a binary's: gzip shrinks it, not to nothing.
func semiCompressible(n int) []byte {
	b := make([]byte, n)
	x := uint32(1)
	for i := range b {
		x = x*1664525 + 1013904223
		if i%4 == 0 {
			b[i] = byte(x >> 24)
		} else {
			b[i] = byte(i / 512)
		}
	}
	return b
}

func tarOf(t *testing.T, name string, body []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	tw.Close()
	return buf.Bytes()
}

type countingWriter struct {
	writes, bytes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	c.bytes += len(p)
	return len(p), nil
}

// Every write to a session is one SSH packet. gzip writes 240 bytes at a time, and sshd, fed
// tens of thousands of tiny packets, fell behind for seconds; the stream is written in 64 kB
// pieces.
func TestUploadStreamIsWrittenInLargePieces(t *testing.T) {
	stream := tarOf(t, "big.bin", semiCompressible(15<<20))
	var w countingWriter
	if err := writeStream(&w, "true\n", bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	if max := w.bytes/(64<<10) + 1; w.writes > max {
		t.Fatalf("%d bytes went out in %d writes; want at most %d (64 kB each)", w.bytes, w.writes, max)
	}
}

// A large file uploaded again and again to a real sshd arrives whole every time.
func TestLargeUploadManyTimes(t *testing.T) {
	h := dialTestServer(t)
	defer h.Close()
	dir := t.TempDir()
	for i := range 6 {
		body := semiCompressible(15 << 20)
		body[i] = byte(i) // changed by a few bytes each time, as a rebuilt binary
		out := filepath.Join(dir, "app")
		os.Remove(out)
		if _, err := h.Unpack(context.Background(), dir, bytes.NewReader(tarOf(t, "app", body)), "", ""); err != nil {
			t.Fatalf("upload %d: %v", i+1, err)
		}
		got, err := os.ReadFile(out)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("upload %d: %d bytes arrived (%v), want %d", i+1, len(got), err, len(body))
		}
	}
	sent, _ := h.BytesOnWire()
	if sent > 6*15<<20 {
		t.Errorf("%d bytes sent for 6 uploads of a compressible 15 MB file", sent)
	}
}
