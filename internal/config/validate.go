package config

// Validation of a decoded config: what each value must be, beyond its type.

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// validationError names the YAML path of a bad value; Parse turns it into file:line:column.
type validationError struct {
	path string
	msg  string
}

func (e *validationError) Error() string { return e.path + ": " + e.msg }

func invalid(p, format string, args ...any) error {
	return &validationError{path: p, msg: fmt.Sprintf(format, args...)}
}

// reserved reports whether name, at the top of a release, is one ferry gives its own files
// there: .ferry, and .ferry-<token> while it prepares the release. .ferryrc is the user's.
func reserved(name string) bool {
	return name == ".ferry" || strings.HasPrefix(name, ".ferry-")
}

func (c *Config) validate() error {
	if strings.TrimSpace(c.Root) == "" {
		return invalid("$.root", "root is missing: set root to the directory that holds releases/, shared/ and current")
	}
	if err := checkRoot("$.root", c.Root); err != nil {
		return err
	}
	if c.Build != nil {
		if c.Source != "" {
			return invalid("$.build", "set either source or build, not both")
		}
		if strings.TrimSpace(c.Build.Command) == "" || strings.TrimSpace(c.Build.Output) == "" {
			return invalid("$.build", "build needs both command and output")
		}
		if r, bad := controlChar(c.Build.Output, ""); bad {
			return invalid("$.build.output", "build output %s contains the control character %U", quote(c.Build.Output), r)
		}
	} else {
		if strings.TrimSpace(c.Source) == "" {
			return invalid("$.source", "source is missing: set source to the directory to ship, or build: {command, output}")
		}
		if r, bad := controlChar(c.Source, ""); bad {
			return invalid("$.source", "source %s contains the control character %U", quote(c.Source), r)
		}
	}
	if c.KeepReleases != nil && *c.KeepReleases < 1 {
		return invalid("$.keep_releases", "keep_releases must be 1 or more, not %d: the current release is always kept", *c.KeepReleases)
	}
	switch c.Reuse {
	case "link", "copy", "none":
	default:
		return invalid("$.reuse", "reuse must be link, copy or none, not %s", quote(c.Reuse))
	}
	seen := map[string]string{} // clean path: where
	var order []string
	for _, kind := range []string{"files", "dirs"} {
		list := c.Shared.Files
		if kind == "dirs" {
			list = c.Shared.Dirs
		}
		entries := &c.Shared.FileEntries
		if kind == "dirs" {
			entries = &c.Shared.DirEntries
		}
		if len(*entries) != len(list) { // a Config made in code lists only the paths
			*entries = nil
			for _, p := range list {
				*entries = append(*entries, SharedEntry{Path: p})
			}
		}
		for i, p := range list {
			where := fmt.Sprintf("$.shared.%s[%d]", kind, i)
			if err := checkSharedEntry(where, kind, (*entries)[i]); err != nil {
				return err
			}
			clean, err := CleanRelative(p)
			if err != nil {
				return invalid(where, "shared path %s: %v", quote(p), err)
			}
			if first, _, _ := strings.Cut(clean, "/"); reserved(first) {
				return invalid(where, "shared path %s: .ferry and names that start with .ferry- are ferry's own inside a release", quote(p))
			}
			if other, ok := seen[clean]; ok {
				return invalid(where, "shared path %s is listed twice (also at %s)", quote(p), keyOf(other))
			}
			seen[clean] = where
			order = append(order, clean)
			list[i] = clean
			(*entries)[i].Path = clean
		}
	}
	// Only prefixes as long as some shared path can be one: looking up every prefix of a long
	// path would take time quadratic in its length.
	lengths := map[int]bool{}
	for _, p := range order {
		lengths[len(p)] = true
	}
	for _, b := range order {
		for i := range len(b) {
			if a := b[:i]; b[i] == '/' && lengths[i] && seen[a] != "" {
				return invalid(seen[b], "shared path %s lies inside shared path %s", quote(b), quote(a))
			}
		}
	}
	for i, p := range c.Assets {
		clean, err := CleanRelative(p)
		if err != nil {
			return invalid(fmt.Sprintf("$.assets[%d]", i), "assets path %s: %v", quote(p), err)
		}
		c.Assets[i] = clean
	}
	for i, pat := range c.Exclude {
		if err := checkPattern(pat); err != nil {
			return invalid(fmt.Sprintf("$.exclude[%d]", i), "exclude pattern %s: %v", quote(pat), err)
		}
	}
	for i, pat := range c.Check.Migrations {
		if err := checkPattern(pat); err != nil {
			return invalid(fmt.Sprintf("$.check.migrations[%d]", i), "migrations pattern %s: %v", quote(pat), err)
		}
	}
	if strings.TrimSpace(c.Check.Nginx) == "" {
		return invalid("$.check.nginx", "check.nginx is blank: give the command that prints nginx's configuration, or leave the key out")
	}
	if c.Hosts != nil && len(c.Hosts) == 0 {
		return invalid("$.hosts", "hosts is an empty list: list at least one host, or leave hosts out to deploy to this machine")
	}
	names := map[string]bool{}
	for i, h := range c.Hosts {
		where := fmt.Sprintf("$.hosts[%d]", i)
		if !h.Local {
			if strings.TrimSpace(h.SSH) == "" {
				return invalid(where, "host needs ssh: user@host[:port] (or write \"local\")")
			}
			if err := checkSSH(h.SSH); err != nil {
				return invalid(where+".ssh", "ssh %s: %v", quote(h.SSH), err)
			}
		}
		if h.Root != "" {
			if err := checkRoot(where+".root", h.Root); err != nil {
				return err
			}
		}
		if h.Name != "" {
			if strings.TrimSpace(h.Name) == "" || strings.ContainsFunc(h.Name, unicode.IsControl) || strings.Contains(h.Name, ",") {
				return invalid(where+".name", "host name %s must be a word without commas or control characters: --host selects hosts by it", quote(h.Name))
			}
		}
		for j, r := range h.Roles {
			if strings.TrimSpace(r) == "" || strings.ContainsFunc(r, unicode.IsControl) || strings.Contains(r, ",") {
				return invalid(fmt.Sprintf("%s.roles[%d]", where, j), "role %s must be a word such as web or migrate", quote(r))
			}
		}
		name := c.Hosts[i].DisplayName()
		if names[name] {
			return invalid(where, "host %s is listed twice", quote(name))
		}
		names[name] = true
	}
	for _, stage := range []struct {
		key   string
		hooks []Hook
	}{{"before_activate", c.Hooks.BeforeActivate}, {"after_activate", c.Hooks.AfterActivate},
		{"on_failure", c.Hooks.OnFailure}, {"after_rollback", c.Hooks.AfterRollback}} {
		for i, h := range stage.hooks {
			where := fmt.Sprintf("$.hooks.%s[%d]", stage.key, i)
			if strings.TrimSpace(h.Run) == "" {
				return invalid(where, "hook needs run: <command>")
			}
			if err := checkRoles(c, where+".roles", h.Roles); err != nil {
				return err
			}
			if h.Local && len(h.Roles) > 0 {
				return invalid(where+".roles", "a local hook runs on this machine, not on hosts of a role; drop roles or local")
			}
			if h.Local && (stage.key == "before_activate" || stage.key == "after_activate") {
				return invalid(where+".local", "local: true is for on_failure and after_rollback hooks; %s hooks run on the hosts", stage.key)
			}
			if h.Timeout < 0 {
				return invalid(where+".timeout", "timeout must be positive")
			}
		}
	}
	services := map[string]bool{}
	for i, s := range c.Services {
		where := fmt.Sprintf("$.services[%d]", i)
		if strings.TrimSpace(s.Name) == "" {
			return invalid(where, "service needs a name")
		}
		if strings.ContainsFunc(s.Name, unicode.IsControl) {
			return invalid(where+".name", "service name %s must not contain control characters", quote(s.Name))
		}
		if services[s.Name] {
			return invalid(where+".name", "service %s is listed twice", quote(s.Name))
		}
		services[s.Name] = true
		if err := checkRoles(c, where+".roles", s.Roles); err != nil {
			return err
		}
		if err := checkService(c, where, s); err != nil {
			return err
		}
	}
	if c.Health != nil {
		if strings.TrimSpace(c.Health.URL) == "" {
			return invalid("$.health.url", "health needs url, such as http://127.0.0.1/healthz")
		}
		if err := checkHealthURL(c.Health.URL); err != nil {
			return invalid("$.health.url", "health url %s must be an http:// or https:// URL with a host, such as http://127.0.0.1/healthz: %v", quote(c.Health.URL), err)
		}
		if s := c.Health.ExpectStatus; s < 100 || s > 599 {
			return invalid("$.health.expect_status", "expect_status %d is not an HTTP status: use one from 100 to 599, such as 200", s)
		}
		if c.Health.Timeout < 0 {
			return invalid("$.health.timeout", "timeout must be positive")
		}
		if c.Health.Interval < 0 {
			return invalid("$.health.interval", "interval must be positive")
		}
	}
	if c.HookTimeout < 0 {
		return invalid("$.hook_timeout", "hook_timeout must be positive")
	}
	// A local root inside the build would ship itself at every deploy, growing without bound;
	// compared as the filesystem resolves them, so that a link cannot hide it.
	src := c.SourceDir()
	realSrc := resolveExisting(src)
	for i, h := range c.Hosts {
		root := c.Root
		if h.Root != "" {
			root = h.Root
		}
		realRoot := resolveExisting(root)
		if h.Local && (root == src || strings.HasPrefix(root, src+"/") || realRoot == realSrc || strings.HasPrefix(realRoot, realSrc+"/")) {
			where := "$.root"
			if h.Root != "" {
				where = fmt.Sprintf("$.hosts[%d].root", i)
			}
			return invalid(where, "root %s is inside the build %s: every deploy would ship the releases again; put the root outside it", root, src)
		}
	}
	return nil
}

