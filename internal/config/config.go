// Package config owns ferry.yaml: its schema, its defaults and its validation. Every error it
// returns names the file, line and column of the value that is wrong. It knows nothing about
// hosts, releases or the CLI.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
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
	Check        Check     `yaml:"check"`

	// Dir is the directory of the config file; a relative source is resolved against it.
	Dir string `yaml:"-"`
	// File is the path the config was read from.
	File string `yaml:"-"`
}

// Build is a command run on the deploying machine before the upload; Output is then shipped.
type Build struct {
	Command string `yaml:"command"`
	Output  string `yaml:"output"`
}

// Shared lists the paths, relative to a release, that live in <root>/shared and outlive releases.
type Shared struct {
	Files []string `yaml:"files"`
	Dirs  []string `yaml:"dirs"`
}

// Host is one target: the word "local", or a mapping with ssh, roles and an optional root.
type Host struct {
	Local bool     `yaml:"-"`
	SSH   string   `yaml:"ssh"`
	Roles []string `yaml:"roles"`
	Root  string   `yaml:"root"`
	Name  string   `yaml:"name"`
}

// UnmarshalYAML accepts the plain string "local" as well as the mapping form.
func (h *Host) UnmarshalYAML(node ast.Node) error {
	if s, ok := node.(*ast.StringNode); ok {
		if s.Value != "local" {
			return nodeError(node, "host %q: write \"local\" or a mapping such as {ssh: deploy@web1}", s.Value)
		}
		h.Local = true
		return nil
	}
	type plain Host
	var p plain
	if err := yaml.NodeToValue(node, &p, yaml.Strict()); err != nil {
		return err
	}
	*h = Host(p)
	return nil
}

// Count is keep_releases, a whole number: 1.9 or "3" is an error, not 1 or 3.
type Count int

// UnmarshalYAML accepts only an integer.
func (n *Count) UnmarshalYAML(node ast.Node) error {
	i, ok := node.(*ast.IntegerNode)
	if !ok {
		return nodeError(node, "keep_releases must be a whole number, not %s", node.String())
	}
	v, err := strconv.Atoi(i.GetToken().Value)
	if err != nil {
		return nodeError(node, "keep_releases must be a whole number, not %s", node.String())
	}
	*n = Count(v)
	return nil
}

// Duration is a time.Duration written as "30s" or "2m" in ferry.yaml.
type Duration time.Duration

// UnmarshalYAML parses a duration and reports a bad one at its position.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	s, ok := node.(*ast.StringNode)
	if !ok {
		return nodeError(node, "expected a duration such as 30s, got %s", node.String())
	}
	v, err := time.ParseDuration(s.Value)
	if err != nil {
		return nodeError(node, "%q is not a duration: write it as 30s, 2m or 1h", s.Value)
	}
	*d = Duration(v)
	return nil
}

// posError is an error raised while decoding one node, reported at its position.
type posError struct {
	line, col int
	msg       string
}

func (e *posError) Error() string { return fmt.Sprintf("%d:%d: %s", e.line, e.col, e.msg) }

func nodeError(node ast.Node, format string, args ...any) error {
	e := &posError{msg: fmt.Sprintf(format, args...)}
	if tk := node.GetToken(); tk != nil {
		e.line, e.col = tk.Position.Line, tk.Position.Column
	}
	return e
}

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
}

// Hook is one command. Once hooks run on a single host of a fleet.
type Hook struct {
	Run     string   `yaml:"run"`
	Once    bool     `yaml:"once"`
	Timeout Duration `yaml:"timeout"`
}

// Service is something to reload (or restart) after every swap.
type Service struct {
	Name    string `yaml:"name"`
	Reload  string `yaml:"reload"`
	Restart string `yaml:"restart"`
}

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

// Load reads, decodes and validates the file at path.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{File: file, Msg: "no such file (run 'ferry init' to write one)"}
		}
		return nil, &Error{File: file, Msg: err.Error()}
	}
	return Parse(file, data)
}

// Parse decodes and validates data as the contents of file.
func Parse(file string, data []byte) (cfg *Config, err error) {
	// go-yaml can panic on some malformed input (found by FuzzParse); a config file must never
	// crash ferry, so that becomes a config error like any other.
	defer func() {
		if p := recover(); p != nil {
			cfg, err = nil, &Error{File: file, Msg: fmt.Sprintf("malformed YAML: the parser failed (%v)", p)}
		}
	}()
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data), yaml.Strict())
	if err := dec.Decode(&c); err != nil {
		return nil, decodeError(file, err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	c.File = file
	c.Dir = filepath.Dir(abs)
	if len(c.Hosts) == 0 {
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
			return nil, positioned(file, data, ve.path, ve.msg)
		}
		return nil, err
	}
	return &c, nil
}

