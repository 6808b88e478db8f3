package cli

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/ferry-deploy/ferry/internal/deploy"
)

func newRunCmd(g *globals) *cobra.Command {
	var roles []string
	cmd := &cobra.Command{
		Use:   "run [--role R] [--host H] -- COMMAND...",
		Short: "Run a command in the live release on each host",
		Long: `Run a command in the live release on each host.

COMMAND (its words joined with spaces, as ssh does) runs with sh -c in <root>/current of
every selected host at once, with FERRY_ROOT,
FERRY_HOST and FERRY_SHARED_DIR set. Its output is printed on stdout, each line prefixed by its
host. A host where it fails does not stop the others. The exit status is the worst one: the
highest exit status of COMMAND on any host, or 1 if a host could not be reached.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			p := &prefixer{w: g.stdout, partial: map[string][]byte{}}
			res, err := deploy.Run(cmd.Context(), cfg, g.options(cmd), roles, strings.Join(args, " "), nil, p.writer)
			p.flush()
			if g.json && res != nil {
				if jerr := writeJSON(g, res); jerr != nil {
					return jerr
				}
			}
			if err != nil && res != nil {
				worst := 1
				for _, r := range res {
					worst = max(worst, min(r.ExitCode, 255))
				}
				return &hostExit{code: worst, err: err}
			}
			return err
		},
	}
	cmd.Flags().StringSliceVar(&roles, "role", nil, "only the hosts with this role (repeat or comma-separate)")
	return cmd
}

// hostExit is a command that failed on hosts: ferry exits with code, the worst of theirs.
type hostExit struct {
	code int
	err  error
}

func (e *hostExit) Error() string { return e.err.Error() }
func (e *hostExit) Unwrap() error { return e.err }

// prefixer writes each host's output to w line by line, each line prefixed by its host, so
// that hosts writing at once never mix within a line. The lines are the user's command's own
// output, printed as they are, as ssh would.
type prefixer struct {
	mu      sync.Mutex
	w       io.Writer
	partial map[string][]byte
}

func (p *prefixer) writer(host string) io.Writer {
	return writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		buf := append(p.partial[host], b...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			fmt.Fprintf(p.w, "%s: %s\n", printable(host), buf[:i])
			buf = buf[i+1:]
		}
		p.partial[host] = append([]byte(nil), buf...)
		return len(b), nil
	})
}

// flush prints what each host wrote after its last newline.
func (p *prefixer) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for host, buf := range p.partial {
		if len(buf) > 0 {
			fmt.Fprintf(p.w, "%s: %s\n", printable(host), buf)
		}
	}
	clear(p.partial)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
