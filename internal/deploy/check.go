package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ferry-deploy/ferry/internal/check"
	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/transfer"
)

// Check inspects every selected host for what breaks deploys of this kind: the layout, user
// data living inside a release, nginx and PHP settings that serve stale code, an environment
// change that needs a restart, and migrations that drop what running code still reads. It
// changes nothing.
func Check(ctx context.Context, cfg *config.Config, opts Options, verify bool) ([]check.Finding, error) {
	var all []check.Finding
	var build *transfer.Manifest
	m, err := transfer.Scan(cfg.SourceDir(), cfg.Exclude, transfer.OpenHashCache(cfg.SourceDir()))
	switch {
	case err == nil:
		build = m
	case cfg.Build != nil && errors.Is(err, fs.ErrNotExist):
		// The build makes its output; check does not run it.
	default:
		// What the deploy would refuse (exit 2) is found here first.
		all = append(all, check.Finding{Host: "local", Severity: check.Error, Code: "build-refused", What: err.Error(),
			Fix: "a deploy refuses this build before it touches any host; fix the path it names"})
	}
	targets, err := connect(ctx, cfg, opts, false, false)
	if err != nil {
		return nil, err
	}
	defer closeAll(targets)
	for _, t := range targets {
		c := &checker{ctx: ctx, cfg: cfg, t: t, build: build, verify: verify}
		if err := c.run(); err != nil {
			return all, fmt.Errorf("%s: %w", t.Name, err)
		}
		all = append(all, c.found...)
	}
	return all, nil
}

type checker struct {
	ctx   context.Context
	cfg   *config.Config
	t     *Target
	build *transfer.Manifest
	st    *release.State
	probe *release.Probe
	live  *transfer.Manifest // the live release's manifest, if any
	found []check.Finding
	// verify hashes every file of the live release on the host against its manifest.
	verify bool
}

func (c *checker) add(sev check.Severity, code, what, fix string) {
	c.found = append(c.found, check.Finding{Host: c.t.Name, Severity: sev, Code: code, What: what, Fix: fix})
}

// sh runs a command of the check on the host and returns its output.
func (c *checker) sh(script string) (string, error) {
	out, err := c.t.Root.Host.Script(c.ctx, script)
	return string(out), err
}

func (c *checker) run() error {
	r := c.t.Root
	p, err := r.Probe(c.ctx, release.ProbeOptions{Live: true, Shared: sharedPaths(c.cfg), SharedFiles: c.cfg.Shared.Files, Processes: len(r.Sockets) > 0})
	if err != nil {
		return err
	}
	if p.Missing {
		c.add(check.Info, "root-missing", fmt.Sprintf("%s does not exist yet", r.Dir), "the first ferry deploy creates it")
		c.migrations(nil)
		return nil
	}
	c.probe, c.st = p, p.State
	if p.Live != nil && p.Live.Manifest != nil {
		c.live, _ = transfer.ParseManifest(p.Live.Manifest)
	}
	c.layout()
	c.userData()
	if c.verify {
		c.verifyLive()
	}
	c.forwarding()
	c.services()
	c.fpmControlTimeout()
	c.sockets()
	c.sharedInBuild()
	c.nginx()
	c.opcache()
	c.env()
	c.migrations(c.live)
	return nil
}

