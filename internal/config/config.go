// Package config owns ferry.yaml: its schema, its defaults and its validation. Every error it
// returns names the file, line and column of the value that is wrong. It knows nothing about
// hosts, releases or the CLI.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
)

// ErrConfig marks every error caused by the configuration file, so the CLI can exit with code 2.
var ErrConfig = errors.New("config error")

// Config is the parsed and validated ferry.yaml.
type Config struct {
	App          string    `yaml:"app"`
	Root         string    `yaml:"root"`
	Source       string    `yaml:"source"`
	Build        *Build    `yaml:"build"`
	Exclude      []string  `yaml:"exclude"`
	KeepReleases *Count    `yaml:"keep_releases"`
	Shared       Shared    `yaml:"shared"`
	Reuse        string    `yaml:"reuse"`
	Assets       []string  `yaml:"assets"`
	Hosts        []Host    `yaml:"hosts"`
	Hooks        Hooks     `yaml:"hooks"`
	Services     []Service `yaml:"services"`
	Health       *Health   `yaml:"health"`
	HookTimeout  Duration  `yaml:"hook_timeout"`
	RequireClean bool      `yaml:"require_clean"`
	Check        Check     `yaml:"check"`

	// Environment is the environment chosen from environments (ferry -e), if any.
	Environment string `yaml:"-"`
	// FromEnv maps each value that {{env.NAME}} put into the file to "{{env.NAME}}": what the
	// log writes instead of it (a CI secret in a hook's command).
	FromEnv map[string]string `yaml:"-"`
	// Dir is the directory of the config file; a relative source is resolved against it.
	Dir string `yaml:"-"`
	// File is the path the config was read from.
	File string `yaml:"-"`

	hostConfigs []*Config // by host index, for hosts with vars of their own (see ForHost)
}

// Build is a command run on the deploying machine before the upload; Output is then shipped.
type Build struct {
	Command string `yaml:"command"`
	Output  string `yaml:"output"`
}

// Shared lists the paths, relative to a release, that live in <root>/shared and outlive releases.
// Each entry is a path, or a mapping with the path and how ferry provisions it.
type Shared struct {
	FileEntries []SharedEntry `yaml:"files"`
	DirEntries  []SharedEntry `yaml:"dirs"`
	// Files and Dirs are the entries' paths, cleaned (set by Parse).
	Files []string `yaml:"-"`
	Dirs  []string `yaml:"-"`
}

// SharedEntry is a shared path and how ferry provisions it.
type SharedEntry struct {
	Path string `yaml:"path"`
	// From (files only) is a file on the deploying machine, relative to ferry.yaml, that ferry
	// uploads to shared/<path> whenever its content differs: a shared file ferry owns.
	From string `yaml:"from"`
	// Mode is the octal mode ferry gives the shared path ("0600", "0775"); Owner the owner
	// ("www-data" or "www-data:www-data") it chowns a directory to.
	Mode  string `yaml:"mode"`
	Owner string `yaml:"owner"`
}

// Entry returns the entry of shared path p (cleaned), if the config lists it.
func (s *Shared) Entry(p string) (SharedEntry, bool) {
	for _, e := range append(append([]SharedEntry(nil), s.FileEntries...), s.DirEntries...) {
		if e.Path == p {
			return e, true
		}
	}
	return SharedEntry{}, false
}

// Host is one target: the word "local", or a mapping with ssh, roles and an optional root.
type Host struct {
	Local bool     `yaml:"-"`
	SSH   string   `yaml:"ssh"`
	Roles []string `yaml:"roles"`
	Root  string   `yaml:"root"`
	Name  string   `yaml:"name"`
	// Vars (hosts: [{ssh: web1, vars: {...}}]) are read before decoding: see hostvars.go.
}

// Count is keep_releases, a whole number: 1.9 or "3" is an error, not 1 or 3.
type Count int

// Duration is a time.Duration written as "30s" or "2m" in ferry.yaml.
type Duration time.Duration

// Check tunes ferry check.
type Check struct {
	// Nginx is the command that prints nginx's whole configuration on each host.
	Nginx string `yaml:"nginx"`
	// Migrations are gitignore-style patterns of migration files, searched for destructive SQL.
	Migrations []string `yaml:"migrations"`
}

// Hooks are shell commands run in the release directory.
type Hooks struct {
	BeforeActivate []Hook `yaml:"before_activate"`
	AfterActivate  []Hook `yaml:"after_activate"`
	// OnFailure runs when a deploy fails, AfterRollback after a rollback (ferry rollback, or
	// a failed activation swapped back): for alerts. Hooks of either may be Local.
	OnFailure     []Hook `yaml:"on_failure"`
	AfterRollback []Hook `yaml:"after_rollback"`
}

