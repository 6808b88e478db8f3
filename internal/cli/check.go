package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-deploy/ferry/internal/check"
	"github.com/ferry-deploy/ferry/internal/deploy"
)

func newCheckCmd(g *globals) *cobra.Command {
	var verify bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Find what would break deploys on each host, and how to fix it",
		Long: `Find what would break deploys on each host, and how to fix it. Changes nothing.

Layout: root writable, releases/ on the root's filesystem, free space, leftovers of
interrupted runs, a stale lock, a current that is not a link.
State in a release: files in the live release that its manifest does not have, or that
changed after it was deployed: user data that the next cleanups lose.
nginx (check.nginx, default 'nginx -T'): roots that bypass current, open_file_cache without
a reload, $document_root passed to PHP. PHP: opcache.validate_timestamps=0 with no reload.
Environment: a shared file changed since the last activation with no restart configured.
Migrations (check.migrations): new or changed files with DROP COLUMN, DROP TABLE, RENAME
COLUMN, RENAME TO or ALTER ... TYPE outside comments and quoted strings.

Exit status: 1 when there are errors, 0 when there are only warnings or nothing.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			findings, err := deploy.Check(cmd.Context(), cfg, g.options(cmd), verify)
			if err != nil {
				return err
			}
			errs := 0
			for _, f := range findings {
				if f.Severity == check.Error {
					errs++
				}
			}
			if g.json {
				if findings == nil {
					findings = []check.Finding{}
				}
				if err := writeJSON(g, findings); err != nil {
					return err
				}
			} else {
				for _, f := range findings {
					if f.Severity == check.Info && !g.verbose {
						continue
					}
					// Findings name files, server names and lock holders read on the host.
					f.Host, f.What, f.Fix = printable(f.Host), printable(f.What), printable(f.Fix)
					fmt.Fprintln(g.stdout, f)
				}
				if len(findings) == 0 || !g.quiet {
					fmt.Fprintf(g.stderr, "ferry: check: %d errors, %d findings in all\n", errs, len(findings))
				}
			}
			if errs > 0 {
				return fmt.Errorf("ferry check found %d errors", errs)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&verify, "verify", false, "also hash every file of the live release on the host against its manifest")
	return cmd
}
