package main

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
)

func (a *cli) cacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Manage the local cache of a repository",
	}
	cmd.AddCommand(a.cacheRebuildCmd())
	return cmd
}

func (a *cli) cacheRebuildCmd() *cobra.Command {
	var host string
	cmd := &cobra.Command{
		Use:   "rebuild",
		Short: "Recreate the local cache and state database from the repository alone",
		Long: `Delete this repository's local cache directory (index table, cached trees,
index files and snapshots, and the state database) and build it again from the
repository: the index, every tree pack and snapshot record, and the backup
history of this host. The stat cache cannot be recreated, so the next backup of
each set scans fully and says that the cache was rebuilt. Stop "tidemark
watch" for this repository first.`,
		Args: noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			res, err := app.RebuildCache(ctx, a.options(false), host, a.report)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			a.printf("rebuilt %s: index of %d blobs, %d tree packs, %d snapshot records, %d backups of %s in the history\n",
				res.Dir, res.Blobs, res.TreePacks, res.Snapshots, res.History, res.Host)
			a.printf("the next backup of each set scans fully (the stat cache cannot be recreated from the repository)\n")
			return nil
		}),
	}
	cmd.Flags().StringVar(&host, "host", "", "host whose backups make up the history (default: this machine's name)")
	return cmd
}