func (c *checker) layout() {
	r := c.t.Root
	q := host.Quote(r.Dir)
	// What a deploy refuses: whoever owns the root or .ferry can make ferry act outside it.
	if _, err := c.sh("[ ! -d " + q + "/.ferry ] || [ -O " + q + "/.ferry ]"); err != nil {
		c.add(check.Error, "state-owner", fmt.Sprintf("%s/.ferry belongs to another user than the one running ferry", r.Dir), "run ferry as its owner, or chown -R that user "+r.Dir+"/.ferry")
	}
	if _, err := c.sh("[ ! -d " + q + " ] || [ -O " + q + " ] || [ \"$(stat -c %u " + q + ")\" = 0 ]"); err != nil {
		c.add(check.Error, "root-owner", fmt.Sprintf("%s belongs to another user than the one running ferry (or root)", r.Dir), "run ferry as the root's owner, or chown the root to the deploy user")
	}
	if _, err := c.sh("test -w " + q); err != nil {
		c.add(check.Error, "root-not-writable", fmt.Sprintf("%s is not writable by this user", r.Dir), "chown the root to the deploy user, or deploy as its owner")
	}
	if out, err := c.sh("df -Pk " + q + " | awk 'NR==2 {print $4}'"); err == nil && c.build != nil {
		free, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		_, size := c.build.Files()
		switch {
		case free*1024 < size:
			c.add(check.Error, "disk-full", fmt.Sprintf("%d kB free, the build is %d kB", free, size/1024), "free space or remove old releases (ferry cleanup)")
		case free*1024 < 2*size:
			c.add(check.Warning, "disk-low", fmt.Sprintf("only %d kB free for a %d kB build", free, size/1024), "free space; a first deploy or reuse: none writes the whole build")
		}
	}
	// Only ferry's own names: a user's current.old is theirs.
	links, _ := c.sh("cd " + q + " && for f in " + release.TempLinkGlob() + "; do if [ -L \"$f\" ]; then printf '%s\\000' \"$f\"; fi; done")
	for _, name := range strings.Split(links, "\x00") {
		if name != "" {
			c.add(check.Warning, "stale-temp-link", fmt.Sprintf("temporary link %s left by an interrupted swap", name), "the next deploy or cleanup removes it")
		}
	}
	if c.probe.NotLink != "" {
		c.add(check.Error, "current-not-link", "current is not a symlink: ferry cannot swap it", fmt.Sprintf("move it aside: mv %s/current %s/current.old", r.Dir, r.Dir))
	}
	for _, rel := range c.st.Incomplete() {
		c.add(check.Warning, "incomplete-release", fmt.Sprintf("release %s was never completed", rel.ID), "the next deploy or ferry cleanup removes it")
	}
	if len(c.st.Unknown) > 0 {
		c.add(check.Info, "unknown-releases", fmt.Sprintf("releases/ holds directories ferry did not deploy: %s", strings.Join(c.st.Unknown, ", ")), "ferry leaves them alone; remove them when you no longer need them")
	}
	if h := c.probe.Holder; h != nil {
		if h.Stale() {
			c.add(check.Warning, "stale-lock", fmt.Sprintf("locked by %s, whose process is gone", h), "the next run takes it over")
		} else {
			c.add(check.Info, "locked", fmt.Sprintf("locked by %s", h), "wait for it, or 'ferry unlock' if that run is gone")
		}
	}
}

// userData finds files in the live release that its manifest does not have, or that changed
// after the release was completed: state that the next deploys leave behind (pitfall one).
func (c *checker) userData() {
	r := c.t.Root
	lv := c.probe.Live
	if c.live == nil || len(lv.Changed)+len(lv.Tampered) == 0 {
		return
	}
	idx := c.live.Index()
	completed := c.completedAt(lv.ID)
	shared := c.cfg.SharedPaths()
	// The host said which paths are newer than the manifest; their mtimes tell files made by a
	// before_activate hook (part of the release) from files written since it was completed.
	var script strings.Builder
	script.WriteString("cd " + host.Quote(r.ReleaseDir(lv.ID)) + " || exit 1\n")
	var paths []string
	for _, p := range lv.Changed {
		if slices.ContainsFunc(shared, func(s string) bool { return p == s || strings.HasPrefix(p, s+"/") }) {
			continue
		}
		if e := idx[p]; e != nil && e.Type == transfer.TypeDir {
			continue
		}
		paths = append(paths, p)
		script.WriteString("if [ -d " + host.Quote(p) + " ] && [ ! -L " + host.Quote(p) + " ]; then printf 'd\\000'; else printf '%s\\000' \"$(stat -c %Y -- " + host.Quote(p) + " 2>/dev/null)\"; fi\n")
	}
	out, err := c.sh(script.String())
	if err != nil {
		return
	}
	mtimes := strings.Split(out, "\x00")
	extra := map[string][]string{}
	var changed []string
	for i, p := range paths {
		if i >= len(mtimes) || mtimes[i] == "d" {
			continue
		}
		mtime, _ := strconv.ParseInt(mtimes[i], 10, 64)
		if e := idx[p]; e != nil {
			if e.Type != transfer.TypeFile || mtime != e.MTime {
				changed = append(changed, p)
			}
			continue
		}
		if mtime <= completed {
			continue // made by a before_activate hook, part of the release
		}
		dir := filepath.Dir(p)
		extra[dir] = append(extra[dir], p)
	}
	// A file of the manifest whose ctime says it changed, though its mtime may not.
	for _, p := range lv.Tampered {
		if e := idx[p]; e != nil && e.Type == transfer.TypeFile && !slices.Contains(changed, p) {
			changed = append(changed, p)
		}
	}
	slices.Sort(changed)
	for _, dir := range slices.Sorted(maps.Keys(extra)) {
		files := extra[dir]
		slices.Sort(files)
		c.add(check.Warning, "state-in-release",
			fmt.Sprintf("%d file(s) in %s of the live release %s are not part of the release (%s): data written there is lost when the release is cleaned up",
				len(files), dir, lv.ID, strings.Join(files[:min(3, len(files))], ", ")),
			fmt.Sprintf("add %q to shared.dirs, move the files into %s/%s, and deploy", dir, r.SharedDir(), dir))
	}
	if len(changed) > 0 {
		c.add(check.Warning, "release-modified",
			fmt.Sprintf("%d file(s) of the live release %s changed after it was deployed (%s)", len(changed), lv.ID, strings.Join(changed[:min(3, len(changed))], ", ")),
			"the next deploy ships the build's version; make the change in the build, or list the path under shared:")
	}
}

