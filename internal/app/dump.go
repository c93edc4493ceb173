package app

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/dump"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// DumpOptions say what Dump writes.
type DumpOptions struct {
	// Snapshot is an ID, a unique prefix or "latest" (within Filter);
	// "SNAPSHOT:DIR" dumps below DIR, whose contents are then the top of
	// the archive (restic's syntax).
	Snapshot string
	Filter   snapshot.Filter
	// Path is the file or directory to dump, from the snapshot's root
	// (or DIR); "" or "/" dumps all of it as an archive.
	Path string
	// Archive is the format of a directory: tar (the default) or zip.
	// A file is always written as it is.
	Archive string
}

// Dump formats.
const (
	// DumpFile is a file's content, as it is.
	DumpFile = "file"
)

// DumpResult says what Dump wrote.
type DumpResult struct {
	Snapshot blob.ID `json:"snapshot"`
	// Path is the snapshot path dumped ("/" for all of it).
	Path string `json:"path"`
	// Format is "file", "tar" or "zip".
	Format string `json:"format"`
	dump.Counts
}

// Dump writes a file of a snapshot, or a directory as an archive, to the
// writer open returns. open is called once the snapshot and path are
// known to exist, with the format that will be written, so a front end
// can refuse to write an archive to a terminal, and creates no output for
// a mistyped path. Entries an archive cannot hold (sockets; in zip also
// fifos and devices) are sent as Warning events. A file is streamed with
// a bounded read-ahead, whatever its size.
func (a *Repo) Dump(ctx context.Context, opt DumpOptions, open func(format string) (io.Writer, error), events func(Event)) (*DumpResult, error) {
	format, err := dump.ParseFormat(orDefault(opt.Archive, string(dump.Tar)))
	if err != nil {
		return nil, err
	}
	lock, err := a.lock(ctx, repo.LockShared, "dump")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	ref, sub := SplitSubpath(opt.Snapshot)
	sn, err := a.Snapshot(ctx, ref, opt.Filter)
	if err != nil {
		return nil, err
	}
	sub = strings.Trim(sub, "/")
	base, err := snapshot.FindPath(ctx, a.r, sn.Tree, sub)
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", opt.Snapshot, err)
	}
	if base.Type != snapshot.Dir {
		return nil, fmt.Errorf("dump %s: /%s is a %s, not a directory", opt.Snapshot, sub, base.Type)
	}
	rel := strings.Trim(opt.Path, "/")
	n, err := snapshot.FindPath(ctx, a.r, base.Subtree, rel)
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	res := &DumpResult{Snapshot: sn.ID, Path: "/" + joinPath(sub, rel)}
	src := dumpSource{a.r}
	switch n.Type {
	case snapshot.File:
		res.Format = DumpFile
		w, err := open(DumpFile)
		if err != nil {
			return nil, err
		}
		res.Bytes, err = dump.WriteFile(ctx, src, n, w)
		if err != nil {
			return nil, fmt.Errorf("dump %s: %w", res.Path, err)
		}
		res.Files = 1
		return res, nil
	case snapshot.Dir:
	default:
		what := n.Type.String()
		if n.Type == snapshot.Symlink {
			what += " to " + n.Target
		}
		return nil, fmt.Errorf("dump: %s is a %s; dump writes files, and directories as archives", res.Path, what)
	}
	res.Format = string(format)
	w, err := open(res.Format)
	if err != nil {
		return nil, err
	}
	root := dump.Root{Node: n, Path: joinPath(sub, rel), Name: rel}
	res.Counts, err = dump.WriteArchive(ctx, src, w, root, dump.Options{Format: format, Skip: func(name, why string) {
		emitter(events).send(Warning{Message: fmt.Sprintf("%s: not in the archive: %s", name, why)})
	}})
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", res.Path, err)
	}
	return res, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func joinPath(dir, name string) string {
	switch {
	case dir == "":
		return name
	case name == "":
		return dir
	}
	return dir + "/" + name
}

// dumpSource reads a dump's trees and data through the repository (and
// its local cache).
type dumpSource struct {
	r *repo.Repository
}

func (s dumpSource) LoadTree(ctx context.Context, id blob.ID) (*snapshot.Tree, error) {
	return snapshot.LoadTree(ctx, s.r, id)
}

func (s dumpSource) LoadData(ctx context.Context, id blob.ID) ([]byte, error) {
	return s.r.LoadBlob(ctx, blob.Data, id)
}
