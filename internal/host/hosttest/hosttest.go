// Package hosttest is the conformance suite of the host.Host contract: every transport runs it
// (host/local against this machine, host/ssh against real OpenSSH servers with GNU and with
// BusyBox userland), so a new transport is one package and one call to Run. The suite works on
// a directory the host and the test both see, which holds for every transport tested here: the
// SSH servers run on this machine.
package hosttest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-deploy/ferry/internal/host"
)

// Open returns a host for one subtest; the suite closes it.
type Open func(t *testing.T) host.Host

// Run runs every test of the contract against the hosts open returns.
func Run(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h host.Host, dir string)
	}{
		{"ScriptOutputAndExitStatus", scriptOutputAndExitStatus},
		{"ScriptOfAnyLength", scriptOfAnyLength},
		{"ScriptBinaryOutput", scriptBinaryOutput},
		{"ScriptsRunOneAfterAnother", scriptsRunOneAfterAnother},
		{"ScriptCancelled", scriptCancelled},
		{"UnpackRunsBeforeStreamAfter", unpackRunsBeforeStreamAfter},
		{"UnpackStopsWhenBeforeFails", unpackStopsWhenBeforeFails},
		{"UnpackNeverLeavesDir", unpackNeverLeavesDir},
		{"UnpackLargeFile", unpackLargeFile},
		{"RenameReplacesALinkWithoutFollowingIt", renameReplacesALink},
		{"RenameMissingIsNotExist", renameMissing},
		{"RunEnvDirAndStreams", runEnvDirAndStreams},
		{"RunExitStatus", runExitStatus},
		{"RunTimeoutKillsTheProcessGroup", runTimeoutKillsTheGroup},
		{"RunBackgroundProcessHoldingTheOutput", runBackgroundHoldingOutput},
		{"DialReachesTheHostsLoopback", dialReachesLoopback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := open(t)
			t.Cleanup(func() { h.Close() })
			dir, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			tc.fn(t, h, dir)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func scriptOutputAndExitStatus(t *testing.T, h host.Host, dir string) {
	out, err := h.Script(ctx(t), "printf 'out\\n'; printf 'err\\n' >&2")
	if err != nil || string(out) != "out\nerr\n" {
		t.Fatalf("Script = %q, %v; want both streams", out, err)
	}
	out, err = h.Script(ctx(t), "echo 'it broke'; exit 7")
	var ee *host.ExitError
	if !errors.As(err, &ee) || ee.Code != 7 || !strings.Contains(ee.Output, "it broke") {
		t.Fatalf("Script = %q, %v; want an *ExitError with code 7 and the output", out, err)
	}
	// A script cannot read the request channel's input.
	if out, err := h.Script(ctx(t), "cat; echo done"); err != nil || string(out) != "done\n" {
		t.Fatalf("a script reading stdin: %q, %v", out, err)
	}
}

func scriptOfAnyLength(t *testing.T, h host.Host, dir string) {
	// Longer than a command line may be (128 kB for one argument on Linux).
	var b strings.Builder
	for i := range 20000 {
		b.WriteString("x=" + strconv.Itoa(i) + "\n")
	}
	b.WriteString("echo \"$x\"\n")
	out, err := h.Script(ctx(t), b.String())
	if err != nil || string(out) != "19999\n" {
		t.Fatalf("a %d-byte script: %q, %v", b.Len(), out, err)
	}
}

func scriptBinaryOutput(t *testing.T, h host.Host, dir string) {
	out, err := h.Script(ctx(t), `printf 'a\000b\nc\000'`)
	if err != nil || string(out) != "a\x00b\nc\x00" {
		t.Fatalf("Script = %q, %v", out, err)
	}
}

func scriptsRunOneAfterAnother(t *testing.T, h host.Host, dir string) {
	f := filepath.Join(dir, "n")
	for i := range 20 {
		if _, err := h.Script(ctx(t), "echo "+strconv.Itoa(i)+" >> "+host.Quote(f)); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(f)
	if lines := strings.Fields(string(data)); len(lines) != 20 || lines[19] != "19" {
		t.Fatalf("20 scripts wrote %q", data)
	}
}

func scriptCancelled(t *testing.T, h host.Host, dir string) {
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.Script(c, "sleep 30")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("a cancelled script returned %v after %s", err, time.Since(start))
	}
	// The host is still usable afterwards.
	if out, err := h.Script(ctx(t), "echo ok"); err != nil || string(out) != "ok\n" {
		t.Fatalf("after a cancelled script: %q, %v", out, err)
	}
}

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarOf(t *testing.T, entries ...entry) *bytes.Buffer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	return &buf
}

func unpackRunsBeforeStreamAfter(t *testing.T, h host.Host, dir string) {
	rel := filepath.Join(dir, "rel")
	stream := tarOf(t,
		entry{name: "sub/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "sub/a.txt", typ: tar.TypeReg, mode: 0o640, body: "alpha"},
		entry{name: "run.sh", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\n"},
		entry{name: "link", typ: tar.TypeSymlink, link: "sub/a.txt"},
	)
	before := "mkdir " + host.Quote(rel) + " && echo kept > " + host.Quote(rel+"/kept")
	after := "cat " + host.Quote(rel+"/sub/a.txt") + "; printf '\\000'"
	out, err := h.Unpack(ctx(t), rel, stream, before, after)
	if err != nil || string(out) != "alpha\x00" {
		t.Fatalf("Unpack = %q, %v; want after's output", out, err)
	}
	for p, want := range map[string]string{"kept": "kept\n", "sub/a.txt": "alpha", "link": "alpha"} {
		if got, err := os.ReadFile(filepath.Join(rel, p)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(rel, "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("run.sh mode: %v, %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(rel, "sub/a.txt")); err != nil || fi.ModTime().Unix() != 1700000000 {
		t.Errorf("sub/a.txt mtime: %v, %v; want the stream's", fi.ModTime(), err)
	}
	if target, _ := os.Readlink(filepath.Join(rel, "link")); target != "sub/a.txt" {
		t.Errorf("link -> %q", target)
	}
}

func unpackStopsWhenBeforeFails(t *testing.T, h host.Host, dir string) {
	rel := filepath.Join(dir, "rel")
	os.Mkdir(rel, 0o755)
	stream := tarOf(t, entry{name: "a.txt", typ: tar.TypeReg, mode: 0o644, body: strings.Repeat("x", 1<<20)})
	_, err := h.Unpack(ctx(t), rel, stream, "echo 'no room'; exit 1", "touch "+host.Quote(rel+"/after-ran"))
	var ee *host.ExitError
	if !errors.As(err, &ee) || !strings.Contains(ee.Output, "no room") {
		t.Fatalf("Unpack = %v; want before's failure with its output", err)
	}
	for _, p := range []string{"a.txt", "after-ran"} {
		if _, err := os.Lstat(filepath.Join(rel, p)); err == nil {
			t.Errorf("%s exists although before failed", p)
		}
	}
}

func unpackNeverLeavesDir(t *testing.T, h host.Host, dir string) {
	rel := filepath.Join(dir, "a", "rel")
	os.MkdirAll(rel, 0o755)
	for _, name := range []string{"../escaped", "../../escaped2", filepath.Join(dir, "absolute")} {
		stream := tarOf(t, entry{name: name, typ: tar.TypeReg, mode: 0o644, body: "x"})
		h.Unpack(ctx(t), rel, stream, "", "") // an error or a stripped name: either way nothing leaves
	}
	for _, p := range []string{filepath.Join(dir, "a", "escaped"), filepath.Join(dir, "escaped2"), filepath.Join(dir, "absolute")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("an entry of the stream was written outside the directory: %s", p)
		}
	}
}

func unpackLargeFile(t *testing.T, h host.Host, dir string) {
	rel := filepath.Join(dir, "rel")
	os.Mkdir(rel, 0o755)
	body := make([]byte, 12<<20)
	for i := range body {
		body[i] = byte(i * 7 / 5) // compressible, not trivially
	}
	stream := tarOf(t, entry{name: "big.bin", typ: tar.TypeReg, mode: 0o644, body: string(body)})
	if _, err := h.Unpack(ctx(t), rel, stream, "", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(rel, "big.bin")); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("big.bin: %d bytes, %v", len(got), err)
	}
}

func renameReplacesALink(t *testing.T, h host.Host, dir string) {
	os.MkdirAll(filepath.Join(dir, "releases/a"), 0o755)
	os.MkdirAll(filepath.Join(dir, "releases/b"), 0o755)
	os.Symlink("releases/a", filepath.Join(dir, "current"))
	os.Symlink("releases/b", filepath.Join(dir, "current.tmp"))
	if err := h.Rename(ctx(t), filepath.Join(dir, "current.tmp"), filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "current")); target != "releases/b" {
		t.Fatalf("current -> %q, want releases/b", target)
	}
	if _, err := os.Lstat(filepath.Join(dir, "releases/a/current.tmp")); err == nil {
		t.Fatal("the rename followed the old link into the directory it pointed at")
	}
}

func renameMissing(t *testing.T, h host.Host, dir string) {
	err := h.Rename(ctx(t), filepath.Join(dir, "nothing"), filepath.Join(dir, "x"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Rename of a missing path = %v, want fs.ErrNotExist", err)
	}
}

func runEnvDirAndStreams(t *testing.T, h host.Host, dir string) {
	var stdout, stderr bytes.Buffer
	err := h.Run(ctx(t), host.Command{Script: `pwd; echo "$FERRY_X"; echo oops >&2`, Dir: dir,
		Env: []string{"FERRY_X=a 'quoted' $(value)"}, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	if want := dir + "\na 'quoted' $(value)\n"; stdout.String() != want || stderr.String() != "oops\n" {
		t.Fatalf("stdout %q, stderr %q; want %q and %q", stdout.String(), stderr.String(), want, "oops\n")
	}
}

func runExitStatus(t *testing.T, h host.Host, dir string) {
	err := h.Run(ctx(t), host.Command{Script: "exit 3"})
	var ee *host.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("Run = %v, want an *ExitError with code 3", err)
	}
}

func runTimeoutKillsTheGroup(t *testing.T, h host.Host, dir string) {
	pidFile := filepath.Join(dir, "child.pid")
	err := h.Run(ctx(t), host.Command{Script: "sleep 60 & echo $! > " + host.Quote(pidFile) + "; wait", Timeout: time.Second})
	var te *host.TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("Run = %v, want a *TimeoutError", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the command's child %d still runs after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runBackgroundHoldingOutput: a command that leaves a process in the background with its
// output (reload: sleep 20 &) returns soon, long before its Timeout, with an error that says to
// redirect that output; one that redirects it returns nil; the command's own output is whole.
func runBackgroundHoldingOutput(t *testing.T, h host.Host, dir string) {
	pidFile := filepath.Join(dir, "bg.pid")
	t.Cleanup(func() {
		if data, err := os.ReadFile(pidFile); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(data))); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	var stdout, stderr bytes.Buffer
	err := h.Run(ctx(t), host.Command{Script: "echo started; printf 'no newline' >&2; sleep 30 & echo $! > " + host.Quote(pidFile),
		Stdout: &stdout, Stderr: &stderr, Timeout: 20 * time.Second})
	var te *host.TimeoutError
	if err == nil || errors.As(err, &te) || !strings.Contains(err.Error(), "redirect that process's output") {
		t.Fatalf("Run = %v, want an error that says to redirect the background process's output", err)
	}
	if stdout.String() != "started\n" || stderr.String() != "no newline" {
		t.Fatalf("stdout %q, stderr %q; want %q and %q", stdout.String(), stderr.String(), "started\n", "no newline")
	}
	stdout.Reset()
	err = h.Run(ctx(t), host.Command{Script: "sleep 30 >/dev/null 2>&1 & echo $! > " + host.Quote(pidFile) + "; echo done", Stdout: &stdout, Timeout: 20 * time.Second})
	if err != nil || stdout.String() != "done\n" {
		t.Fatalf("Run with the output redirected = %v, %q; want nil and %q", err, stdout.String(), "done\n")
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

func dialReachesLoopback(t *testing.T, h host.Host, dir string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
	c, err := h.DialContext(ctx(t), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, _ := io.ReadAll(c)
	if string(got) != "hello" {
		t.Fatalf("read %q through the host", got)
	}
}