// Hook is one command. Once hooks run on a single host of a fleet.
type Hook struct {
	Run     string   `yaml:"run"`
	Once    bool     `yaml:"once"`
	Timeout Duration `yaml:"timeout"`
	// Local runs the hook once on the deploying machine, in the config's directory, instead of
	// on the hosts (on_failure and after_rollback only).
	Local bool `yaml:"local"`
	// Roles limits the hook to the hosts with one of these roles.
	Roles []string `yaml:"roles"`
}

// Service is something to reload (or restart) after every swap, or, with Switch "socket", an
// app server that runs one process per release behind <root>/<name>.sock (DESIGN §5).
type Service struct {
	Name    string `yaml:"name"`
	Reload  string `yaml:"reload"`
	Restart string `yaml:"restart"`
	// RestartAlways runs restart after every swap; without it, restart runs only when a shared
	// file changed (and reload, if any, otherwise).
	RestartAlways bool `yaml:"restart_always"`
	// Roles limits the service to the hosts with one of these roles.
	Roles []string `yaml:"roles"`

	// Switch "socket": Start runs in each new release, serving on $FERRY_SOCKET; ferry runs it
	// detached unless Stop is set (a supervisor's start and stop, such as systemctl). The
	// previous release's process gets StopSignal and Drain to finish, then SIGKILL.
	Switch     string    `yaml:"switch"`
	Start      string    `yaml:"start"`
	Stop       string    `yaml:"stop"`
	StopSignal string    `yaml:"stop_signal"`
	Drain      *Duration `yaml:"drain"` // nil: DefaultDrain; 0 is SIGKILL at once
}

// SwitchSocket is the Switch of a service that runs one process per release.
const SwitchSocket = "socket"

// Socket reports whether s runs one process per release behind a swapped socket link.
func (s Service) Socket() bool { return s.Switch == SwitchSocket }

// Health describes the check polled after activation.
type Health struct {
	URL          string   `yaml:"url"`
	ExpectStatus int      `yaml:"expect_status"`
	Contains     string   `yaml:"contains"`
	Timeout      Duration `yaml:"timeout"`
	Interval     Duration `yaml:"interval"`
}

// Defaults applied when a key is absent.
const (
	DefaultKeepReleases = 5
	DefaultHookTimeout  = 10 * time.Minute
	DefaultDrain        = 30 * time.Second
)

// Keep returns keep_releases with its default applied.
func (c *Config) Keep() int {
	if c.KeepReleases == nil {
		return DefaultKeepReleases
	}
	return int(*c.KeepReleases)
}

// SourceDir returns the directory to ship, resolved against the config file's directory.
func (c *Config) SourceDir() string {
	src := c.Source
	if c.Build != nil {
		src = c.Build.Output
	}
	if filepath.IsAbs(src) {
		return src
	}
	return filepath.Join(c.Dir, src)
}

// SharedPaths returns every shared path, files first, in config order.
func (c *Config) SharedPaths() []string {
	return append(append([]string(nil), c.Shared.Files...), c.Shared.Dirs...)
}

// Error is a configuration error with its position.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Unwrap lets errors.Is(err, ErrConfig) hold for every config error.
func (e *Error) Unwrap() error { return ErrConfig }

// Limits on ferry.yaml. A real one is a few KiB; these keep a hostile or broken file from costing
// more than a bounded amount of time and memory. The YAML parser takes time quadratic in the
// nesting depth, and aliases can make a small file stand for a huge one.
const (
	maxFileSize  = 1 << 20  // bytes
	maxValueSize = 64 << 10 // bytes of one value (a command longer than this belongs in a script)
	maxFlowDepth = 32       // [ and { inside each other
	maxColumn    = 1000     // of a key or "-" outside brackets: block nesting takes indentation
	maxAliasHops = 16       // anchors and aliases followed to reach one value
	// A file may stand for at most this many values per token of its own, aliases included, and
	// at least minValues: a billion laughs stops there. Likewise for text: an alias to a long
	// value stands for all of it again, and each byte costs time and memory to check.
	valuesPerToken = 4
	minValues      = 10_000
	textPerByte    = 4       // bytes of text a file may stand for per byte of its own
	minText        = 1 << 20 // bytes
)

// Load reads, decodes and validates the file at path.
func Load(file string) (*Config, error) { return LoadWith(file, Options{}) }

// LoadWith is Load for an environment, with a source of environment variables.
func LoadWith(file string, o Options) (*Config, error) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{File: file, Msg: "no such file (run 'ferry init' to write one)"}
		}
		return nil, &Error{File: file, Msg: err.Error()}
	}
	defer f.Close()
	// One byte more than the limit is enough for Parse to refuse the file, and /dev/zero or a
	// huge file is never read whole.
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	return ParseWith(file, data, o)
}

// Parse decodes and validates data as the contents of file.
func Parse(file string, data []byte) (*Config, error) { return ParseWith(file, data, Options{}) }

