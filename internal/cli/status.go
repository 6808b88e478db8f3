package cli

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the current release, the lock and leftovers on each host",
		RunE: func(cmd *cobra.Command, args []string) error {
			hosts, err := g.status(cmd)
			if hosts == nil || g.json {
				return err
			}
			// The current link, the log and the lock are the host's: print them escaped.
			for _, h := range hosts {
				w := g.stdout
				fmt.Fprintf(w, "%s: %s\n", printable(h.Host), printable(h.Root))
				if h.Error != "" {
					fmt.Fprintf(w, "  cannot read it: %s\n", printable(h.Error))
					continue
				}
				fmt.Fprintf(w, "  current     %s\n", orNone(printable(h.Current)))
				fmt.Fprintf(w, "  rollback    %s\n", orNone(printable(h.Rollback)))
				fmt.Fprintf(w, "  releases    %d\n", len(h.Releases))
				switch {
				case h.Lock == nil:
					fmt.Fprintf(w, "  lock        free\n")
				case h.LockStale:
					fmt.Fprintf(w, "  lock        held by %s, whose process is gone (the next run takes it over)\n", h.Lock)
				default:
					fmt.Fprintf(w, "  lock        held by %s\n", h.Lock)
				}
				for _, name := range slices.Sorted(maps.Keys(h.Sockets)) {
					fmt.Fprintf(w, "  %-11s -> release %s\n", printable(name), orNone(printable(h.Sockets[name])))
				}
				for _, p := range h.Processes {
					what := p.State
					if p.PID > 0 && p.State != "exited" {
						what += fmt.Sprintf(" (pid %d)", p.PID)
					}
					fmt.Fprintf(w, "  process     %s of %s: %s\n", printable(p.Service), printable(p.Release), what)
				}
				if len(h.Incomplete) > 0 {
					fmt.Fprintf(w, "  incomplete  %s (removed by the next deploy or cleanup)\n", printable(strings.Join(h.Incomplete, ", ")))
				}
				if len(h.Unknown) > 0 {
					fmt.Fprintf(w, "  unknown     %s (not deployed by ferry; left alone)\n", printable(strings.Join(h.Unknown, ", ")))
				}
			}
			return err
		},
	}
}
