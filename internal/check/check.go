// Package check holds ferry check's findings and the pure analyses behind them: reading nginx's
// configuration, spotting destructive SQL, and telling user data from a release's own files. It
// reads text handed to it and knows nothing of hosts, SSH or the CLI.
package check

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Severity of a finding.
type Severity string

// Severities: an error makes ferry check exit 1; a warning does not.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding is one thing ferry check found on a host.
type Finding struct {
	Host     string   `json:"host"`
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	What     string   `json:"what"`
	Fix      string   `json:"fix,omitempty"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s: %s: %s [%s]", f.Host, f.Severity, f.What, f.Code)
	if f.Fix != "" {
		s += "\n  fix: " + f.Fix
	}
	return s
}

// destructive matches SQL that breaks the code still running during a migration.
var destructive = regexp.MustCompile(`(?i)\b(DROP\s+COLUMN|DROP\s+TABLE|RENAME\s+COLUMN|ALTER\s+(TABLE\s+\S+\s+)?ALTER\s+(COLUMN\s+)?\S+\s+(SET\s+DATA\s+)?TYPE|ALTER\s+COLUMN\s+\S+\s+TYPE|RENAME\s+TO)\b`)

// DestructiveSQL returns the destructive statements in text, each on one line. Only SQL is
// read: comments (-- and # to the end of the line, /* */) and quoted strings and names are
// not, so "-- we never DROP TABLE" or 'DROP TABLE' in an INSERT is not a finding. A statement
// runs to the next semicolon outside them.
//
// Dialects disagree on what hides text (MySQL's # comments and backslash escapes, PostgreSQL's
// dollar quotes and # operator), and a migration's dialect is not known here: the text is read
// as each would read it, and a statement destructive in either is a finding. A hidden DROP is
// worse than a second look at one that was not.
func DestructiveSQL(text string) []string {
	return destructiveIn([]sqlDialect{{mysql: true}, {mysql: false}}, text)
}

// DestructiveSQLIn is DestructiveSQL for the migration file at path. A file that is not .sql
// (a Django, Rails or Laravel migration, its SQL in strings) is read with # comments, as its
// language has them, and its strings read as the SQL they hold; a .sql file with MySQL's own
// marks (backquoted names, /*! */, ENGINE=), such as mysqldump writes, is read as MySQL reads
// it. Any other .sql file is read both ways.
func DestructiveSQLIn(path, text string) []string {
	switch {
	case !strings.HasSuffix(strings.ToLower(path), ".sql"):
		return destructiveIn([]sqlDialect{{mysql: true, code: true}}, text)
	case mysqlMarks.MatchString(text):
		return destructiveIn([]sqlDialect{{mysql: true}}, text)
	}
	return DestructiveSQL(text)
}

// mysqlMarks are what only MySQL's SQL has.
var mysqlMarks = regexp.MustCompile("`|/\\*!|(?i)\\bENGINE\\s*=")

func destructiveIn(dialects []sqlDialect, text string) []string {
	var out []string
	for _, d := range dialects {
		for _, f := range destructiveSQL(text, d) {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// sqlDialect is how a reading of SQL treats what dialects disagree on. MySQL: # starts a
// comment anywhere, and a backslash escapes the next character in quotes. Otherwise (PostgreSQL,
// standard SQL): # is an operator (a comment only where a statement starts, where no operator
// can be), a backslash is a character, and $tag$…$tag$ quotes.
//
// code is a program with SQL in its strings (a .py, .rb or .php migration): its quotes are not
// masked, since that is where its SQL is.
type sqlDialect struct{ mysql, code bool }

func destructiveSQL(text string, d sqlDialect) []string {
	code, shown := maskSQL(text, d)
	var out []string
	for start := 0; start < len(code); {
		end := len(code)
		if i := strings.IndexByte(code[start:], ';'); i >= 0 {
			end = start + i + 1
		}
		if loc := destructive.FindStringIndex(code[start:end]); loc != nil {
			out = append(out, statementLine(shown[start:end], loc[0]))
		}
		start = end
	}
	return out
}

// dollarTag matches the opening of a PostgreSQL dollar quote: $$ or $tag$.
var dollarTag = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)?\$`)

// maskSQL returns text twice, byte for byte the same length: code, with comments blanked and
// the inside of quotes ('…', "…", `…`, and $$…$$ where d has them) replaced by x, for matching
// and finding the semicolons that end statements; and shown, with only the comments blanked,
// for people.
//
// Comments: -- runs to the end of the line, as does # where d reads it as a comment (but #> is
// PostgreSQL's JSON path operator); /* */ nests as in PostgreSQL, and /*! … */ is MySQL's
// executable comment (mysqldump writes DROP TABLE in one), so what is inside it is SQL. In
// quotes, a doubled quote escapes the next character, and a backslash where d says so.
func maskSQL(text string, d sqlDialect) (code, shown string) {
	c, s := []byte(text), []byte(text)
	blank := func(i, j int) {
		for k := i; k < j; k++ {
			c[k], s[k] = ' ', ' '
		}
	}
	inExecutable := false
	atStart := true // no code yet in this statement
	for i := 0; i < len(text); {
		rest := text[i:]
		hash := rest[0] == '#' && !strings.HasPrefix(rest, "#>") && (d.mysql || atStart)
		switch {
		case strings.HasPrefix(rest, "--"), hash:
			j := strings.IndexByte(rest, '\n')
			if j < 0 {
				j = len(rest)
			}
			blank(i, i+j)
			i += j
		case strings.HasPrefix(rest, "/*!"):
			j := 3
			for j < len(rest) && '0' <= rest[j] && rest[j] <= '9' {
				j++ // the server version it needs
			}
			blank(i, i+j)
			i += j
			inExecutable = true
		case inExecutable && strings.HasPrefix(rest, "*/"):
			blank(i, i+2)
			i += 2
			inExecutable = false
		case strings.HasPrefix(rest, "/*"):
			depth, j := 1, 2
			for j < len(rest) && depth > 0 {
				switch {
				case strings.HasPrefix(rest[j:], "/*"):
					depth, j = depth+1, j+2
				case strings.HasPrefix(rest[j:], "*/"):
					depth, j = depth-1, j+2
				default:
					j++
				}
			}
			blank(i, i+j)
			i += j
		case !d.mysql && dollarTag.MatchString(rest) && !identByte(text, i-1):
			tag := dollarTag.FindString(rest)
			j := strings.Index(rest[len(tag):], tag)
			if j < 0 {
				j = len(rest)
			} else {
				j += len(tag)
			}
			for k := i + len(tag); k < i+j; k++ {
				c[k] = 'x'
			}
			i += min(j+len(tag), len(rest))
			atStart = false
		case !d.code && (rest[0] == '\'' || rest[0] == '"' || rest[0] == '`'):
			// PostgreSQL's E'…' has backslash escapes too.
			escapes := d.mysql || rest[0] == '\'' && i > 0 && (text[i-1] == 'E' || text[i-1] == 'e') && !identByte(text, i-2)
			q, j := rest[0], 1
			for ; j < len(rest); j++ {
				if rest[j] == '\\' && q != '`' && escapes {
					j++
				} else if rest[j] == q {
					if j+1 < len(rest) && rest[j+1] == q {
						j++
					} else {
						break
					}
				}
			}
			j = min(j, len(rest))
			for k := i + 1; k < i+j; k++ {
				c[k] = 'x'
			}
			i += j + 1
			atStart = false
		default:
			switch rest[0] {
			case ';':
				atStart = true
			case ' ', '\t', '\n', '\r':
			default:
				atStart = false
			}
			i++
		}
	}
	return string(c), string(s)
}

