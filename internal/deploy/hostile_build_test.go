package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/transfer"
)

// hostileShared is the shared state every hostile build is deployed against: a file and a
// directory, the directory holding a file a user uploaded.
const hostileShared = "shared:\n  files: [.env]\n  dirs: [public/uploads]\n"

// hostileOutcome is what a hostile build must end in.
type hostileOutcome int

const (
	// shipped: the deploy succeeds and the release is exactly the build (less what is excluded
	// or shared).
	shipped hostileOutcome = iota
	// refused: the deploy fails with a clear error and nothing live changed.
	refused
	// eitherWay: either of the two, each checked as strictly.
	eitherWay
)

func (o hostileOutcome) String() string {
	return [...]string{"shipped", "refused", "shipped or refused"}[o]
}

// hostileEnv is a site with sentinels planted next to its build and next to its root: nothing
// ferry does may reach them.
type hostileEnv struct {
	*site
	nearBuild string // <dir of the build>/sentinel
	nearRoot  string // <dir of the root>/sentinel (the same directory on this machine)
}

// link makes the symlink rel of the build pointing to target.
func (h *hostileEnv) link(target, rel string) {
	h.t.Helper()
	p := filepath.Join(h.src, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hostileEnv) mkdir(rel string) {
	h.t.Helper()
	if err := os.MkdirAll(filepath.Join(h.src, rel), 0o755); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hostileEnv) remove(rel string) {
	h.t.Helper()
	if err := os.RemoveAll(filepath.Join(h.src, rel)); err != nil {
		h.t.Fatal(err)
	}
}

type hostileCase struct {
	name string
	ssh  bool // also over SSH, to a GNU and to a BusyBox host
	root bool // needs root (mknod of a device): skipped otherwise, a failure under FERRY_TEST_DISALLOW_SKIP
	want hostileOutcome
	// extra is more ferry.yaml; base adds to the good build deployed first; hostile makes
	// the build hostile.
	extra   string
	base    func(h *hostileEnv)
	hostile func(h *hostileEnv)
	// offending are the paths a refusal may name (relative to the build).
	offending []string
	// absent are paths of the build that must not be in the release (excluded).
	absent []string
	// warn is a warning a shipped build must give.
	warn string
	// check checks more of a shipped release, releases/<id> in dir.
	check func(t *testing.T, h *hostileEnv, dir string)
}

// pwned is what a name that runs a command would create.
const pwned = "hostile-pwned"

func hostileCases() []hostileCase {
	sentinelSecret := func(h *hostileEnv) string { return filepath.Join(h.nearRoot, "secret.txt") }
	unreadable := refused
	if os.Geteuid() == 0 {
		unreadable = shipped // root reads anything: the file ships, its mode as the build had it
	}
	deep := make([]string, 100)
	for i := range deep {
		deep[i] = fmt.Sprintf("level-%03d", i)
	}
	deepDir := strings.Join(deep, "/")
	return []hostileCase{
		// Files that are not files: refused by the scan.
		{
			name: "a fifo", want: refused, offending: []string{"public/pipe"},
			hostile: func(h *hostileEnv) {
				if err := unix.Mkfifo(filepath.Join(h.src, "public/pipe"), 0o644); err != nil {
					h.t.Fatal(err)
				}
			},
		},
		{
			name: "a unix socket", want: refused, offending: []string{"public/app.sock"},
			hostile: func(h *hostileEnv) { hostileSocket(h.t, filepath.Join(h.src, "public/app.sock")) },
		},
		{
			name: "a character device", root: true, want: refused, offending: []string{"public/null"},
			hostile: func(h *hostileEnv) {
				hostileMknod(h.t, filepath.Join(h.src, "public/null"), unix.S_IFCHR, unix.Mkdev(1, 3))
			},
		},
		{
			name: "a block device", root: true, want: refused, offending: []string{"disk"},
			hostile: func(h *hostileEnv) {
				hostileMknod(h.t, filepath.Join(h.src, "disk"), unix.S_IFBLK, unix.Mkdev(7, 0))
			},
		},

		// Links that leave the build, directly or through other links: refused.
		{
			name: "an absolute symlink", ssh: true, want: refused, offending: []string{"public/abs"},
			hostile: func(h *hostileEnv) { h.link(sentinelSecret(h), "public/abs") },
		},
		{
			name: "a relative symlink escaping with ..", ssh: true, want: refused, offending: []string{"public/evil"},
			hostile: func(h *hostileEnv) { h.link("../../sentinel/secret.txt", "public/evil") },
		},
		{
			// Each link stays inside by its text; followed one through the other they climb
			// out: u1 -> public, u2 -> the top, u3 -> the build's parent, …
			name: "a chain of relative links that escapes", ssh: true, want: refused,
			offending: []string{"public/x/pw", "public/x/sn", "public/x/u3", "public/x/u4", "public/x/u5", "public/x/u6", "public/x/u7", "public/x/u8"},
			hostile: func(h *hostileEnv) {
				h.link("..", "public/x/u1")
				for i := 2; i <= 8; i++ {
					h.link(fmt.Sprintf("u%d/..", i-1), fmt.Sprintf("public/x/u%d", i))
				}
				h.link("u8/etc/passwd", "public/x/pw")
				h.link("u3/sentinel/secret.txt", "public/x/sn")
			},
		},
		{
			// esc goes through dl, a link to up, a link to a directory (the top of the
			// build), and climbs from there.
			name: "a link through a link to a directory link escaping", ssh: true, want: refused,
			offending: []string{"public/esc"},
			hostile: func(h *hostileEnv) {
				h.link("..", "public/up")
				h.link("up", "public/dl")
				h.link("dl/../sentinel/secret.txt", "public/esc")
			},
		},
		{
			name: "a symlink loop", ssh: true, want: refused,
			offending: []string{"public/loop1", "public/loop2", "public/self"},
			hostile: func(h *hostileEnv) {
				h.link("loop2", "public/loop1")
				h.link("loop1", "public/loop2")
				h.link("self", "public/self")
			},
		},
		{
			name: "a shared file that is a symlink out of the build", ssh: true, want: refused, offending: []string{".env"},
			hostile: func(h *hostileEnv) { h.link("../sentinel/secret.txt", ".env") },
		},
		{
			name: "a shared dir that is an absolute symlink", ssh: true, want: refused, offending: []string{"public/uploads"},
			hostile: func(h *hostileEnv) { h.link(h.nearRoot, "public/uploads") },
		},

		// Links that stay inside: shipped as they are.
		{
			name: "a dangling link inside the build", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.link("missing.html", "public/dangling")
				h.link("../nothing/here", "public/a/b")
			},
		},
		{
			name: "links to directories inside the build", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("public/assets/app.1.js", "a1")
				h.link("assets", "public/latest")
				h.link("public", "docs")
				h.link("index.html", "public/home.html")
			},
			check: func(t *testing.T, h *hostileEnv, dir string) {
				if got, err := os.ReadFile(filepath.Join(dir, "docs/latest/app.1.js")); err != nil || string(got) != "a1" {
					t.Errorf("docs/latest/app.1.js = %q, %v", got, err)
				}
			},
		},
		{
			// Whoever follows links while walking the release goes round for ever.
			name: "links back to their own directory", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.link(".", "public/self")
				h.link("..", "public/loop/back")
				h.link("../..", "public/loop/deeper/top")
			},
		},
		{
			name: "a dangling link with an odd target", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.link("no such\nfile $(touch "+pwned+") `touch "+pwned+"` '\"\t\\ \xff", "public/odd-target")
				h.link("-rf", "public/dash-target")
			},
		},

		// Odd names: shipped as they are, and no name is ever run.
		{
			name: "names with a newline", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("public/new\nline.txt", "nl")
				h.write("new\ndir/\n", "only a newline")
				h.write("public/trailing\n", "trailing")
			},
		},
		{
			name: "names with a tab", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("public/tab\there.txt", "tab")
				h.write("\tdir\t/\t", "tabs")
			},
		},
		{
			name: "names with a backslash", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write(`public/back\slash.txt`, "bs")
				h.write(`public/\n.txt`, "not a newline")
				h.write(`\\dir\/x\`, "bs dir")
			},
		},
		{
			name: "names with a leading dash", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("public/-rf", "dash")
				h.write("public/--", "dashdash")
				h.write("public/-", "dash alone")
				h.write("-n", "top")
				h.write("--help/-x", "dir")
			},
		},
		{
			name: "names with spaces", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("public/ leading.txt", "l")
				h.write("public/trailing.txt ", "t")
				h.write("public/a  b.txt", "ab")
				h.write("my dir/ /x y", "d")
			},
		},
		{
			name: "names with quotes", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write(`public/it's.txt`, "sq")
				h.write(`public/"dq".txt`, "dq")
				h.write(`'"'/"'"`, "mixed")
			},
		},
		{
			name: "names with $() and backticks", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("public/$(touch "+pwned+").txt", "cmd")
				h.write("public/`touch "+pwned+"`.txt", "bt")
				h.write("$(touch "+pwned+")/${HOME}$PATH", "dir")
				h.write(";touch "+pwned+";", "semi")
				h.write("|touch "+pwned+"&", "pipe")
			},
		},
		{
			name: "names with glob and printf characters", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("public/*", "star")
				h.write("public/?", "q")
				h.write("public/[ab]", "br")
				h.write("public/{a,b}", "brace")
				h.write("public/%s%n%%", "pct")
				h.write("*/~", "tilde")
				h.write("#comment", "hash")
			},
		},
		{
			// Bare names at the top of the release, where a script may put them in test(1).
			name: "names that are test(1) operators", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				for _, n := range []string{"!", "=", "(", ")", "-a", "-o", "-f", "-L", "]"} {
					h.write(n, "op "+n)
				}
			},
		},
		{
			name: "names that are not UTF-8", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("public/bad-\xff\xfe.txt", "latin")
				h.write("\xc3\x28/\xe2\x82", "broken sequences")
			},
		},
		{
			name: "names with control characters", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("ctl-\x01\x02\x03", "top")
				h.write("public/esc-\x1b[31m-\x7f", "esc")
				h.write("public/\x02only", "stx")
				h.write("d\x01/f\x02", "nested")
			},
		},
		{
			name: "names of 255 bytes", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("public/"+strings.Repeat("n", 255), "long")
				h.write(strings.Repeat("d", 255)+"/"+strings.Repeat("f", 255), "long in long")
				h.write("public/"+strings.Repeat("é", 127)+"x", "long utf-8")
			},
		},
		{
			name: "directories nested 100 deep", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write(deepDir+"/bottom.txt", "deep")
				h.link(strings.Repeat("../", 100)+"public/index.html", deepDir+"/top.html")
			},
		},
		{
			name: "files named like ferry's temporary names", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.link("index.html", "public/current.abc123def456")
				h.write("public/current.0123456789ab.tmp", "x")
				h.write("public/.ferry-next-x/index.html", "next")
				h.write("public/.ferry-trash-x/index.html", "trash")
				h.write("public/css/.ferry-trash-y", "trash file")
				h.link("public", "current.abc123def456")
				h.write(".ferry-next-z/f", "top next")
				h.write(".ferry-trash-z/f", "top trash")
				h.write(".ferry-0123456789abcdef.manifest", "{}")
				h.write("settling.x", "s")
				h.write("lock", "l")
				h.write("manifest.json.tmp-abc", "m")
			},
		},
		{
			name: "ferry's own layout inside the build", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write(".ferry/lock", `{"user":"mallory","host":"x","pid":1}`)
				h.write(".ferry/log.jsonl", `{"type":"activate","release":"20000101-000000"}`+"\n")
				h.write(".ferry/manifests/20000101-000000.json", "{}\n")
				h.write(".ferry/key", "0000")
				h.write("releases/20000101-000000/index.html", "old")
				h.write("shared/.env", "FAKE=1\n")
				h.link("releases/20000101-000000", "current")
				h.link("public", "current.000000000000")
			},
		},

		// The build and shared/ disagree on a shared path's kind: shared/ wins, untouched.
		{
			name: "a directory where shared has a file", ssh: true, want: shipped, warn: "the build ships .env",
			hostile: func(h *hostileEnv) { h.write(".env/inner", "a dir, not a file") },
		},
		{
			name: "a file where shared has a directory", ssh: true, want: shipped, warn: "the build ships public/uploads",
			hostile: func(h *hostileEnv) { h.write("public/uploads", "a file, not a dir") },
		},
		{
			name: "a shared dir that is a link inside the build", want: shipped, warn: "the build ships public/uploads",
			hostile: func(h *hostileEnv) {
				h.write("storage/x", "x")
				h.link("../storage", "public/uploads")
			},
		},
		{
			// public is a link to a directory two levels deeper: the shared link made
			// through it must still lead to shared/public/uploads.
			name: "the parent of a shared dir is a link to a deeper directory", want: eitherWay,
			offending: []string{"public"},
			hostile: func(h *hostileEnv) {
				h.remove("public")
				h.write("web/site/root/index.html", "hello")
				h.link("web/site/root", "public")
			},
			check: func(t *testing.T, h *hostileEnv, dir string) {
				if got, err := os.ReadFile(filepath.Join(dir, "public/uploads/photo.jpg")); err != nil || string(got) != "jpeg" {
					t.Errorf("the uploaded file through the release's public/uploads = %q, %v; want the shared copy", got, err)
				}
			},
		},
		{
			// In the build, up leads to the top of the build; in the release uploads is a
			// link into shared/, and up would lead there instead.
			name: "a link that climbs through a shared dir", want: eitherWay,
			offending: []string{"public/up"},
			hostile:   func(h *hostileEnv) { h.link("uploads/../..", "public/up") },
			check: func(t *testing.T, h *hostileEnv, dir string) {
				got, err := filepath.EvalSymlinks(filepath.Join(dir, "public/up"))
				want, _ := filepath.EvalSymlinks(dir)
				if err != nil || got != want {
					t.Errorf("public/up resolves to %s (%v) in the release; in the build it is the top of the build, so want %s", got, err, want)
				}
			},
		},

		// Builds odd as a whole.
		{
			// An empty build deploys an empty release, or is refused; either way exactly.
			name: "an empty build", ssh: true, want: eitherWay, offending: []string{""},
			hostile: func(h *hostileEnv) {
				h.remove("public")
			},
		},
		{
			name: "a file of mode 0000", want: unreadable, offending: []string{"public/secret.bin"},
			hostile: func(h *hostileEnv) {
				h.write("public/secret.bin", "nobody may read this")
				os.Chmod(filepath.Join(h.src, "public/secret.bin"), 0)
			},
		},
		{
			name: "a directory of mode 0000", want: unreadable, offending: []string{"locked"},
			hostile: func(h *hostileEnv) {
				h.write("locked/inside.txt", "inside")
				os.Chmod(filepath.Join(h.src, "locked"), 0)
				h.t.Cleanup(func() { os.Chmod(filepath.Join(h.src, "locked"), 0o755) })
			},
		},
		{
			name: "setuid, setgid and sticky bits", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("bin/tool", "#!/bin/sh\n")
				os.Chmod(filepath.Join(h.src, "bin/tool"), 0o755|fs.ModeSetuid|fs.ModeSetgid)
				os.Chmod(filepath.Join(h.src, "bin"), 0o777|fs.ModeSticky)
			},
		},
		{
			name: "a hard-linked pair", ssh: true, want: shipped,
			hostile: func(h *hostileEnv) {
				h.write("public/a.txt", "pair")
				if err := os.Link(filepath.Join(h.src, "public/a.txt"), filepath.Join(h.src, "public/b.txt")); err != nil {
					h.t.Fatal(err)
				}
			},
		},
		{
			name: "a hard link to a file outside the build", want: shipped,
			hostile: func(h *hostileEnv) {
				if err := os.Link(filepath.Join(h.nearBuild, "secret.txt"), filepath.Join(h.src, "public/linked.txt")); err != nil {
					h.t.Fatal(err)
				}
			},
			check: func(t *testing.T, h *hostileEnv, dir string) {
				if sameInode(t, filepath.Join(dir, "public/linked.txt"), filepath.Join(h.nearBuild, "secret.txt")) {
					t.Error("the release's file is the sentinel's inode")
				}
			},
		},
		{
			name: "a hard link to a file of shared/", want: shipped,
			hostile: func(h *hostileEnv) {
				if err := os.Link(filepath.Join(h.root, "shared/.env"), filepath.Join(h.src, "public/env.txt")); err != nil {
					h.t.Fatal(err)
				}
			},
			check: func(t *testing.T, h *hostileEnv, dir string) {
				if sameInode(t, filepath.Join(dir, "public/env.txt"), filepath.Join(h.root, "shared/.env")) {
					t.Error("the release's file is shared/.env's inode: editing one edits the other")
				}
			},
		},
		{
			// An excluded directory is not read at all: what is in it cannot be refused.
			name: "hostile entries excluded", want: shipped,
			extra:  "exclude: [node_modules/, \"*.log\", /tmp]\n",
			absent: []string{"node_modules", "public/debug.log", "tmp"},
			hostile: func(h *hostileEnv) {
				h.mkdir("node_modules/.cache")
				unix.Mkfifo(filepath.Join(h.src, "node_modules/.cache/pipe"), 0o644)
				hostileSocket(h.t, filepath.Join(h.src, "node_modules/s.sock"))
				h.link(sentinelSecret(h), "node_modules/abs")
				h.link("../../sentinel", "node_modules/out")
				h.write("public/debug.log", "log")
				h.mkdir("tmp")
				unix.Mkfifo(filepath.Join(h.src, "tmp/pipe"), 0o644)
			},
		},
		{
			// The live release had public/latest as a link to assets: the new directory
			// must not be written through it into assets.
			name: "a link of the live release becomes a directory", ssh: true, want: shipped,
			base: func(h *hostileEnv) {
				h.write("public/assets/app.js", "live asset")
				h.link("assets", "public/latest")
			},
			hostile: func(h *hostileEnv) {
				h.remove("public/latest")
				h.write("public/latest/app.js", "now a file of latest")
			},
		},
		{
			name: "a directory of the live release becomes a link", ssh: true, want: shipped,
			base: func(h *hostileEnv) {
				h.write("public/assets/app.js", "live asset")
				h.write("public/static/app.js", "static asset")
			},
			hostile: func(h *hostileEnv) {
				h.remove("public/assets")
				h.link("static", "public/assets")
			},
		},
	}
}

