package main

import (
	"context"

	"github.com/spf13/cobra"
)

func (a *cli) statsCmd() *cobra.Command {
	var ff filterFlags
	cmd := &cobra.Command{
		Use:   "stats [SNAPSHOT]",
		Short: "Show repository statistics, or the totals of one snapshot",
		Long: `Without SNAPSHOT: how many snapshots the filters (--host, --path, --tag)
select and what restoring each of them would write, and the repository's
packs and blobs (all of them: blobs are shared). With SNAPSHOT (an ID, a
unique prefix, or "latest": the newest snapshot the filters select): its
totals.`,
		Args: needArgs(0, 1, "give at most one snapshot, e.g. tidemark stats latest"),
		RunE: runE(func(ctx context.Context, args []string) error {
			f, err := ff.filter()
			if err != nil {
				return err
			}
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			if len(args) == 1 {
				s, err := r.SnapshotStats(ctx, args[0], f)
				if err != nil {
					return err
				}
				if a.jsonOut {
					return a.printJSON(s)
				}
				a.printf("snapshot %s: %s in %d files, %d directories, %d other entries\n", s.ID.Short(),
					humanBytes(s.Totals.Bytes), s.Totals.Files, s.Totals.Dirs, s.Totals.Other)
				return nil
			}
			s, err := r.Stats(ctx, f, a.report)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(s)
			}
			a.printf("snapshots:     %d\n", s.Snapshots)
			a.printf("restore size:  %s in %d files (the snapshots' sizes added up)\n", humanBytes(s.RestoreBytes), s.RestoreFiles)
			a.printf("packs:         %d\n", s.Packs)
			a.printf("blobs:         %d data, %d tree\n", s.DataBlobs, s.TreeBlobs)
			a.printf("unique data:   %s\n", humanBytes(s.UniqueBytes))
			a.printf("stored:        %s", humanBytes(s.StoredBytes))
			if s.UniqueBytes > 0 {
				a.printf(" (%.1f%% of unique data after compression and encryption)", 100*float64(s.StoredBytes)/float64(s.UniqueBytes))
			}
			a.printf("\n")
			return nil
		}),
	}
	ff.register(cmd.Flags())
	return cmd
}
