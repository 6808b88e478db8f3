package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ferry-deploy/ferry/internal/deploy"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// reporter prints one line per step per host to stderr:
//
//	local  upload    20261127-101502: 2,013 files, 1 sent (4.1 kB), 2,012 reused (0.21s)
//
// On a terminal, uploads show a progress bar per host (mpb); lines are then printed above the
// bars. Off a terminal (CI logs) there are only the lines.
type reporter struct {
	mu       sync.Mutex
	w        io.Writer
	events   *json.Encoder // with --json: each step, warning and line of output as a JSON line on stdout
	quiet    bool
	terminal bool
	partial  map[string][]byte // hook output not yet ended by a newline, per host
	bars     *mpb.Progress
	active   int
}

func newReporter(g *globals) *reporter {
	r := &reporter{w: g.stderr, quiet: g.quiet || g.json, partial: map[string][]byte{}}
	if g.json {
		r.events = json.NewEncoder(g.stdout)
		r.events.SetEscapeHTML(false)
	}
	if f, ok := g.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.terminal = true
	}
	return r
}

// out is where lines go: above the bars while there are any.
func (r *reporter) out() io.Writer {
	if r.bars != nil {
		return r.bars
	}
	return r.w
}

// Progress implements deploy.Reporter.
func (r *reporter) Progress(host string, total int64) (func(int64), func()) {
	if r.quiet || !r.terminal || total == 0 {
		return func(int64) {}, func() {}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bars == nil {
		r.bars = mpb.New(mpb.WithOutput(r.w), mpb.WithWidth(40))
	}
	r.active++
	bar := r.bars.AddBar(total, mpb.BarRemoveOnComplete(),
		mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-6s upload ", host)), decor.CountersKiloByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.Percentage(decor.WC{W: 5})))
	var once sync.Once
	return bar.IncrInt64, func() {
		once.Do(func() {
			bar.Abort(true)
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.active--; r.active == 0 {
				r.bars.Wait()
				r.bars = nil
			}
		})
	}
}

// Step implements deploy.Reporter: a line in words (see describe), or with --json the step's
// fields and those words. The line is one line: anything in it that came from the host (a
// release id read from current) or spans lines (a hook's script) is escaped.
func (r *reporter) Step(s deploy.Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endLine(s.Host)
	msg := describe(s)
	if r.events != nil {
		_ = r.events.Encode(stepEvent{Type: "step", Step: s, Message: msg})
		return
	}
	if r.quiet {
		return
	}
	fmt.Fprintf(r.out(), "%-6s %-9s %s (%s)\n", s.Host, s.Kind, printable(msg), round(s.Took))
}

// stepEvent is a step as a JSON line: its fields, and the words a person reads for it.
type stepEvent struct {
	Type string `json:"type"`
	deploy.Step
	Message string `json:"message"`
}

// Warn implements deploy.Reporter. A warning may carry a hook's output over several lines, so
// only newlines and tabs are kept as they are.
func (r *reporter) Warn(host, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endLine(host)
	if r.events != nil {
		_ = r.events.Encode(event{Type: "warning", Host: host, Message: msg})
	}
	fmt.Fprintf(r.out(), "ferry: warning: %s: %s\n", host, printableText(msg))
}

// Output prints command output line by line, each prefixed by its host. A last line without a
// newline waits for more output, and is printed on its own once the engine reports the
// command's end (a step or a warning for that host) or returns (flush).
func (r *reporter) Output(host string, p []byte) {
	if r.quiet && r.events == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	buf := append(r.partial[host], p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		r.line(host, buf[:i])
		buf = buf[i+1:]
	}
	r.partial[host] = append([]byte(nil), buf...)
}

// endLine prints the output of host's last command that did not end with a newline, as a line
// of its own. The caller holds mu.
func (r *reporter) endLine(host string) {
	if buf := r.partial[host]; len(buf) > 0 {
		r.line(host, buf)
	}
	delete(r.partial, host)
}

// line prints one line of a command's output. The caller holds mu.
func (r *reporter) line(host string, l []byte) {
	if r.events != nil {
		_ = r.events.Encode(event{Type: "output", Host: host, Line: string(l)})
		return
	}
	fmt.Fprintf(r.out(), "%-6s | %s\n", host, l)
}

// event is a JSON line of --json: what happened, on which host, as it happened. The last line
// of a deploy, rollback or cleanup is its result (type "result").
type event struct {
	Type    string `json:"type"` // warning, output (a step is a stepEvent)
	Host    string `json:"host"`
	Message string `json:"message,omitempty"`
	Line    string `json:"line,omitempty"`
}

// flush prints every host's unfinished last line. Commands call it when the engine returns,
// before the result or the error is printed.
func (r *reporter) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, host := range slices.Sorted(maps.Keys(r.partial)) {
		r.endLine(host)
	}
}

// round keeps durations readable: 1.234s, 12ms, 840µs.
func round(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
