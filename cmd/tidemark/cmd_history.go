package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func (a *cli) historyCmd() *cobra.Command {
	var n int
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Show this machine's backup history from the local state database",
		Args:  noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			rows, err := r.History(ctx, n)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(rows)
			}
			tw := tabwriter.NewWriter(a.out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "Time\tSnapshot\tScan\tNew\tChanged\tUnchanged\tRead\tAdded\tDuration\tReason")
			for _, b := range rows {
				fmt.Fprintf(tw, "%s\t%.8s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", b.Time.Local().Format("2006-01-02 15:04:05"), b.Snapshot, b.Mode,
					b.FilesNew, b.FilesChanged, b.FilesUnchanged, humanBytes(b.BytesRead), humanBytes(b.BytesAdded), b.Duration, displayText(b.Reason))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().IntVarP(&n, "last", "n", 20, "number of backups to show")
	return cmd
}
