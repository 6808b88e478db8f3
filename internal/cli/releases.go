package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferry-deploy/ferry/internal/deploy"
	"github.com/ferry-deploy/ferry/internal/release"
)

func newReleasesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "releases",
		Short: "List the releases on each host, oldest first",
		RunE: func(cmd *cobra.Command, args []string) error {
			hosts, err := g.status(cmd)
			if hosts == nil || g.json {
				return err
			}
			for i, h := range hosts {
				if len(hosts) > 1 {
					if i > 0 {
						fmt.Fprintln(g.stdout)
					}
					fmt.Fprintf(g.stdout, "%s:\n", printable(h.Host))
				}
				if h.Error != "" {
					fmt.Fprintf(g.stdout, "  cannot read it: %s\n", printable(h.Error))
					continue
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "  \tRELEASE\tDEPLOYED (UTC)\tSTATUS\tCOMMIT\tMESSAGE")
				// Everything in a row but the time comes from the host's log: a message with a
				// newline or an escape sequence prints escaped, on its own row.
				for _, rel := range h.Releases {
					mark := ""
					if rel.Current {
						mark = "*"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, printable(rel.ID), rel.Prepared.UTC().Format("2006-01-02 15:04:05"), printable(statusWord(rel, h)), printable(commitWord(rel.Git)), printable(rel.Message))
				}
				tw.Flush()
				if len(h.Releases) == 0 {
					fmt.Fprintf(g.stdout, "  no releases yet\n")
				}
			}
			return err
		},
	}
}

func statusWord(rel *release.Release, h *deploy.HostStatus) string {
	switch {
	case rel.Current:
		return "current"
	case rel.Bad:
		return "bad (rolled back)"
	case rel.ID == h.Rollback:
		return "rollback target"
	}
	return string(rel.Status)
}

// commitWord is the commit a release was built from as the table shows it: the id's first 12
// characters, and "+" when the work tree had changes not committed; "-" when none was recorded.
func commitWord(g *release.Git) string {
	if g == nil {
		return "-"
	}
	c := g.Commit[:min(len(g.Commit), 12)]
	if g.Dirty {
		c += "+"
	}
	return c
}
