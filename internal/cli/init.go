package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"
)

// initTemplate is the commented ferry.yaml that 'ferry init' writes. Every key ferry knows is
// in it, so it doubles as the reference.
const initTemplate = `# ferry.yaml: what to ship and where. Every key is listed; the commented ones are optional.
app: example.com
root: /srv/www/example.com     # on each host: releases/, shared/, current and .ferry/ live here
source: ./build                # the directory to ship
# build:                       # or build it first, on this machine, and ship its output
#   command: npm ci && npm run build
#   output: dist
exclude: [.git, "*.log"]       # gitignore-style: "name" at any depth, "/dir" from the top, "dir/" dirs only
keep_releases: 5               # complete releases kept by cleanup (the current and the rollback target always are)
shared:                        # state that outlives releases: linked from <root>/shared into every release
  files: [.env]
  dirs: [public/uploads, storage]
reuse: link                    # files unchanged since the previous release: link (hard link) | copy | none
# assets: [public/build]       # fingerprinted assets kept reachable for one more release
hosts:
  - local                      # this machine
# - ssh: deploy@web1.example.com:22
#   roles: [web, migrate]
#   root: /var/www/example.com # a host may override root
#   vars: {port: "8082"}       # and {{vars}}: its hooks, services and health check see its values
hooks:
  before_activate:             # run in the new release before the swap; a failure aborts the deploy
    - run: echo "preparing $FERRY_RELEASE"
      timeout: 5m
#   - run: php artisan migrate --force
#     once: true               # on one host only: the first with role migrate
  after_activate: []           # run after the swap; a failure is a warning
# hook_timeout: 10m            # default timeout of a hook
# services:                    # run after every swap (deploy and rollback)
#   - name: php-fpm
#     reload: sudo systemctl reload php8.2-fpm     # SIGUSR2: graceful with process_control_timeout = 10s
#   - name: worker
#     restart: sudo systemctl restart worker       # only when a shared file (.env) changed
#     restart_always: false    # true: after every swap
#   - name: app                # an app server: one process per release behind <root>/app.sock
#     switch: socket
#     start: exec ./app        # in the release; serves on $FERRY_SOCKET
#     stop_signal: TERM        # to the previous release's process, once the deploy succeeded
#     drain: 30s               # then SIGKILL
#     # under systemd: start: sudo systemctl start app@{{release}}
#     #                stop: sudo systemctl stop app@{{release}}
# health:
#   url: http://127.0.0.1/healthz
#   expect_status: 200
#   contains: "{{release}}"
#   timeout: 30s
# vars: {port: "8080"}         # {{port}} in any value; {{env.NAME}} is this machine's environment variable
# environments:                # ferry -e staging … (or FERRY_ENV): keys here override the ones above
#   staging:                   # (mappings merge, lists replace); {{environment}} is the name
#     root: /srv/www/staging.example.com
#     hosts: [{ssh: deploy@staging1.example.com}]
#     vars: {port: "8081"}
#   production:
#     hosts: [{ssh: deploy@web1.example.com}, {ssh: deploy@web2.example.com}]
`

func newInitCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented ferry.yaml",
		RunE: func(cmd *cobra.Command, args []string) error {
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(g.config, flags, 0o644)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s exists; pass --force to overwrite it: %w", g.config, errUsage)
			}
			if err != nil {
				return err
			}
			if _, err := f.WriteString(initTemplate); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if !g.quiet {
				fmt.Fprintf(g.stderr, "ferry: wrote %s; set root and source, then run 'ferry deploy --dry-run'\n", g.config)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}
