package cli

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		in, want, wantText string
	}{
		{"plain text", "plain text", "plain text"},
		{"ünïcödé, 日本語, emoji 🚀", "ünïcödé, 日本語, emoji 🚀", "ünïcödé, 日本語, emoji 🚀"},
		{`C:\path "quoted" 'too'`, `C:\path "quoted" 'too'`, `C:\path "quoted" 'too'`},
		{"one\ntwo", `one\ntwo`, "one\ntwo"},
		{"a\tb", `a\tb`, "a\tb"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`, `\x1b[31mred\x1b[0m`},
		{"over\rwrite", `over\rwrite`, `over\rwrite`},
		{"bell\a del\x7f", `bell\a del\x7f`, `bell\a del\x7f`},
		{"csi \u009b2J", `csi \u009b2J`, `csi \u009b2J`},
		{"bidi \u202eevil", `bidi \u202eevil`, `bidi \u202eevil`},
		{"line\u2028sep", `line\u2028sep`, `line\u2028sep`},
		{"bad \xff utf-8", `bad \xff utf-8`, `bad \xff utf-8`},
		{"replacement \uFFFD stays", "replacement \uFFFD stays", "replacement \uFFFD stays"},
	} {
		if diff := cmp.Diff(tc.want, printable(tc.in)); diff != "" {
			t.Errorf("printable(%q) (-want +got):\n%s", tc.in, diff)
		}
		if diff := cmp.Diff(tc.wantText, printableText(tc.in)); diff != "" {
			t.Errorf("printableText(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}
