package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/snapshot"
)

func (a *app) restoreCmd() *cobra.Command {
	var opt restore.Options
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT --target DIR",
		Short: "Restore a snapshot, or parts of it, into a directory",
		Args:  cobra.ExactArgs(1),
		RunE: runE(func(ctx context.Context, args []string) error {
			if opt.Target == "" {
				return errors.New("restore: --target is required")
			}
			r, _, release, err := a.openLocked(ctx, repo.LockShared, "restore")
			if err != nil {
				return err
			}
			defer release()
			sn, err := snapshot.Find(ctx, r, args[0])
			if err != nil {
				return err
			}
			opt.Owners = os.Geteuid() == 0
			res, err := restore.Run(ctx, r, sn.Tree, opt)
			if err != nil {
				return err
			}
			if a.jsonOut {
				if err := a.printJSON(map[string]any{"snapshot": sn.ID, "target": opt.Target, "files": res.Files, "dirs": res.Dirs,
					"other": res.Other, "bytes": res.Bytes, "errors": res.Errors}); err != nil {
					return err
				}
			} else {
				for _, e := range res.Errors {
					fmt.Fprintf(a.errOut, "error: %s: %s\n", e.Path, e.Err)
				}
				a.printf("restored %d files, %d dirs, %d other entries, %s from snapshot %s to %s\n",
					res.Files, res.Dirs, res.Other, humanBytes(res.Bytes), sn.ID.Short(), opt.Target)
			}
			if len(res.Errors) > 0 {
				return fmt.Errorf("restore: %d entries could not be restored", len(res.Errors))
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&opt.Target, "target", "t", "", "directory to restore into")
	cmd.Flags().StringArrayVarP(&opt.Include, "include", "i", nil, "restore only this snapshot path (repeatable), e.g. /home/me/docs")
	cmd.Flags().BoolVar(&opt.Overwrite, "overwrite", false, "replace existing files at the target")
	return cmd
}