// resolveExisting is p with the links of its longest existing part resolved (a root is made
// by the first deploy, so it may not exist yet).
func resolveExisting(p string) string {
	rest := ""
	for dir := filepath.Clean(p); ; dir = filepath.Dir(dir) {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, rest)
		}
		if dir == filepath.Dir(dir) {
			return p
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// sharedOwner is what an owner may be: a user, or user:group, by name or number.
var sharedOwner = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$`)

// checkSharedEntry checks what a shared path's mapping says beyond its path.
func checkSharedEntry(where, kind string, e SharedEntry) error {
	if strings.TrimSpace(e.Path) == "" {
		return invalid(where, "a shared entry needs path, such as {path: .env}")
	}
	if e.Mode != "" {
		m, err := strconv.ParseUint(e.Mode, 8, 32)
		if err != nil || m > 0o7777 || len(e.Mode) < 3 {
			return invalid(where+".mode", "shared path %s: mode %s is not an octal mode such as \"0600\" or \"0775\" (write it in quotes)", quote(e.Path), quote(e.Mode))
		}
		if m&0o7000 != 0 {
			return invalid(where+".mode", "shared path %s: mode %s sets setuid, setgid or sticky bits, which ferry does not set", quote(e.Path), quote(e.Mode))
		}
	}
	if e.Owner != "" && !sharedOwner.MatchString(e.Owner) {
		return invalid(where+".owner", "shared path %s: owner %s is not a user or user:group", quote(e.Path), quote(e.Owner))
	}
	if e.From != "" {
		if kind == "dirs" {
			return invalid(where+".from", "shared path %s: from is for shared files; a directory's content is the app's", quote(e.Path))
		}
		if r, bad := controlChar(e.From, ""); bad {
			return invalid(where+".from", "from %s contains the control character %U", quote(e.From), r)
		}
	}
	return nil
}

// stopSignals are the signals a socket service's process may be asked to stop with.
var stopSignals = []string{"TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "WINCH", "KILL"}

// socketName is what a socket service's name may be: it names files (<name>.sock, run/).
var socketName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// maxSocketPath is the longest path connect(2) takes for a unix socket (sun_path, less its NUL).
const maxSocketPath = 107

func checkService(c *Config, where string, s Service) error {
	for _, cmd := range []struct{ key, value string }{{"reload", s.Reload}, {"restart", s.Restart}, {"start", s.Start}, {"stop", s.Stop}} {
		if cmd.value != "" && strings.TrimSpace(cmd.value) == "" {
			return invalid(where+"."+cmd.key, "service %s: %s is blank; give a command or leave the key out", quote(s.Name), cmd.key)
		}
	}
	switch s.Switch {
	case "":
		for _, k := range []struct {
			key string
			set bool
		}{{"start", s.Start != ""}, {"stop", s.Stop != ""}, {"stop_signal", s.StopSignal != ""}, {"drain", s.Drain != nil}} {
			if k.set {
				return invalid(where+"."+k.key, "service %s: %s is for a service with switch: socket (one process per release); reload and restart tell a running server about the new release", quote(s.Name), k.key)
			}
		}
		if s.Reload == "" && s.Restart == "" {
			return invalid(where, "service %s needs reload or restart (or switch: socket with start)", quote(s.Name))
		}
		if s.RestartAlways && s.Restart == "" {
			return invalid(where+".restart_always", "service %s: restart_always needs a restart command", quote(s.Name))
		}
		return nil
	case SwitchSocket:
	default:
		return invalid(where+".switch", "service %s: switch %s is not known: the only switch is socket", quote(s.Name), quote(s.Switch))
	}
	if s.Start == "" {
		return invalid(where, "service %s: switch: socket needs start, the command that serves the release on $FERRY_SOCKET", quote(s.Name))
	}
	for _, k := range []struct{ key, value string }{{"reload", s.Reload}, {"restart", s.Restart}} {
		if k.value != "" {
			return invalid(where+"."+k.key, "service %s: a socket service starts a new process for each release; %s does not apply (use start, and stop for a supervisor)", quote(s.Name), k.key)
		}
	}
	if s.RestartAlways {
		return invalid(where+".restart_always", "service %s: a socket service starts a new process for each release; restart_always does not apply", quote(s.Name))
	}
	if !socketName.MatchString(s.Name) {
		return invalid(where+".name", "service %s: the name of a socket service names its files (<root>/<name>.sock): use letters, digits, - and _", quote(s.Name))
	}
	if !slices.Contains(stopSignals, s.StopSignal) {
		return invalid(where+".stop_signal", "service %s: stop_signal %s is not one of %s", quote(s.Name), quote(s.StopSignal), strings.Join(stopSignals, ", "))
	}
	if *s.Drain < 0 {
		return invalid(where+".drain", "drain must be positive")
	}
	for i, h := range c.Hosts {
		root, at := c.Root, "$.root"
		if h.Root != "" {
			root, at = h.Root, fmt.Sprintf("$.hosts[%d].root", i)
		}
		// <root>/run/<name>.<release id, up to 20>.<pid, for a release started again>.sock
		if n := len(path.Clean(root)) + len("/run/") + len(s.Name) + len(".20261127-101502-99.4194304.sock"); n > maxSocketPath {
			return invalid(at, "root %s is too long for the sockets of service %s: a unix socket's path may have %d bytes, and <root>/run/%s.<release>.sock would have %d; use a shorter root or name", quote(root), quote(s.Name), maxSocketPath, s.Name, n)
		}
	}
	return nil
}

// checkRoot refuses a root that is not an absolute path of its own: relative, /, with '..'
// or with control characters (a newline in a path breaks every script that names it).
func checkRoot(where, root string) error {
	if r, bad := controlChar(root, ""); bad {
		return invalid(where, "root %s contains the control character %U", quote(root), r)
	}
	if !path.IsAbs(root) {
		return invalid(where, "root %s must be an absolute path", quote(root))
	}
	if slices.Contains(strings.Split(root, "/"), "..") {
		return invalid(where, "root %s must not contain '..': write the directory it means", quote(root))
	}
	if path.Clean(root) == "/" {
		return invalid(where, "root must not be /: give ferry a directory of its own, such as /srv/www/example.com")
	}
	return nil
}

// checkSSH refuses an ssh spec that cannot name a host: [user@]host[:port] or an alias of
// ~/.ssh/config.
func checkSSH(spec string) error {
	if strings.ContainsFunc(spec, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return errors.New("must not contain spaces or control characters")
	}
	hostport := spec
	if at := strings.LastIndex(spec, "@"); at >= 0 {
		if at == 0 {
			return errors.New("the user before @ is empty")
		}
		hostport = spec[at+1:]
	}
	host := hostport
	if h, port, err := net.SplitHostPort(hostport); err == nil {
		host = h
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %s must be a number from 1 to 65535", quote(port))
		}
	}
	if host == "" {
		return errors.New("names no host: write user@host[:port] or an alias of ~/.ssh/config")
	}
	if strings.HasPrefix(host, "-") || strings.HasPrefix(spec, "-") {
		return errors.New("must not start with '-'")
	}
	return nil
}

func checkHealthURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			return errors.New("no scheme")
		}
		return fmt.Errorf("the scheme is %s", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("no host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %s is out of range", port)
		}
	}
	return nil
}

// checkPattern refuses an exclude pattern that cannot work under gitignore's rules: empty, a
// comment, or with a "[" class that is never closed or a trailing lone "\".
func checkPattern(pat string) error {
	if strings.TrimSpace(pat) == "" {
		return errors.New("is empty")
	}
	if r, bad := controlChar(pat, ""); bad {
		return fmt.Errorf("contains the control character %U", r)
	}
	if strings.HasPrefix(pat, "#") {
		return errors.New(`starts with #, which makes it a comment in gitignore rules; write \# to match a name that starts with #`)
	}
	if strings.Trim(strings.TrimPrefix(pat, "!"), "/") == "" {
		return errors.New("matches nothing")
	}
	for i := 0; i < len(pat); i++ {
		switch pat[i] {
		case '\\':
			if i++; i == len(pat) {
				return errors.New(`ends in a lone \; write \\ for a backslash`)
			}
		case '[':
			end, err := classEnd(pat, i)
			if err != nil {
				return err
			}
			i = end
		}
	}
	return nil
}

