package host

import "strings"

// Quote returns s quoted for a POSIX shell: every value ferry puts into a remote command goes
// through it. Single quotes keep everything literal; a single quote itself is closed, escaped and
// reopened. NUL cannot appear in a shell word, so callers never pass one.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
