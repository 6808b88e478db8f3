// Package check holds ferry check's findings and the pure analyses behind them: reading nginx's
// configuration, spotting destructive SQL, and telling user data from a release's own files. It
// reads text handed to it and knows nothing of hosts, SSH or the CLI.
package check

import (
	"fmt"
	"path"
	"regexp"
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

// DestructiveSQL returns the destructive statements in text, one line each.
func DestructiveSQL(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if m := destructive.FindString(line); m != "" {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
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
