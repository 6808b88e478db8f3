package cli

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// printable returns s with every character a terminal would act on escaped the way Go quotes
// it (\n, \t, \x1b, \u202e), and invalid UTF-8 as \xff. Ordinary text, including UTF-8, is
// left as it is. Human output passes every string read from a host (the log, the lock, file
// names) through it: a deploy message with a newline must not forge a row of 'ferry releases',
// and escape sequences must not reach the terminal. JSON output needs none of this.
func printable(s string) string {
	return escape(s, "")
}

// printableText is printable for text of several lines: newlines and tabs stay as they are.
func printableText(s string) string {
	return escape(s, "\n\t")
}

// escape escapes what printable does, except the characters in keep.
func escape(s, keep string) string {
	i := strings.IndexFunc(s, func(r rune) bool {
		return r == utf8.RuneError || !strconv.IsPrint(r) && !strings.ContainsRune(keep, r)
	})
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for s = s[i:]; s != ""; {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case strconv.IsPrint(r) || strings.ContainsRune(keep, r):
			b.WriteString(s[:size])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[size:]
	}
	return b.String()
}