// validationError names the YAML path of a bad value; Parse turns it into file:line:column.
type validationError struct {
	path string
	msg  string
}

func (e *validationError) Error() string { return e.path + ": " + e.msg }

func invalid(p, format string, args ...any) error {
	return &validationError{path: p, msg: fmt.Sprintf(format, args...)}
}

func (c *Config) validate() error {
	if strings.TrimSpace(c.Root) == "" {
		return invalid("$", "root is missing: set root to the directory that holds releases/, shared/ and current")
	}
	if !path.IsAbs(c.Root) {
		return invalid("$.root", "root %q must be an absolute path", c.Root)
	}
	if path.Clean(c.Root) == "/" {
		return invalid("$.root", "root must not be /: give ferry a directory of its own, such as /srv/www/example.com")
	}
	if c.Build != nil {
		if c.Source != "" {
			return invalid("$.build", "set either source or build, not both")
		}
		if c.Build.Command == "" || c.Build.Output == "" {
			return invalid("$.build", "build needs both command and output")
		}
	} else if c.Source == "" {
		return invalid("$", "source is missing: set source to the directory to ship, or build: {command, output}")
	}
	if c.KeepReleases != nil && *c.KeepReleases < 1 {
		return invalid("$.keep_releases", "keep_releases must be 1 or more, not %d: the current release is always kept", *c.KeepReleases)
	}
	switch c.Reuse {
	case "link", "copy", "none":
	default:
		return invalid("$.reuse", "reuse must be link, copy or none, not %q", c.Reuse)
	}
	seen := map[string]string{}
	for kind, list := range map[string][]string{"files": c.Shared.Files, "dirs": c.Shared.Dirs} {
		for i, p := range list {
			where := fmt.Sprintf("$.shared.%s[%d]", kind, i)
			clean, err := CleanRelative(p)
			if err != nil {
				return invalid(where, "shared path %q: %v", p, err)
			}
			if other, ok := seen[clean]; ok {
				return invalid(where, "shared path %q is listed twice (also at %s)", p, other)
			}
			seen[clean] = where
			list[i] = clean
		}
	}
	for a := range seen {
		for b := range seen {
			if a != b && strings.HasPrefix(b, a+"/") {
				return invalid(seen[b], "shared path %q lies inside shared path %q", b, a)
			}
		}
	}
	for i, p := range c.Assets {
		clean, err := CleanRelative(p)
		if err != nil {
			return invalid(fmt.Sprintf("$.assets[%d]", i), "assets path %q: %v", p, err)
		}
		c.Assets[i] = clean
	}
	for i, pat := range c.Exclude {
		if _, err := path.Match(strings.Trim(pat, "/"), ""); err != nil || pat == "" {
			return invalid(fmt.Sprintf("$.exclude[%d]", i), "exclude pattern %q is not valid", pat)
		}
	}
	names := map[string]bool{}
	for i, h := range c.Hosts {
		where := fmt.Sprintf("$.hosts[%d]", i)
		if !h.Local && h.SSH == "" {
			return invalid(where, "host needs ssh: user@host[:port] (or write \"local\")")
		}
		if h.Root != "" && !path.IsAbs(h.Root) {
			return invalid(where+".root", "root %q must be an absolute path", h.Root)
		}
		name := c.Hosts[i].DisplayName()
		if names[name] {
			return invalid(where, "host %q is listed twice", name)
		}
		names[name] = true
	}
	for _, stage := range []struct {
		key   string
		hooks []Hook
	}{{"before_activate", c.Hooks.BeforeActivate}, {"after_activate", c.Hooks.AfterActivate}} {
		for i, h := range stage.hooks {
			where := fmt.Sprintf("$.hooks.%s[%d]", stage.key, i)
			if strings.TrimSpace(h.Run) == "" {
				return invalid(where, "hook needs run: <command>")
			}
			if h.Timeout < 0 {
				return invalid(where+".timeout", "timeout must be positive")
			}
		}
	}
	for i, s := range c.Services {
		where := fmt.Sprintf("$.services[%d]", i)
		if s.Name == "" {
			return invalid(where, "service needs a name")
		}
		if s.Reload == "" && s.Restart == "" {
			return invalid(where, "service %q needs reload or restart", s.Name)
		}
	}
	if c.Health != nil && c.Health.URL == "" {
		return invalid("$.health", "health needs url")
	}
	if c.Health != nil {
		if u, err := url.Parse(c.Health.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("$.health.url", "health url %q must be an http:// or https:// URL with a host, such as http://127.0.0.1/healthz", c.Health.URL)
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
	// A local root inside the build would ship itself at every deploy, growing without bound.
	src := c.SourceDir()
	for i, h := range c.Hosts {
		root := c.Root
		if h.Root != "" {
			root = h.Root
		}
		if h.Local && (root == src || strings.HasPrefix(root, src+"/")) {
			where := "$.root"
			if h.Root != "" {
				where = fmt.Sprintf("$.hosts[%d].root", i)
			}
			return invalid(where, "root %s is inside the build %s: every deploy would ship the releases again; put the root outside it", root, src)
		}
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

// decodeError turns a go-yaml error into an *Error with a position and a plain message.
func decodeError(file string, err error) error {
	var pe *posError
	if errors.As(err, &pe) {
		return &Error{File: file, Line: pe.line, Column: pe.col, Msg: pe.msg}
	}
	var ye yaml.Error
	if errors.As(err, &ye) {
		e := &Error{File: file, Msg: ye.GetMessage()}
		if tk := ye.GetToken(); tk != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
		}
		var te *yaml.TypeError
		if errors.As(err, &te) && te.StructFieldName != nil {
			field := yamlKey(*te.StructFieldName)
			e.Msg = fmt.Sprintf("%s: expected %s, got %s", field, kindName(te.DstType.String()), te.SrcType.String())
		}
		var ue *yaml.UnknownFieldError
		if errors.As(err, &ue) {
			e.Msg += " (see 'ferry init' for every key)"
		}
		return e
	}
	msg := err.Error()
	if line, col, rest, ok := leadingPosition(msg); ok {
		return &Error{File: file, Line: line, Column: col, Msg: rest}
	}
	return &Error{File: file, Msg: firstLine(msg)}
}

// yamlKey turns the Go field name that go-yaml reports ("Config.KeepReleases") into the key a
// user wrote ("keep_releases").
func yamlKey(field string) string {
	if i := strings.LastIndex(field, "."); i >= 0 {
		field = field[i+1:]
	}
	for _, t := range []reflect.Type{reflect.TypeFor[Config](), reflect.TypeFor[Host](), reflect.TypeFor[Hook](),
		reflect.TypeFor[Service](), reflect.TypeFor[Health](), reflect.TypeFor[Build](), reflect.TypeFor[Shared](), reflect.TypeFor[Hooks](), reflect.TypeFor[Check]()} {
		if f, ok := t.FieldByName(field); ok {
			if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" && tag != "-" {
				return tag
			}
		}
	}
	return field
}

func kindName(goType string) string {
	switch goType {
	case "int", "*int":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "time.Duration":
		return "a duration such as 30s"
	}
	if strings.HasPrefix(goType, "[]") {
		return "a list"
	}
	return "a mapping"
}

// leadingPosition parses "[3:5] message" as go-yaml formats wrapped errors.
func leadingPosition(msg string) (line, col int, rest string, ok bool) {
	if _, err := fmt.Sscanf(msg, "[%d:%d]", &line, &col); err != nil {
		return 0, 0, "", false
	}
	if i := strings.Index(msg, "]"); i >= 0 {
		rest = strings.TrimSpace(firstLine(msg[i+1:]))
	}
	return line, col, rest, true
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// positioned finds the node at the YAML path p and reports msg at its position.
func positioned(file string, data []byte, p, msg string) error {
	e := &Error{File: file, Msg: msg}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return e
	}
	var node ast.Node
	for q := p; node == nil && q != ""; {
		yp, err := yaml.PathString(q)
		if err == nil {
			node, _ = yp.FilterFile(f)
		}
		i := strings.LastIndexAny(q, ".[")
		if i <= 0 {
			break
		}
		q = q[:i]
	}
	e.Line, e.Column = 1, 1
	if node != nil && node.GetToken() != nil && p != "$" {
		pos := node.GetToken().Position
		e.Line, e.Column = pos.Line, pos.Column
	}
	return e
}
