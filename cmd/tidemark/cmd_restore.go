package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
)

func (a *cli) restoreCmd() *cobra.Command {
	var opt app.RestoreOptions
	var ff filterFlags
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT --target DIR",
		Short: "Restore a snapshot, or parts of it, into a directory",
		Long: `Restore SNAPSHOT, an ID, a unique prefix of one, or "latest": the newest
snapshot the filters (--host, --path, --tag) select, into DIR, where its
paths are recreated below DIR (/home/me/work becomes DIR/home/me/work).

Entries already at the target as the snapshot has them (files with the
same content, compared chunk by chunk against the snapshot without
downloading it; symlinks with the same target) are kept and counted as
unchanged, so restoring again into the same place is not an error. Other
existing files are left alone and reported, unless --overwrite replaces
them. Symlinks at the target are never followed.

Examples:
  tidemark restore latest --target /tmp/restore
  tidemark restore latest --path /etc --host server --target /tmp/etc
  tidemark restore 1a2b3c4d --target / --include /home/me/work/report.odt --overwrite`,
		Args: needArgs(1, 1, "give the snapshot to restore (an ID, a unique prefix or latest), e.g. tidemark restore latest --target /tmp/restore"),
		RunE: runE(func(ctx context.Context, args []string) error {
			f, err := ff.filter()
			if err != nil {
				return err
			}
			opt.Snapshot, opt.Filter = args[0], f
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			res, err := r.Restore(ctx, opt)
			if err != nil {
				return err
			}
			if a.jsonOut {
				if err := a.printJSON(res); err != nil {
					return err
				}
			} else {
				for _, e := range res.Errors {
					fmt.Fprintf(a.errOut, "error: %s: %s\n", displayPath(e.Path), displayText(e.Err))
				}
				a.printf("restored %d files, %d dirs, %d other entries, %s from snapshot %s to %s\n",
					res.Files, res.Dirs, res.Other, humanBytes(res.Bytes), res.Snapshot.Short(), displayPath(res.Target))
				if res.Unchanged > 0 {
					a.printf("%d entries (%s) were already there unchanged and kept\n", res.Unchanged, humanBytes(res.UnchangedBytes))
				}
			}
			if len(res.Errors) > 0 {
				return fmt.Errorf("restore: %d entries could not be restored", len(res.Errors))
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&opt.Target, "target", "t", "", "directory to restore into")
	cmd.Flags().StringArrayVarP(&opt.Include, "include", "i", nil, "restore only this snapshot path (repeatable), e.g. /home/me/docs")
	cmd.Flags().BoolVar(&opt.Overwrite, "overwrite", false, "replace existing entries at the target that differ from the snapshot")
	ff.register(cmd.Flags())
	return cmd
}