// forwarding finds a host whose sshd refuses the connections the health check is made through.
func (c *checker) forwarding() {
	var he *release.HintError
	if err := healthReachable(c.ctx, c.t); errors.As(err, &he) {
		c.add(check.Error, "health-forwarding", he.Error()+": every deploy would fail before its swap", he.Hint)
	}
}

// services reports service commands that drop requests on every deploy: a reload that is a
// restart, and a restart of PHP-FPM (SIGUSR2, its graceful reload, finishes requests in flight;
// a restart stops every worker at once).
func (c *checker) services() {
	for _, s := range servicesOn(c.t) {
		fpm := strings.Contains(s.Reload+s.Restart, "fpm")
		switch {
		case strings.Contains(s.Reload, "restart"):
			c.add(check.Warning, "reload-restarts", fmt.Sprintf("service %q: its reload (%s) restarts: requests in flight fail at every deploy", s.Name, s.Reload),
				"reload gracefully (for PHP-FPM: systemctl reload php8.2-fpm, which sends SIGUSR2), or make the app a socket service (switch: socket)")
		case fpm && s.Restart != "" && (s.RestartAlways || s.Reload == ""):
			c.add(check.Warning, "php-fpm-restart", fmt.Sprintf("service %q restarts PHP-FPM at every deploy: a restart stops every worker and requests in flight get 502", s.Name),
				"reload it instead: reload: systemctl reload php8.2-fpm (SIGUSR2: workers finish their requests); keep restart for when .env changed")
		case fpm && s.Restart != "":
			c.add(check.Info, "php-fpm-restart", fmt.Sprintf("service %q restarts PHP-FPM when a shared file changed: requests in flight then get 502", s.Name),
				"if the app reads .env on every request (as Laravel without config:cache does), a reload (SIGUSR2) is enough: drop restart")
		}
	}
}

// fpmControlTimeout reports a PHP-FPM that a service reloads while its process_control_timeout
// is 0 (the default): a reload (SIGUSR2) then kills the workers at once, and requests in flight
// get 502 (20 reloads under load here: 30 × 502; with 10s: none).
func (c *checker) fpmControlTimeout() {
	if !slices.ContainsFunc(servicesOn(c.t), func(s config.Service) bool { return strings.Contains(s.Reload+s.Restart, "fpm") }) {
		return
	}
	out, err := c.sh(`for f in /etc/php/*/fpm/php-fpm.conf /etc/php-fpm.conf /usr/local/etc/php-fpm.conf; do [ -r "$f" ] && printf '%s\t%s\n' "$f" "$(sed -n 's/^[[:space:]]*process_control_timeout[[:space:]]*=[[:space:]]*//p' "$f" | tail -n 1)"; done; true`)
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		file, value, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if v := strings.TrimSpace(value); v == "" || strings.TrimRight(v, "smhd") == "0" {
			c.add(check.Warning, "php-fpm-control-timeout", fmt.Sprintf("%s: process_control_timeout is 0, so a reload of PHP-FPM (SIGUSR2) kills its workers at once: requests in flight get 502", file),
				"set process_control_timeout = 10s in "+file+" (and restart PHP-FPM once): a reload then lets workers finish their requests")
		}
	}
}