// identByte reports whether text[i] is part of a name ($ too, as PostgreSQL allows in names).
func identByte(text string, i int) bool {
	if i < 0 || i >= len(text) {
		return false
	}
	c := text[i]
	return c == '_' || c == '$' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// statementLine is a statement on one line, its whitespace collapsed; a long one keeps the
// 8 words before the destructive part at offset at, and 16 from it.
func statementLine(stmt string, at int) string {
	before, after := strings.Fields(stmt[:at]), strings.Fields(stmt[at:])
	if len(before) > 8 {
		before = append([]string{"…"}, before[len(before)-8:]...)
	}
	if len(after) > 16 {
		after = append(after[:16], "…")
	}
	return strings.Join(append(before, after...), " ")
}

// NginxServer is what ferry needs of a server block in nginx -T's output.
type NginxServer struct {
	Names          string   // server_name
	Roots          []string // root and alias paths
	OpenFileCache  bool     // open_file_cache is on in its context
	DocumentRootPH bool     // a fastcgi_param passes $document_root (not $realpath_root)
}

var (
	directive = regexp.MustCompile(`(?:^|[{;])\s*(root|alias|server_name|open_file_cache|fastcgi_param)\s+([^;{}]*);`)
)

// ParseNginx reads nginx -T output: server blocks with their roots, whether open_file_cache is
// on for them (at http or server level), and whether PHP gets $document_root.
func ParseNginx(conf string) []NginxServer {
	var servers []NginxServer
	var cur *NginxServer
	depth, serverDepth := 0, -1
	httpCache := false
	for _, raw := range strings.Split(conf, "\n") {
		line := raw
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "server") && strings.HasSuffix(trimmed, "{") && strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(trimmed, "server"), "{")) == "" {
			servers = append(servers, NginxServer{OpenFileCache: httpCache})
			cur = &servers[len(servers)-1]
			serverDepth = depth
		}
		for _, m := range directive.FindAllStringSubmatch(line, -1) {
			val := strings.TrimSpace(m[2])
			switch m[1] {
			case "open_file_cache":
				on := !strings.EqualFold(val, "off")
				if cur == nil {
					httpCache = on
				} else {
					cur.OpenFileCache = on
				}
			case "root", "alias":
				if cur != nil {
					cur.Roots = append(cur.Roots, strings.Trim(val, `"'`))
				}
			case "server_name":
				if cur != nil {
					cur.Names = val
				}
			case "fastcgi_param":
				if cur != nil && strings.Contains(val, "$document_root") && (strings.Contains(val, "SCRIPT_FILENAME") || strings.Contains(val, "DOCUMENT_ROOT")) {
					cur.DocumentRootPH = true
				}
			}
		}
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if cur != nil && depth <= serverDepth {
			cur, serverDepth = nil, -1
		}
	}
	return servers
}

// UnderRoot reports whether p lies under the deploy root, and whether it goes through current.
func UnderRoot(p, root string) (under, viaCurrent bool) {
	p, root = path.Clean(p), path.Clean(root)
	if p != root && !strings.HasPrefix(p, root+"/") {
		return false, false
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
	return true, rest == "current" || strings.HasPrefix(rest, "current/")
}
