package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/restore"
)

func (a *cli) demoCmd() *cobra.Command {
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

func (a *cli) runDemo(ctx context.Context, dir string, files int) error {
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
	opt := a.options(false)
	opt.Repository, opt.CacheDir, opt.NoCache = repoDir, filepath.Join(dir, "cache"), false
	opt.Password = func() ([]byte, error) { return []byte("demo password"), nil }
	r, err := app.Init(ctx, opt)
	if err != nil {
		return err
	}
	defer r.Close()
	a.printf("created repository %s (password %q)\n", repoDir, "demo password")
	run := func(label string) error {
		t := time.Now()
		res, err := r.Backup(ctx, app.BackupOptions{Paths: []string{src}, NoJournal: true})
		if err != nil {
			return err
		}
		s := res.Summary
		a.printf("%s: snapshot %s, %s scan, %d new / %d changed / %d unchanged files, read %s, added %s, total %s in %d files, %s\n",
			label, res.ID.Short(), res.Scan.Mode, s.FilesNew, s.FilesChanged, s.FilesUnchanged,
			humanBytes(s.BytesRead), humanBytes(s.BytesAdded), humanBytes(res.Totals.Bytes), res.Totals.Files,
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
	res, err := r.Restore(ctx, app.RestoreOptions{Snapshot: "latest", Options: restore.Options{Target: target}})
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
	chk, err := r.Check(ctx, check.Options{ReadData: true}, a.report)
	if err != nil {
		return err
	}
	if n := len(chk.Problems); n > 0 {
		return fmt.Errorf("check found %d problems", n)
	}
	a.printf("check --read-data: %d packs, %d blobs verified, no problems\n", chk.Summary.PacksRead, chk.Summary.Blobs)
	if a.jsonOut {
		return a.printJSON(struct {
			OK       bool    `json:"ok"`
			Dir      string  `json:"dir"`
			Files    int     `json:"files"`
			Snapshot blob.ID `json:"snapshot"`
		}{true, dir, gs.Files, res.Snapshot})
	}
	return nil
}
