package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// snapshotJSON is the stable JSON shape of a snapshot listing.
type snapshotJSON struct {
	ID       blob.ID             `json:"id"`
	Time     time.Time           `json:"time"`
	Host     string              `json:"host"`
	Username string              `json:"username,omitempty"`
	Roots    []string            `json:"roots"`
	Tree     blob.ID             `json:"tree"`
	Parent   *blob.ID            `json:"parent,omitempty"`
	Tags     []string            `json:"tags,omitempty"`
	Scan     snapshot.ScanInfo   `json:"scan"`
	Totals   snapshot.Aggregates `json:"totals"`
	Summary  snapshot.Summary    `json:"summary"`
}

func toJSON(sn *snapshot.Snapshot) snapshotJSON {
	return snapshotJSON{ID: sn.ID, Time: sn.Time, Host: sn.Host, Username: sn.Username, Roots: sn.Roots, Tree: sn.Tree,
		Parent: sn.Parent, Tags: sn.Tags, Scan: sn.Scan, Totals: sn.Totals, Summary: sn.Summary}
}

func (a *cli) snapshotsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots",
		Args:  cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			sns, err := r.Snapshots(ctx, a.report)
			if err != nil {
				return err
			}
			if a.jsonOut {
				out := make([]snapshotJSON, 0, len(sns))
				for _, sn := range sns {
					out = append(out, toJSON(sn))
				}
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTime\tHost\tScan\tSize\tFiles\tPaths")
			for _, sn := range sns {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", sn.ID.Short(), sn.Time.Local().Format("2006-01-02 15:04:05"),
					sn.Host, sn.Scan.Mode, humanBytes(sn.Totals.Bytes), sn.Totals.Files, strings.Join(sn.Roots, " "))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			a.printf("%d snapshots\n", len(sns))
			return nil
		}),
	}
}