// classEnd returns the index of the "]" that closes the class opened at pat[start], following
// git's wildmatch: "[!...]" and "[^...]" negate, a "]" right after the opening is literal, and
// "[:name:]" names a character class.
func classEnd(pat string, start int) (int, error) {
	i := start + 1
	if i < len(pat) && (pat[i] == '!' || pat[i] == '^') {
		i++
	}
	if i < len(pat) && pat[i] == ']' {
		i++
	}
	names := true // whether a ":]" may still close a "[:"; once none does, none later will
	for ; i < len(pat); i++ {
		switch {
		case pat[i] == '\\':
			i++
		case pat[i] == ']':
			return i, nil
		case names && strings.HasPrefix(pat[i:], "[:"):
			end := strings.Index(pat[i+2:], ":]")
			if end < 0 {
				names = false
				continue
			}
			name := pat[i+2 : i+2+end]
			switch name {
			case "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "xdigit":
			default:
				return 0, fmt.Errorf("[:%s:] is not a character class (such as [:digit:] or [:alpha:])", name)
			}
			i += 2 + end + 1
		}
	}
	return 0, errors.New(`a [ opens a class that is never closed; write \[ to match a [`)
}

// checkRoles refuses a role that no host has: a hook or service limited to it would never run.
func checkRoles(c *Config, where string, roles []string) error {
	for i, r := range roles {
		if !slices.ContainsFunc(c.Hosts, func(h Host) bool { return slices.Contains(h.Roles, r) }) {
			return invalid(fmt.Sprintf("%s[%d]", where, i), "no host has the role %s, so this would never run", quote(r))
		}
	}
	return nil
}
