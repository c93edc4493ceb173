package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/changes"
)

func (a *cli) journalCmd() *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:   "journal",
		Short: "Inspect the change journal kept by `tidemark watch`",
		Args:  cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&state, "state", "", "state directory holding the journal (default $XDG_STATE_HOME/tidemark)")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the watcher, its sources and filesystems, gaps, and the journal's size",
		Args:  cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			st, err := app.JournalStatus(state)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(st)
			}
			return a.printJournalStatus(st)
		}),
	}
	cmd.AddCommand(status)
	return cmd
}

func (a *cli) printJournalStatus(st *changes.Status) error {
	fmt.Fprintf(a.out, "state directory: %s\n", st.StateDir)
	w := st.Watcher
	if w == nil {
		fmt.Fprintln(a.out, "watcher: never ran here (start `tidemark watch PATH...`)")
		return nil
	}
	age := time.Since(w.Heartbeat).Round(time.Second)
	switch {
	case st.Fresh:
		fmt.Fprintf(a.out, "watcher: running, pid %d, started %s, heartbeat %s ago\n", w.PID, w.Started.Local().Format(time.DateTime), age)
	case st.Stalled:
		fmt.Fprintf(a.out, "watcher: STALLED, pid %d, heartbeat %s ago: %s; backups do full scans until it recovers (restart it if it does not)\n", w.PID, age, w.Stalled)
	case st.Alive:
		fmt.Fprintf(a.out, "watcher: NOT RESPONDING, pid %d, last heartbeat %s ago\n", w.PID, age)
	default:
		fmt.Fprintf(a.out, "watcher: not running (last pid %d, started %s); backups do full scans until it runs again\n", w.PID, w.Started.Local().Format(time.DateTime))
	}
	fmt.Fprintf(a.out, "source: %s (%s)\n", w.Kind, w.Reason)
	fmt.Fprintf(a.out, "roots: %v\n", w.Roots)
	fmt.Fprintf(a.out, "epoch: %s, position %d, records kept from %d, %s in %d segments\n",
		st.Epoch, st.LastSeq, st.FirstSeq, humanBytes(uint64(st.JournalBytes)), st.Segments)
	if st.JournalError != "" {
		fmt.Fprintf(a.out, "journal error: %s\n", st.JournalError)
	}
	tw := tabwriter.NewWriter(a.out, 0, 2, 2, ' ', 0)
	if len(st.Filesystems) > 0 {
		fmt.Fprintln(tw, "\nFilesystem\tType\tDevice\tSource\tRoots\tPending dirs\tWatches")
		for _, f := range st.Filesystems {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%d\t%d\n", f.Mount, f.Type, f.Device, f.Source, f.Roots, f.PendingDirs, f.Watches)
		}
	}
	if len(w.Uncovered) > 0 {
		fmt.Fprintln(tw, "\nNot covered\tReason")
		for _, u := range w.Uncovered {
			fmt.Fprintf(tw, "%s\t%s\n", u.Path, u.Reason)
		}
	}
	if len(st.Gaps) > 0 {
		fmt.Fprintln(tw, "\nGap at\tTime\tBelow\tReason")
		for _, g := range st.Gaps {
			below := g.Path
			if below == "" {
				below = "(everything)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", g.Seq, g.Time.Local().Format(time.DateTime), below, g.Reason)
		}
	}
	if len(st.Sets) > 0 {
		fmt.Fprintln(tw, "\nBackup set\tReleased up to\tAt")
		for _, s := range st.Sets {
			pos := fmt.Sprintf("%d", s.Cursor.Seq)
			if s.Cursor.Epoch != st.Epoch {
				pos = "(earlier epoch)"
			}
			fmt.Fprintf(tw, "%.16s\t%s\t%s\n", s.Set, pos, s.Time.Local().Format(time.DateTime))
		}
	}
	return tw.Flush()
}