// TestHostileBuild deploys, over a good release with shared state, builds made to break a
// deploy: each ends in a release exactly as the build was, or in a clear error with nothing
// live changed; nothing outside the root and the build is ever touched.
func TestHostileBuild(t *testing.T) {
	cases := hostileCases()
	if len(cases) < 25 {
		t.Fatalf("%d cases, want at least 25", len(cases))
	}
	for _, where := range []string{"local", "ssh-gnu", "ssh-busybox"} {
		for _, tc := range cases {
			if where != "local" && !tc.ssh {
				continue
			}
			t.Run(where+"/"+tc.name, func(t *testing.T) { runHostile(t, where, tc) })
		}
	}
}

func runHostile(t *testing.T, where string, tc hostileCase) {
	if tc.root && os.Geteuid() != 0 {
		hostileSkip(t, "this case makes a device node, which needs root")
	}
	extra := hostileShared + tc.extra
	var s *site
	switch where {
	case "local":
		s = newSite(t, extra)
	default:
		s, _ = sshSite(t, where == "ssh-busybox", extra)
	}
	h := &hostileEnv{site: s, nearBuild: filepath.Join(filepath.Dir(s.src), "sentinel"), nearRoot: filepath.Join(filepath.Dir(s.root), "sentinel")}
	plantSentinel(t, h.nearBuild)
	if h.nearRoot != h.nearBuild {
		plantSentinel(t, h.nearRoot)
	}

	// A good release with shared state: .env seeded from the first build, a file uploaded.
	s.write(".env", "SECRET=1\n")
	if tc.base != nil {
		tc.base(h)
	}
	good := s.mustDeploy()
	h.remove(".env")
	if err := os.WriteFile(filepath.Join(s.root, "shared/public/uploads/photo.jpg"), []byte("jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}

	tc.hostile(h)
	before := takeHostileState(t, h)
	s.rep = &recorder{}
	res, err := s.deploy()
	t.Logf("%s: want %v; err = %v", tc.name, tc.want, err)
	after := takeHostileState(t, h)
	before.untouched(t, after)
	noCommandRan(t, h)

	switch {
	case err != nil && tc.want == shipped:
		t.Fatalf("the deploy failed; want the build shipped: %v", err)
	case err == nil && tc.want == refused:
		t.Errorf("the deploy succeeded (release %s); want it refused", res.Release)
		checkShipped(t, h, tc, before, res.Release)
	case err != nil:
		checkRefused(t, h, tc, before, good, err)
	default:
		checkShipped(t, h, tc, before, res.Release)
		// The hostile release is now live: the next deploy reads it (what changed in it,
		// what can be linked from it) and must ship the build exactly again.
		s.write("public/index.html", "v3")
		before = takeHostileState(t, h)
		res, err := s.deploy()
		if err != nil {
			t.Fatalf("the deploy after the hostile release failed: %v", err)
		}
		before.untouched(t, takeHostileState(t, h))
		noCommandRan(t, h)
		checkShipped(t, h, tc, before, res.Release)
	}
}

// checkRefused asserts a clear error and that nothing live changed.
func checkRefused(t *testing.T, h *hostileEnv, tc hostileCase, before *hostileState, good string, err error) {
	t.Helper()
	var se *transfer.SourceError
	usage := errors.Is(err, config.ErrConfig) || errors.As(err, &se)
	if !usage && !namesOneOf(err.Error(), tc.offending) {
		t.Errorf("error %q is neither a config/usage error nor names any of %q", err, tc.offending)
	}
	if se != nil && se.Path != "" && !slices.Contains(tc.offending, se.Path) {
		t.Errorf("the refused path is %q, want one of %q", se.Path, tc.offending)
	}
	if cur := h.current(); cur != good {
		t.Errorf("current = %s, want %s still", cur, good)
	}
	// The probe's scratch copy of the live release is deleted in the background.
	waitSettled(t, h.root)
	h.check()
	if diff := cmp.Diff(before.releases, releasesIn(t, h.root)); diff != "" {
		t.Errorf("releases/ changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(before.manifests, listDir(t, filepath.Join(h.root, ".ferry/manifests"))); diff != "" {
		t.Errorf(".ferry/manifests changed (-before +after):\n%s", diff)
	}
	if got := listDir(t, h.root); !slices.Equal(got, before.top) {
		t.Errorf("the root's entries changed: %q, were %q", got, before.top)
	}
}

// checkShipped asserts that release id is live, complete, and exactly the build.
func checkShipped(t *testing.T, h *hostileEnv, tc hostileCase, before *hostileState, id string) {
	t.Helper()
	if cur := h.current(); cur != id {
		t.Errorf("current = %s, want the new release %s", cur, id)
	}
	waitSettled(t, h.root)
	h.check()
	if got, want := releasesIn(t, h.root), append(slices.Clone(before.releases), id); !slices.Equal(got, want) {
		t.Errorf("releases/ = %q, want %q", got, want)
	}
	dir := filepath.Join(h.root, "releases", id)
	sameAsBuild(t, h.src, dir, h.cfg.SharedPaths(), tc.absent)
	if tc.warn != "" && !h.rep.warned(tc.warn) {
		t.Errorf("no warning says %q; warnings %q", tc.warn, h.rep.warnings)
	}
	if tc.check != nil {
		tc.check(t, h, dir)
	}
}

// hostileState is what a deploy of a hostile build must not change (shared/, the sentinels,
// the directories around the build and the root) or may change only by adding its release.
type hostileState struct {
	releases  []string
	manifests []string
	top       []string
	shared    map[string]string // snapshotShared: content
	sharedAll map[string]string // kind, mode, links, times of every entry
	around    map[string]map[string]string
}

func takeHostileState(t *testing.T, h *hostileEnv) *hostileState {
	t.Helper()
	st := &hostileState{
		releases:  releasesIn(t, h.root),
		manifests: listDir(t, filepath.Join(h.root, ".ferry/manifests")),
		top:       listDir(t, h.root),
		shared:    h.snapshotShared(),
		sharedAll: treeState(t, filepath.Join(h.root, "shared")),
		around:    map[string]map[string]string{},
	}
	for _, s := range []string{h.nearBuild, h.nearRoot} {
		st.around[s] = treeState(t, s)
		st.around[filepath.Dir(s)] = shallowState(t, filepath.Dir(s))
	}
	return st
}

// untouched asserts that shared/, the sentinels and the directories holding the build and the
// root are as they were.
func (st *hostileState) untouched(t *testing.T, now *hostileState) {
	t.Helper()
	if diff := cmp.Diff(st.shared, now.shared); diff != "" {
		t.Errorf("shared/ changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(st.sharedAll, now.sharedAll); diff != "" {
		t.Errorf("shared/'s entries changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(st.around, now.around); diff != "" {
		t.Errorf("something outside the root and the build changed (-before +after):\n%s", diff)
	}
}

// plantSentinel makes a small tree nothing may touch.
func plantSentinel(t *testing.T, dir string) {
	t.Helper()
	for p, content := range map[string]string{"secret.txt": "PRECIOUS", "sub/inner.txt": "inner", "etc/passwd": "root:x:0:0"} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("secret.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

// treeState records every entry under dir: kind, mode, size, link count, mtime, ctime, and
// content or target.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = entryState(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// shallowState records the entries of dir itself, by name and kind only: ferry's caches live
// there and change.
func shallowState(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		out[e.Name()] = e.Type().String()
	}
	return out
}

func entryState(t *testing.T, p string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("%v size=%d nlink=%d ino=%d mtime=%d.%d ctime=%d.%d", fi.Mode(), fi.Size(), st.Nlink, st.Ino, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	switch {
	case fi.Mode().IsRegular():
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s += fmt.Sprintf(" content=%q", b)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(p)
		s += " -> " + target
	}
	return s
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// sameAsBuild asserts that the release in dir holds exactly the build in src: every entry with
// its kind, content or target, and mode masked by the umask without setuid, setgid or sticky
// bits; shared paths aside (the checker of invariants sees they are links into shared/), and
// absent paths absent.
func sameAsBuild(t *testing.T, src, dir string, shared, absent []string) {
	t.Helper()
	umask := processUmask(t)
	skip := func(d fs.DirEntry) error {
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	}
	inBuild := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if underAny(rel, absent) {
			if _, err := os.Lstat(filepath.Join(dir, rel)); err == nil {
				t.Errorf("%q is excluded, but it is in the release", rel)
			}
			return skip(d)
		}
		if underAny(rel, shared) {
			return skip(d)
		}
		inBuild[rel] = true
		bi, err := d.Info()
		if err != nil {
			return err
		}
		ri, err := os.Lstat(filepath.Join(dir, rel))
		if err != nil {
			t.Errorf("%q of the build is not in the release: %v", rel, err)
			return skip(d)
		}
		if bi.Mode().Type() != ri.Mode().Type() {
			t.Errorf("%q is a %v in the build and a %v in the release", rel, bi.Mode().Type(), ri.Mode().Type())
			return skip(d)
		}
		want := bi.Mode().Perm() &^ umask
		switch {
		case bi.Mode()&fs.ModeSymlink != 0:
			bt, _ := os.Readlink(p)
			rt, _ := os.Readlink(filepath.Join(dir, rel))
			if bt != rt {
				t.Errorf("%q -> %q in the release, %q in the build", rel, rt, bt)
			}
			return nil
		case ri.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != want:
			t.Errorf("%q has mode %v in the release, want %v (the build's %v less the umask %v and special bits)", rel, ri.Mode(), want, bi.Mode(), umask)
		}
		if bi.Mode().IsRegular() {
			b, berr := os.ReadFile(p)
			r, rerr := os.ReadFile(filepath.Join(dir, rel))
			if berr != nil || rerr != nil || !bytes.Equal(b, r) {
				t.Errorf("%q: the release has %q (%v), the build %q (%v)", rel, r, rerr, b, berr)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		// A shared path and the directories above it are in every release.
		rel = filepath.ToSlash(rel)
		aboveShared := slices.ContainsFunc(shared, func(s string) bool { return s == rel || strings.HasPrefix(s, rel+"/") })
		if rel != "." && !inBuild[rel] && !aboveShared {
			t.Errorf("%q is in the release, but not in the build", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func underAny(p string, bases []string) bool {
	return slices.ContainsFunc(bases, func(b string) bool { return p == b || strings.HasPrefix(p, b+"/") })
}

// namesOneOf reports whether msg names one of paths, as it is or quoted.
func namesOneOf(msg string, paths []string) bool {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if strings.Contains(msg, p) || strings.Contains(msg, strings.Trim(strconv.Quote(p), `"`)) {
			return true
		}
	}
	return false
}

// noCommandRan asserts that no name of the build was run as a command: nothing named pwned
// appeared where a shell of ferry's may run.
func noCommandRan(t *testing.T, h *hostileEnv) {
	t.Helper()
	wd, _ := os.Getwd()
	home, _ := os.UserHomeDir()
	dirs := []string{wd, home, os.TempDir(), "/", filepath.Dir(h.src), filepath.Dir(h.root), h.src}
	for _, d := range dirs {
		if _, err := os.Lstat(filepath.Join(d, pwned)); err == nil {
			t.Errorf("%s/%s exists: a name of the build ran as a command", d, pwned)
		}
	}
	filepath.WalkDir(h.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == pwned {
			t.Errorf("%s exists: a name of the build ran as a command", p)
		}
		return nil
	})
}

func sameInode(t *testing.T, a, b string) bool {
	t.Helper()
	ai, err := os.Lstat(a)
	if err != nil {
		t.Fatal(err)
	}
	bi, err := os.Lstat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(ai, bi)
}

// processUmask reads the umask without setting it (unix.Umask would, for every goroutine).
func processUmask(t *testing.T) fs.FileMode {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			return fs.FileMode(n)
		}
	}
	t.Fatal("no Umask in /proc/self/status")
	return 0
}

// hostileSkip skips a case that cannot run here, and fails it under FERRY_TEST_DISALLOW_SKIP.
func hostileSkip(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("FERRY_TEST_DISALLOW_SKIP") != "" {
		t.Fatalf("%s, and FERRY_TEST_DISALLOW_SKIP is set", msg)
	}
	t.Skip(msg)
}

// hostileMknod makes a device node, or skips where that is not allowed (as mountOrSkip).
func hostileMknod(t *testing.T, p string, kind uint32, dev uint64) {
	t.Helper()
	if err := unix.Mknod(p, kind|0o600, int(dev)); err != nil {
		hostileSkip(t, fmt.Sprintf("cannot make the device node %s (%v): this case needs root", p, err))
	}
}

// hostileSocket leaves a unix socket at p, bound where the name is short enough for bind(2)
// and moved into place.
func hostileSocket(t *testing.T, p string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "s"), p); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(p); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("%s is not a socket: %v %v", p, fi, err)
	}
}
