package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
	"golang.org/x/term"
)

// dumpJSON is dump --json's output (with --target).
type dumpJSON struct {
	*app.DumpResult
	Target string `json:"target"`
}

func (a *cli) dumpCmd() *cobra.Command {
	var opt app.DumpOptions
	var ff filterFlags
	var target string
	cmd := &cobra.Command{
		Use:   "dump SNAPSHOT[:DIR] PATH",
		Short: "Write a file from a snapshot to stdout, or a directory as a tar or zip archive",
		Long: `Write the file PATH of SNAPSHOT (an ID, a unique prefix, or "latest": the
newest snapshot the filters --host, --path and --tag select) to stdout, as
it is; a directory is written as a tar archive (--archive zip for zip),
its entries named by their path in the snapshot without the leading '/'.
PATH "/" writes the whole snapshot. With SNAPSHOT:DIR, PATH is taken below
the directory DIR, and the archive's entries are named from there: "dump
latest:/home/me/work /" puts work's contents at the top of the archive.

Content is streamed (a few chunks are read ahead), so memory does not grow
with the size of the file. Tar keeps modes, owners, nanosecond mtimes,
xattrs, symlinks, hard links, fifos and devices (sockets cannot be stored,
and are named in a warning); sparse files are written in full. Zip keeps
modes, mtimes and symlinks, stores each hard link's content again, and
leaves out fifos, devices and sockets with a warning.

An archive is not written to a terminal: redirect stdout, or give --target
FILE, which is written under a temporary name and put in place when
complete (an existing FILE is not overwritten).`,
		Example: `  tidemark dump latest /etc/hosts
  tidemark dump latest /home/me/work > work.tar
  tidemark dump --archive zip --target work.zip latest:/home/me/work /
  tidemark dump latest --path /etc --host server /etc/nginx | tar -tv`,
		Args: needArgs(2, 2, "give the snapshot and the path to dump, e.g. tidemark dump latest /etc/hosts"),
		RunE: runE(func(ctx context.Context, args []string) error {
			f, err := ff.filter()
			if err != nil {
				return err
			}
			opt.Snapshot, opt.Path, opt.Filter = args[0], args[1], f
			var out *dumpOutput
			if target != "" {
				if out, err = newDumpOutput(target); err != nil {
					return err
				}
				defer out.abort()
			}
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			var buf *bufio.Writer
			res, err := r.Dump(ctx, opt, func(format string) (io.Writer, error) {
				var w io.Writer = a.out
				switch {
				case out != nil:
					if err := out.create(); err != nil {
						return nil, err
					}
					w = out.f
				case format != app.DumpFile && isTerminal(a.out):
					return nil, fmt.Errorf("dump: not writing a %s archive to a terminal: redirect the output, or use --target FILE", format)
				}
				// Archive headers are small writes; content goes through
				// in chunk-sized ones, which the buffer passes on.
				buf = bufio.NewWriterSize(w, 256<<10)
				return buf, nil
			}, a.report)
			if err == nil && buf != nil {
				err = buf.Flush()
			}
			if err != nil {
				return err
			}
			if out != nil {
				if err := out.commit(); err != nil {
					return err
				}
				if a.jsonOut {
					return a.printJSON(dumpJSON{DumpResult: res, Target: target})
				}
				what := fmt.Sprintf("%s (%s)", displayPath(res.Path), humanBytes(res.Bytes))
				if res.Format != app.DumpFile {
					what = fmt.Sprintf("%s as %s: %d files, %d directories, %d hard links, %d other entries, %s", displayPath(res.Path), res.Format,
						res.Files, res.Dirs, res.Links, res.Other, humanBytes(res.Bytes))
				}
				a.printf("dumped %s from snapshot %s to %s\n", what, res.Snapshot.Short(), displayPath(target))
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&opt.Archive, "archive", "a", "tar", "archive `FORMAT` of a directory: tar or zip")
	cmd.Flags().StringVarP(&target, "target", "t", "", "write to `FILE` (not overwritten if it exists) instead of stdout")
	ff.register(cmd.Flags())
	return cmd
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// dumpOutput is dump's --target: a temporary file beside it, linked into
// place once complete, so an interrupted dump leaves no partial file
// under the name given and an existing file is never overwritten.
type dumpOutput struct {
	path string
	f    *os.File
	done bool
}

func newDumpOutput(path string) (*dumpOutput, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("--target %s: exists; not overwritten (remove it, or give another name)", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("--target %s: %w", path, err)
	}
	return &dumpOutput{path: path}, nil
}

// create makes the temporary file; dump calls it once the snapshot and
// path are found, so a mistyped path makes no file.
func (o *dumpOutput) create() error {
	f, err := os.CreateTemp(filepath.Dir(o.path), "."+filepath.Base(o.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("--target %s: %w", o.path, err)
	}
	o.f = f
	return nil
}

// commit makes the complete file appear under its name.
func (o *dumpOutput) commit() error {
	if o.f == nil {
		return nil
	}
	err := o.f.Sync()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--target %s: %w", o.path, err)
	}
	// A hard link fails if the name was taken meanwhile; where links are
	// not supported, the name was checked free at the start.
	if err := os.Link(o.f.Name(), o.path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("--target %s: created by someone else meanwhile; not overwritten", o.path)
		}
		if err := os.Rename(o.f.Name(), o.path); err != nil {
			return fmt.Errorf("--target %s: %w", o.path, err)
		}
	} else {
		os.Remove(o.f.Name())
	}
	o.done = true
	return nil
}

// abort removes the temporary file of a dump that did not complete.
func (o *dumpOutput) abort() {
	if o.f != nil && !o.done {
		o.f.Close()
		os.Remove(o.f.Name())
	}
}
