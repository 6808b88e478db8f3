package transfer

import (
	"strings"
)

// Exclude patterns follow git's gitignore rules (gitignore(5)), as if each pattern were a line of a
// .gitignore at the top of the build:
//
//   - a line starting with "#" is a comment; trailing spaces are dropped unless escaped ("a\ ");
//   - "!" re-includes what an earlier pattern excluded, except below an excluded directory;
//   - a trailing "/" matches directories only;
//   - a pattern without a slash (other than a trailing one) matches a name at any depth;
//     with one, it matches the path from the top, a leading "/" only anchoring it;
//   - "*" and "?" never match "/"; "[...]" is a class ("[!a-z]" or "[^a-z]" negates it,
//     "[[:digit:]]" names one); "\" escapes the character after it;
//   - "**/" at the start matches in any directory, "/**" at the end everything inside,
//     "/**/" zero or more directories; any other "**" is a plain "*".
//
// The matching is a port of git's wildmatch.c, so that an exclude list behaves as git would.

// excludeList is a parsed list of exclude patterns.
type excludeList []excludePattern

type excludePattern struct {
	glob    string // without "!", the trailing "/" and a leading "/"
	negate  bool   // "!": a match includes the path again
	dirOnly bool   // trailing "/": matches directories only
	name    bool   // no slash: matched against the last component only
}

func parseExclude(patterns []string) excludeList {
	var l excludeList
	for _, line := range patterns {
		if strings.HasPrefix(line, "#") {
			continue
		}
		line = trimTrailingSpaces(line)
		var p excludePattern
		if strings.HasPrefix(line, "!") {
			p.negate, line = true, line[1:]
		}
		if strings.HasSuffix(line, "/") {
			p.dirOnly, line = true, line[:len(line)-1]
		}
		p.name = !strings.Contains(line, "/")
		line = strings.TrimPrefix(line, "/")
		if line == "" {
			continue
		}
		p.glob = line
		l = append(l, p)
	}
	return l
}

// trimTrailingSpaces drops the spaces at the end of a pattern, unless escaped, as git does.
func trimTrailingSpaces(s string) string {
	cut := -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ':
			if cut < 0 {
				cut = i
			}
		case '\\':
			i++
			if i == len(s) {
				return s
			}
			cut = -1
		default:
			cut = -1
		}
	}
	if cut >= 0 {
		return s[:cut]
	}
	return s
}

// matches reports whether the last pattern that matches rel excludes it. It does not look at
// rel's directories: a walk that skips excluded directories never asks about what they hold.
func (l excludeList) matches(rel string, isDir bool) bool {
	base := rel[strings.LastIndexByte(rel, '/')+1:]
	for i := len(l) - 1; i >= 0; i-- {
		p := &l[i]
		if p.dirOnly && !isDir {
			continue
		}
		var ok bool
		if p.name {
			ok = wildmatch(p.glob, base, false)
		} else {
			ok = wildmatch(p.glob, rel, true)
		}
		if ok {
			return !p.negate
		}
	}
	return false
}

// excluded reports whether rel is excluded, either itself or because one of its directories is.
func (l excludeList) excluded(rel string, isDir bool) bool {
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && l.matches(rel[:i], true) {
			return true
		}
	}
	return l.matches(rel, isDir)
}

// A Matcher holds exclude patterns parsed once, for matching many paths.
type Matcher struct{ l excludeList }

// NewMatcher parses patterns, read with git's gitignore rules.
func NewMatcher(patterns []string) Matcher { return Matcher{parseExclude(patterns)} }

// Match reports whether rel (slash-separated, relative to the top of the build) is matched by
// the patterns: itself, or because a directory it is in is. isDir tells whether rel is a
// directory.
func (m Matcher) Match(rel string, isDir bool) bool { return len(m.l) > 0 && m.l.excluded(rel, isDir) }

// The results of dowild, as in git's wildmatch.c. The two aborts stop the backtracking early:
// once the text has run out, or once a "*" has met a "/" that only a "**" could cross, no longer
// match for an earlier "*" can succeed.
const (
	wmMatch = iota
	wmNoMatch
	wmAbortAll
	wmAbortToStarStar
)

// wildmatch reports whether text matches the glob pattern p. With pathname, "*", "?" and "[...]"
// do not match "/" and "**" between slashes matches across them; without, "*" matches anything.
func wildmatch(p, text string, pathname bool) bool {
	return dowild(p, 0, text, pathname) == wmMatch
}