// sockets checks what socket services need on the host: setsid, and a stable link that points
// at a socket. (Whether the SSH server forwards unix sockets cannot be told from a socket that
// does not exist: OpenSSH says "open failed" to both; a deploy finds it.)
func (c *checker) sockets() {
	r := c.t.Root
	if len(r.Sockets) == 0 {
		return
	}
	if _, err := c.sh("command -v setsid"); err != nil {
		c.add(check.Error, "setsid-missing", "setsid is not installed: ferry starts socket services detached with it", "install util-linux (or BusyBox's setsid)")
	}
	for _, so := range r.Sockets {
		id, linked := c.probe.Links[so.Name+".sock"]
		switch {
		case !linked:
		case id != c.st.Current:
			c.add(check.Warning, "socket-not-current", fmt.Sprintf("%s.sock serves release %s while current is %s (a run stopped between the two)", so.Name, id, orNone([]string{c.st.Current})),
				"deploy again, or roll back: ferry starts the release's process and swaps both")
		case !so.Supervised() && !slices.ContainsFunc(c.probe.Processes, func(p release.Process) bool {
			return p.Service == so.Name && p.Release == id && p.State == "running"
		}):
			c.add(check.Error, "socket-dead", fmt.Sprintf("the process of %s behind %s.sock (release %s) is not running: the web server gets no answer", so.Name, so.Name, id),
				"deploy again, or roll back to another release: ferry starts a new process and swaps the link (its output is in "+r.SocketLog(so.Name, id)+")")
		}
		link := r.StableSocket(so.Name)
		out, err := c.sh(`if [ -L ` + host.Quote(link) + ` ] && [ ! -S ` + host.Quote(link) + ` ]; then readlink ` + host.Quote(link) + `; fi`)
		if err == nil && strings.TrimSpace(out) != "" {
			c.add(check.Error, "socket-dangling", fmt.Sprintf("%s points at %s, which is not a socket: the web server gets no answer", link, strings.TrimSpace(out)),
				"deploy again, or roll back: ferry starts the release's process and swaps the link")
		}
	}
}

// verifyLive hashes every file of the live release on the host (sha256sum -c) against the
// hashes its manifest records: what no mtime or ctime can hide.
func (c *checker) verifyLive() {
	lv := c.probe.Live
	if c.live == nil || lv == nil {
		return
	}
	shared := c.cfg.SharedPaths()
	var list strings.Builder
	n := 0
	for _, e := range c.live.Entries {
		if e.Type != transfer.TypeFile || e.Hash == "" || strings.ContainsAny(e.Path, "\n\\") ||
			slices.ContainsFunc(shared, func(s string) bool { return e.Path == s || strings.HasPrefix(e.Path, s+"/") }) {
			continue
		}
		fmt.Fprintf(&list, "%s  ./%s\n", e.Hash, e.Path)
		n++
	}
	script := "cd " + host.Quote(c.t.Root.ReleaseDir(lv.ID)) + " || exit 1\n" +
		"sha256sum -c <<'FERRY_VERIFY_END' 2>&1 | grep -v ': OK$' || true\n" + list.String() + "FERRY_VERIFY_END\n"
	out, err := c.sh(script)
	if err != nil {
		c.add(check.Warning, "verify", fmt.Sprintf("could not verify the live release %s: %v", lv.ID, err), "")
		return
	}
	var bad []string
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if name, _, ok := strings.Cut(line, ": FAILED"); ok {
			bad = append(bad, strings.TrimPrefix(name, "./"))
		}
	}
	if len(bad) > 0 {
		c.add(check.Error, "release-tampered",
			fmt.Sprintf("%d of %d files of the live release %s differ from what was deployed (%s)", len(bad), n, lv.ID, strings.Join(bad[:min(3, len(bad))], ", ")),
			"find out who changed them; the next deploy ships the build's version")
	}
}

// completedAt is when release id was completed, in Unix seconds: the time of its complete event
// in the log. Files of the release no newer than that were made while it was prepared (by hooks);
// newer ones were written into it since.
func (c *checker) completedAt(id string) int64 {
	out, err := c.sh("grep -F " + host.Quote(`"event":"complete","release":"`+id+`"`) + " " + host.Quote(c.t.Root.Dir+"/.ferry/log.jsonl") + " | tail -n 1")
	if err != nil {
		return 0
	}
	var ev release.Event
	if json.Unmarshal([]byte(strings.TrimSpace(out)), &ev) != nil {
		return 0
	}
	return ev.Time.Unix()
}

func (c *checker) sharedInBuild() {
	if c.build == nil {
		return
	}
	for _, sp := range sharedPaths(c.cfg) {
		if _, ok := c.probe.Shared[sp.Path]; ok && c.build.Has(sp.Path) {
			p := sp.Path
			c.add(check.Warning, "shared-in-build", fmt.Sprintf("the build ships %s, but shared/%s exists: the build's copy is dropped at every deploy", p, p), fmt.Sprintf("remove %s from the build, or exclude it", p))
		}
	}
}

