package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/snapshot"
)

func (a *cli) snapshotsCmd() *cobra.Command {
	var ff filterFlags
	var groupBy string
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots",
		Long: `List the snapshots, oldest first, or those the filters select: --host and
--path (the backed-up paths must include it, exactly) are repeatable, and
--tag a,b selects snapshots with both tags, a repeated --tag either list.
--group-by host,paths,tags lists them in groups.

With --json: a list of snapshots, or with --group-by a list of groups
({"group_key": {...}, "snapshots": [...]}).

Examples:
  tidemark snapshots --host laptop --path /home/me/work
  tidemark snapshots --tag monthly --group-by host,paths`,
		Args: noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			f, err := ff.filter()
			if err != nil {
				return err
			}
			opt := app.SnapshotsOptions{Filter: f, GroupBy: groupBy}
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			groups, err := r.Snapshots(ctx, opt, a.report)
			if err != nil {
				return err
			}
			if a.jsonOut {
				if groupBy != "" {
					if groups == nil {
						groups = []app.SnapshotGroup{}
					}
					return a.printJSON(groups)
				}
				out := []app.SnapshotInfo{}
				for _, g := range groups {
					out = append(out, g.Snapshots...)
				}
				return a.printJSON(out)
			}
			n := 0
			for i, g := range groups {
				if groupBy != "" {
					if i > 0 {
						a.printf("\n")
					}
					a.printf("%s:\n", groupTitle(g.Key, groupBy))
				}
				if err := a.printSnapshotTable(g.Snapshots); err != nil {
					return err
				}
				n += len(g.Snapshots)
			}
			a.printf("%d snapshots\n", n)
			return nil
		}),
	}
	ff.register(cmd.Flags())
	cmd.Flags().StringVarP(&groupBy, "group-by", "g", "", "group the listing by any of host, paths and tags, comma-separated, e.g. host,paths")
	return cmd
}

// printSnapshotTable prints one table of snapshots.
func (a *cli) printSnapshotTable(sns []app.SnapshotInfo) error {
	if a.quiet {
		return nil
	}
	tw := tabwriter.NewWriter(a.out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTime\tHost\tTags\tScan\tSize\tFiles\tPaths")
	for _, sn := range sns {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", sn.ID.Short(), sn.Time.Local().Format("2006-01-02 15:04:05"),
			displayPath(sn.Host), displayPaths(sn.Tags, ","), sn.Scan.Mode, humanBytes(sn.Totals.Bytes), sn.Totals.Files,
			displayPaths(sn.Roots, " "))
	}
	return tw.Flush()
}

// groupTitle describes a group for people: "host laptop, paths /etc /usr,
// tags none".
func groupTitle(k snapshot.GroupKey, spec string) string {
	by, _ := snapshot.ParseGroupBy(spec) // parsed by the listing already
	var parts []string
	if by.Host {
		parts = append(parts, "host "+displayPath(k.Host))
	}
	if by.Paths {
		parts = append(parts, "paths "+displayPaths(k.Paths, " "))
	}
	if by.Tags {
		tags := displayPaths(k.Tags, ",")
		if tags == "" {
			tags = "none"
		}
		parts = append(parts, "tags "+tags)
	}
	if len(parts) == 0 {
		return "all snapshots"
	}
	return strings.Join(parts, ", ")
}
