package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
)

func (a *cli) watchCmd() *cobra.Command {
	var state string
	var inotify bool
	cmd := &cobra.Command{
		Use:   "watch [--state DIR] PATH...",
		Short: "Record which directories change, so backups rescan only those (Linux)",
		Long: `Watch runs in the foreground until interrupted (SIGINT, SIGTERM) and appends
the directories that change below PATH... to a change journal in the state
directory. A backup of the same paths then rescans only those directories,
as long as the watcher ran without interruption since the previous backup;
otherwise it falls back to a full scan and says why.

It uses fanotify filesystem marks when it can (root, or CAP_SYS_ADMIN) and
recursive inotify watches otherwise; it prints which and why. It needs no
repository and no password. See contrib/tidemark-watch.service for running
it under systemd.`,
		Args: cobra.MinimumNArgs(1),
		RunE: runE(func(ctx context.Context, args []string) error {
			events := func(ev app.Event) {
				l, ok := ev.(app.Log)
				if !ok {
					a.report(ev)
					return
				}
				switch {
				case a.jsonOut:
					_ = jsonLine(a.out, struct {
						Time    time.Time `json:"time"`
						Message string    `json:"message"`
					}{time.Now().UTC(), l.Message})
				case !a.quiet:
					fmt.Fprintf(a.out, "%s %s\n", time.Now().Format("2006-01-02 15:04:05"), l.Message)
				}
			}
			return app.Watch(ctx, args, app.WatchOptions{StateDir: state, ForceInotify: inotify, Events: events})
		}),
	}
	cmd.Flags().StringVar(&state, "state", "", "state directory holding the journal (default $XDG_STATE_HOME/tidemark)")
	cmd.Flags().BoolVar(&inotify, "inotify", false, "use inotify even when fanotify is available")
	return cmd
}
