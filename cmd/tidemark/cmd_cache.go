package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

func (a *app) cacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Manage the local cache of a repository",
	}
	cmd.AddCommand(a.cacheRebuildCmd())
	return cmd
}

func (a *app) cacheRebuildCmd() *cobra.Command {
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
		Args: cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			if a.noCache {
				return errors.New("cache rebuild: --no-cache was given, so there is no cache to rebuild")
			}
			if host == "" {
				var err error
				if host, err = os.Hostname(); err != nil {
					return fmt.Errorf("hostname: %w", err)
				}
			}
			r, err := a.openRepo(ctx)
			if err != nil {
				return err
			}
			dir, err := a.repoCacheDir(r.Config().ID)
			r.Close()
			if err != nil {
				return err
			}
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("cache rebuild: remove %s: %w", dir, err)
			}
			// Opening builds the index table afresh.
			if r, err = a.openRepo(ctx); err != nil {
				return err
			}
			defer r.Close()
			lock, err := r.Lock(ctx, false, "cache rebuild")
			if err != nil {
				return err
			}
			defer lock.Unlock()
			trees := 0
			err = r.Raw().List(ctx, backend.Tree, func(name string, _ int64) error {
				if _, err := r.Backend().Load(ctx, backend.Handle{Type: backend.Tree, Name: name}, 0, 0); err != nil {
					return fmt.Errorf("cache tree pack %s: %w", name, err)
				}
				trees++
				return nil
			})
			if err != nil {
				return fmt.Errorf("cache rebuild: %w", err)
			}
			sns, errs, err := snapshot.All(ctx, r)
			if err != nil {
				return fmt.Errorf("cache rebuild: %w", err)
			}
			for _, e := range errs {
				fmt.Fprintf(a.errOut, "warning: %v (not in the history)\n", e)
			}
			st, err := a.openState(r)
			if err != nil {
				return err
			}
			defer st.Close()
			history := 0
			for _, sn := range sns {
				if sn.Host != host {
					continue
				}
				history++
				if err := st.RecordBackup(ctx, state.Backup{Snapshot: sn.ID.String(), Time: sn.Time, Host: sn.Host, Roots: sn.Roots,
					Mode: sn.Scan.Mode, Reason: sn.Scan.Reason, FilesNew: sn.Summary.FilesNew, FilesChanged: sn.Summary.FilesChanged,
					FilesUnchanged: sn.Summary.FilesUnchanged, BytesRead: sn.Summary.BytesRead, BytesAdded: sn.Summary.BytesAdded,
					TotalBytes: sn.Totals.Bytes, TotalFiles: sn.Totals.Files, Errors: sn.Summary.Errors, Duration: sn.Summary.Duration}); err != nil {
					return err
				}
			}
			if err := st.MarkRebuilt(ctx, time.Now()); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"dir": dir, "blobs": r.Index().Len(), "tree_packs": trees, "snapshots": len(sns), "history": history})
			}
			a.printf("rebuilt %s: index of %d blobs, %d tree packs, %d snapshot records, %d backups of %s in the history\n",
				dir, r.Index().Len(), trees, len(sns), history, host)
			a.printf("the next backup of each set scans fully (the stat cache cannot be recreated from the repository)\n")
			return nil
		}),
	}
	cmd.Flags().StringVar(&host, "host", "", "host whose backups make up the history (default: this machine's name)")
	return cmd
}