func dowild(p string, pi int, t string, pathname bool) int {
	for ; pi < len(p); pi, t = pi+1, t[1:] {
		pc := p[pi]
		if len(t) == 0 && pc != '*' {
			return wmAbortAll
		}
		var tc byte // 0 once the text has run out, only for "*"
		if len(t) > 0 {
			tc = t[0]
		}
		switch pc {
		case '\\':
			pi++
			if pi == len(p) || tc != p[pi] {
				return wmNoMatch
			}
		case '?':
			if pathname && tc == '/' {
				return wmNoMatch
			}
		case '*':
			matchSlash := !pathname
			pi++
			if pi < len(p) && p[pi] == '*' {
				start := pi - 1
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				atStart := start == 0 || p[start-1] == '/'
				atEnd := pi == len(p) || p[pi] == '/' || (p[pi] == '\\' && pi+1 < len(p) && p[pi+1] == '/')
				if !pathname {
					matchSlash = true
				} else if atStart && atEnd {
					// "**/" may match no directory at all: "a/**/b" matches "a/b".
					if pi < len(p) && p[pi] == '/' && dowild(p, pi+1, t, pathname) == wmMatch {
						return wmMatch
					}
					matchSlash = true
				} else {
					matchSlash = false
				}
			}
			if pi == len(p) {
				// A trailing "**" matches everything, a trailing "*" only what has no more slashes.
				if !matchSlash && strings.IndexByte(t, '/') >= 0 {
					return wmNoMatch
				}
				return wmMatch
			}
			if !matchSlash && p[pi] == '/' {
				// "*/" matches up to the next slash; the loop consumes both slashes.
				i := strings.IndexByte(t, '/')
				if i < 0 {
					return wmNoMatch
				}
				t = t[i:]
				continue
			}
			for ; len(t) > 0; t = t[1:] {
				m := dowild(p, pi, t, pathname)
				if m != wmNoMatch {
					if !matchSlash || m != wmAbortToStarStar {
						return m
					}
				} else if !matchSlash && t[0] == '/' {
					return wmAbortToStarStar
				}
			}
			return wmAbortAll
		case '[':
			var ok bool
			if pi, ok = matchClass(p, pi, tc); pi < 0 {
				return wmAbortAll
			}
			if !ok || (pathname && tc == '/') {
				return wmNoMatch
			}
		default:
			if tc != pc {
				return wmNoMatch
			}
		}
	}
	if len(t) > 0 {
		return wmNoMatch
	}
	return wmMatch
}

// matchClass matches c against the bracket expression that opens at p[pi]. It returns the index of
// the closing "]", or -1 if the expression is not closed (the whole pattern then fails, as in git).
func matchClass(p string, pi int, c byte) (int, bool) {
	pi++
	if pi >= len(p) {
		return -1, false
	}
	negated := p[pi] == '!' || p[pi] == '^'
	if negated {
		pi++
	}
	matched := false
	var prev byte // the previous literal, for a range; 0 after a range or a class
	for first := true; ; first = false {
		if pi >= len(p) {
			return -1, false
		}
		pc := p[pi]
		if pc == ']' && !first {
			break
		}
		switch {
		case pc == '\\':
			pi++
			if pi >= len(p) {
				return -1, false
			}
			pc = p[pi]
			if c == pc {
				matched = true
			}
		case pc == '-' && prev != 0 && pi+1 < len(p) && p[pi+1] != ']':
			pi++
			hi := p[pi]
			if hi == '\\' {
				pi++
				if pi >= len(p) {
					return -1, false
				}
				hi = p[pi]
			}
			if c >= prev && c <= hi {
				matched = true
			}
			pc = 0
		case pc == '[' && pi+1 < len(p) && p[pi+1] == ':':
			end := strings.Index(p[pi+2:], ":]")
			if end < 0 || strings.IndexByte(p[pi+2:pi+2+end], ']') >= 0 {
				// Not a "[:class:]": a literal "[".
				if c == '[' {
					matched = true
				}
				break
			}
			is, known := charClasses[p[pi+2:pi+2+end]]
			if !known {
				return -1, false
			}
			if is(c) {
				matched = true
			}
			pi += 2 + end + 1
			pc = 0
		default:
			if c == pc {
				matched = true
			}
		}
		prev = pc
		pi++
	}
	return pi, matched != negated
}

var charClasses = map[string]func(byte) bool{
	"alnum":  func(c byte) bool { return isAlpha(c) || isDigit(c) },
	"alpha":  isAlpha,
	"blank":  func(c byte) bool { return c == ' ' || c == '\t' },
	"cntrl":  func(c byte) bool { return c < 0x20 || c == 0x7f },
	"digit":  isDigit,
	"graph":  func(c byte) bool { return c > 0x20 && c < 0x7f },
	"lower":  func(c byte) bool { return c >= 'a' && c <= 'z' },
	"print":  func(c byte) bool { return c >= 0x20 && c < 0x7f },
	"punct":  func(c byte) bool { return c > 0x20 && c < 0x7f && !isAlpha(c) && !isDigit(c) },
	"space":  func(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') },
	"upper":  func(c byte) bool { return c >= 'A' && c <= 'Z' },
	"xdigit": func(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') },
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
