package main

import (
	"context"

	"github.com/spf13/cobra"
)

func (a *cli) statsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats [SNAPSHOT]",
		Short: "Show repository statistics, or the totals of one snapshot",
		Args:  cobra.MaximumNArgs(1),
		RunE: runE(func(ctx context.Context, args []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			if len(args) == 1 {
				s, err := r.SnapshotStats(ctx, args[0])
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
			s, err := r.Stats(ctx)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(s)
			}
			a.printf("snapshots:     %d\n", s.Snapshots)
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
}
