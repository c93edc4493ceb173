package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/state"
)

func (a *app) demoCmd() *cobra.Command {
	var dir string
	var files int
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Generate a sample tree, back it up twice into a local repository, restore it and verify the result",
		Args:  cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			if dir == "" {
				d, err := os.MkdirTemp("", "tidemark-demo-")
				if err != nil {
					return err
				}
				dir = d
				if !keep {
					defer os.RemoveAll(d)
				}
			}
			return a.runDemo(ctx, dir, files)
		}),
	}
	cmd.Flags().StringVar(&dir, "dir", "", "work in this directory (default: a temporary one, removed afterwards)")
	cmd.Flags().IntVar(&files, "files", 5000, "number of files in the sample tree")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory")
	return cmd
}

func (a *app) runDemo(ctx context.Context, dir string, files int) error {
	src, repoDir, target := filepath.Join(dir, "source"), filepath.Join(dir, "repo"), filepath.Join(dir, "restore")
	a.printf("demo in %s\n", dir)
	gs, err := gentree.Generate(src, gentree.Spec{Files: files, Seed: 1})
	if err != nil {
		return fmt.Errorf("generate sample tree: %w", err)
	}
	a.printf("generated %d files (%s) in %d directories under %s\n", gs.Files, humanBytes(uint64(gs.Bytes)), gs.Dirs, src)
	// Files written less than a second ago are always read again (their
	// ctime could still change within the same clock tick); wait so the
	// second backup shows the steady state.
	time.Sleep(1100 * time.Millisecond)
	be, err := local.Create(repoDir)
	if err != nil {
		return err
	}
	opt := a.repoOptions()
	opt.CacheDir = nil
	r, err := repo.Init(ctx, be, []byte("demo password"), opt)
	if err != nil {
		return err
	}
	defer r.Close()
	st, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	a.printf("created repository %s (password %q)\n", repoDir, "demo password")
	run := func(label string) error {
		t := time.Now()
		res, err := backup.Run(ctx, r, st, backup.Options{Paths: []string{src}})
		if err != nil {
			return err
		}
		s := res.Snapshot.Summary
		a.printf("%s: snapshot %s, %s scan, %d new / %d changed / %d unchanged files, read %s, added %s, total %s in %d files, %s\n",
			label, res.Snapshot.ID.Short(), res.Snapshot.Scan.Mode, s.FilesNew, s.FilesChanged, s.FilesUnchanged,
			humanBytes(s.BytesRead), humanBytes(s.BytesAdded), humanBytes(res.Snapshot.Totals.Bytes), res.Snapshot.Totals.Files,
			time.Since(t).Round(time.Millisecond))
		return nil
	}
	if err := run("first backup"); err != nil {
		return err
	}
	changed, err := gentree.Modify(src, 10, 2)
	if err != nil {
		return err
	}
	a.printf("changed %d files\n", len(changed))
	time.Sleep(1100 * time.Millisecond)
	if err := run("second backup"); err != nil {
		return err
	}
	sn, err := latestSnapshot(ctx, r)
	if err != nil {
		return err
	}
	res, err := restore.Run(ctx, r, sn.Tree, restore.Options{Target: target, Owners: os.Geteuid() == 0})
	if err != nil {
		return err
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("restore reported %d errors, first: %s: %s", len(res.Errors), res.Errors[0].Path, res.Errors[0].Err)
	}
	if err := gentree.Compare(src, filepath.Join(target, src)); err != nil {
		return fmt.Errorf("restored tree differs from the source: %w", err)
	}
	a.printf("restored %d files (%s) to %s: identical to the source\n", res.Files, humanBytes(res.Bytes), target)
	sum, err := check.Run(ctx, r, check.Options{ReadData: true}, func(p check.Problem) {
		fmt.Fprintf(a.errOut, "problem: %s %s: %s\n", p.Kind, p.Object, p.Err)
	})
	if err != nil {
		return err
	}
	if sum.Problems > 0 {
		return fmt.Errorf("check found %d problems", sum.Problems)
	}
	a.printf("check --read-data: %d packs, %d blobs verified, no problems\n", sum.PacksRead, sum.Blobs)
	if a.jsonOut {
		return a.printJSON(map[string]any{"ok": true, "dir": dir, "files": gs.Files, "snapshot": sn.ID})
	}
	return nil
}