func (c *checker) nginx() {
	out, err := c.sh(c.cfg.Check.Nginx + " 2>/dev/null")
	if err != nil || out == "" {
		c.add(check.Info, "nginx-unreadable", fmt.Sprintf("could not read nginx's configuration with %q", c.cfg.Check.Nginx), "set check.nginx to a command that prints it (e.g. sudo nginx -T)")
		return
	}
	reloads := slices.ContainsFunc(c.t.Cfg.Services, func(s config.Service) bool {
		return strings.Contains(s.Reload+s.Restart, "nginx")
	})
	root := c.t.Root.Dir
	for _, srv := range check.ParseNginx(out) {
		serves := false
		for _, p := range srv.Roots {
			under, viaCurrent := check.UnderRoot(p, root)
			if !under {
				continue
			}
			serves = true
			if !viaCurrent {
				c.add(check.Error, "nginx-root-not-current", fmt.Sprintf("nginx server %q serves %s, not a path under %s/current", srv.Names, p, root), "point root at "+root+"/current/public (or wherever the document root is inside a release)")
			}
		}
		if !serves {
			continue
		}
		if srv.OpenFileCache && !reloads {
			c.add(check.Warning, "nginx-open-file-cache", fmt.Sprintf("nginx server %q has open_file_cache on and no service reloads nginx: it keeps serving the old release", srv.Names), "turn open_file_cache off for this server, or add services: [{name: nginx, reload: nginx -s reload}]")
		}
		if srv.DocumentRootPH {
			c.add(check.Warning, "nginx-document-root", fmt.Sprintf("nginx server %q passes $document_root to PHP: PHP sees .../current/... and opcache can serve the old release", srv.Names), "use $realpath_root in SCRIPT_FILENAME and DOCUMENT_ROOT")
		}
	}
}

func (c *checker) opcache() {
	out, err := c.sh(`command -v php >/dev/null && php -r 'echo ini_get("opcache.validate_timestamps");'`)
	if err != nil || strings.TrimSpace(out) != "0" {
		return
	}
	if !slices.ContainsFunc(c.t.Cfg.Services, func(s config.Service) bool { return strings.Contains(s.Reload+s.Restart, "php") }) {
		c.add(check.Warning, "opcache-no-reload", "opcache.validate_timestamps=0 and no service reloads PHP-FPM: compiled code of old paths stays until a reload", "add services: [{name: php-fpm, reload: ...}], or serve PHP through $realpath_root")
	}
}

// env reports a shared file that changed since the last activation when no service restarts.
func (c *checker) env() {
	changed := release.ChangedShared(c.st.LastShared, c.probe.SharedHashes)
	if len(changed) > 0 && !hasRestart(c.t.Cfg) {
		c.add(check.Warning, "env-changed-no-restart", fmt.Sprintf("shared %s changed since the last activation, and no service has a restart command: processes that read it at boot keep the old values", strings.Join(changed, ", ")), "give the app's service a restart: command; ferry runs it instead of reload when a shared file changed")
	}
}

// migrations warns about destructive SQL in migration files that are new or changed since prev.
func (c *checker) migrations(prev *transfer.Manifest) {
	for _, f := range destructiveMigrations(c.cfg, c.build, prev) {
		c.add(check.Warning, "destructive-migration", f, "expand and contract: ship the code that stops using the column or table first, and drop it in a later release; old code runs against the migrated schema until the swap")
	}
}

// destructiveMigrations lists "file: statement" for migration files of build that are new or
// changed since prev and hold destructive SQL.
func destructiveMigrations(cfg *config.Config, build, prev *transfer.Manifest) []string {
	if build == nil {
		return nil
	}
	var old map[string]*transfer.Entry
	if prev != nil {
		old = prev.Index()
	}
	var out []string
	migrations := transfer.NewMatcher(cfg.Check.Migrations)
	for _, e := range build.Entries {
		// A path matches when it, or a directory it is in, matches a pattern.
		if e.Type != transfer.TypeFile || !migrations.Match(e.Path, false) || e.Size > 4<<20 {
			continue
		}
		if o := old[e.Path]; o != nil && o.Hash == e.Hash {
			continue
		}
		f, err := os.Open(filepath.Join(cfg.SourceDir(), filepath.FromSlash(e.Path)))
		if err != nil {
			continue
		}
		text, _ := io.ReadAll(f)
		f.Close()
		for _, stmt := range check.DestructiveSQLIn(e.Path, string(text)) {
			out = append(out, fmt.Sprintf("%s: %s", e.Path, stmt))
		}
	}
	return out
}