// ParseWith is Parse for an environment, with a source of environment variables.
func ParseWith(file string, data []byte, o Options) (cfg *Config, err error) {
	// go-yaml can panic on some malformed input (found by FuzzParse); a config file must never
	// crash ferry, so that becomes a config error like any other.
	defer func() {
		if p := recover(); p != nil {
			cfg, err = nil, &Error{File: file, Msg: fmt.Sprintf("malformed YAML: the parser failed (%v)", p)}
		}
	}()
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // a leading byte order mark is allowed: it is no content
	if err := checkText(file, data); err != nil {
		return nil, err
	}
	tokens := lexer.Tokenize(string(data))
	if err := checkTokens(file, tokens); err != nil {
		return nil, err
	}
	f, err := parser.Parse(tokens, 0)
	if err != nil {
		return nil, decodeError(file, err)
	}
	body, err := document(file, f)
	if err != nil {
		return nil, err
	}
	d := newDecoder(file, body, len(tokens), len(data))
	d.environment, d.getenv = o.Environment, o.Getenv
	if d.getenv == nil {
		d.getenv = lookupEnv
	}
	if body, _, err = d.chooseEnvironment(body, o.Environment); err != nil {
		return nil, err
	}
	if body, d.vars, err = d.takeVars(body); err != nil {
		return nil, err
	}
	body, hostVars, err := d.takeHostVars(body)
	if err != nil {
		return nil, err
	}
	// With hosts' own vars, the hosts list is only whole once they are applied: it is checked then.
	c, err := d.build(body, o, len(hostVars) == 0)
	if err != nil {
		return nil, err
	}
	if err := d.perHost(c, body, hostVars); err != nil {
		return nil, err
	}
	c.FromEnv = d.fromEnv
	return c, nil
}

// build decodes body into a config and fills in the defaults; with finish, it also validates it.
func (d *decoder) build(body ast.Node, o Options, finish bool) (*Config, error) {
	var c Config
	if err := d.decode(body, reflect.ValueOf(&c).Elem(), "$"); err != nil {
		return nil, err
	}
	c.Environment = o.Environment
	for _, e := range c.Shared.FileEntries {
		c.Shared.Files = append(c.Shared.Files, e.Path)
	}
	for _, e := range c.Shared.DirEntries {
		c.Shared.Dirs = append(c.Shared.Dirs, e.Path)
	}
	abs, err := filepath.Abs(d.file)
	if err != nil {
		return nil, &Error{File: d.file, Msg: err.Error()}
	}
	c.File = d.file
	c.Dir = filepath.Dir(abs)
	if c.Hosts == nil {
		c.Hosts = []Host{{Local: true}}
	}
	if c.Reuse == "" {
		c.Reuse = "link"
	}
	if c.Check.Nginx == "" {
		c.Check.Nginx = "nginx -T"
	}
	if c.Check.Migrations == nil {
		c.Check.Migrations = []string{"migrations/", "*.sql"}
	}
	if c.HookTimeout == 0 {
		c.HookTimeout = Duration(DefaultHookTimeout)
	}
	if finish {
		if err := d.finish(&c); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// finish fills in the defaults of what may differ per host (services, the health check) and
// validates c.
func (d *decoder) finish(c *Config) error {
	for i := range c.Services {
		if s := &c.Services[i]; s.Socket() {
			if s.StopSignal == "" {
				s.StopSignal = "TERM"
			}
			if s.Drain == nil {
				d := Duration(DefaultDrain)
				s.Drain = &d
			}
		}
	}
	if c.Health != nil {
		if c.Health.ExpectStatus == 0 {
			c.Health.ExpectStatus = 200
		}
		if c.Health.Timeout == 0 {
			c.Health.Timeout = Duration(30 * time.Second)
		}
		if c.Health.Interval == 0 {
			c.Health.Interval = Duration(time.Second)
		}
	}
	if err := c.validate(); err != nil {
		var ve *validationError
		if errors.As(err, &ve) {
			return d.positioned(ve.path, ve.msg)
		}
		return err
	}
	return nil
}

// DisplayName is how ferry names the host in output and in --host.
func (h Host) DisplayName() string {
	switch {
	case h.Name != "":
		return h.Name
	case h.Local:
		return "local"
	default:
		return h.SSH
	}
}

// CleanRelative checks that p is a relative path that stays inside its base and returns it
// cleaned. It is used for every path from config that is joined to a release or to shared/.
func CleanRelative(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	if r, bad := controlChar(p, ""); bad {
		return "", fmt.Errorf("must not contain the control character %U", r)
	}
	if strings.HasPrefix(p, "/") {
		return "", errors.New("must be relative to the release, not absolute")
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", errors.New("must not contain '..'")
		}
	}
	clean := path.Clean(p)
	if clean == "." {
		return "", errors.New("must name a path inside the release")
	}
	return clean, nil
}
