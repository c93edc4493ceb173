package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/chunker"
	"github.com/tidemark/tidemark/internal/fs"
)

// The file saver: workers read the files the walker hands over, chunk
// them and store the chunks; the last job of a directory finishes its tree.

// worker reads files handed over by the walker.
func (a *archiver) worker(ctx context.Context) {
	ch := a.repo.Chunker().New(nil)
	for j := range a.jobs {
		if ctx.Err() == nil {
			a.readFile(ctx, j, ch)
		} else {
			j.dir.nodes[j.idx].Type = 0
		}
		j.dir.releaseDir()
		j.dir.childDone(a)
	}
}

func (a *archiver) readFile(ctx context.Context, j fileJob, ch *chunker.Chunker) {
	d := j.dir
	n := &d.nodes[j.idx]
	rec := &d.recs[j.idx]
	p := joinPath(d.path, n.Name)
	a.prog.Current.Store(p)
	drop := func(err error, warning bool) {
		a.report(p, err, warning)
		n.Type = 0
	}
	began := time.Now()
	f, err := d.dir.OpenFile(n.Name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			drop(errors.New("vanished before it could be read"), true)
		} else {
			drop(err, false)
		}
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		drop(err, false)
		return
	}
	if !st.IsRegular() {
		drop(errors.New("was replaced by something that is not a regular file"), false)
		return
	}
	// If the file was replaced between lstat and open, describe what was
	// read.
	applyStat(n, rec, st)
	ch.Reset(f)
	var content []blob.ID
	var size uint64
	for {
		chunk, err := ch.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			drop(err, false)
			return
		}
		id := a.repo.Key().ID(chunk)
		if _, err := a.repo.SaveBlob(a.storeCtx, blob.Data, id, chunk); err != nil {
			a.fatal(fmt.Errorf("store %s: %w", p, err))
			n.Type = 0
			return
		}
		content = append(content, id)
		size += uint64(len(chunk))
		a.prog.BytesRead.Add(uint64(len(chunk)))
	}
	n.Content, n.Size = content, size
	if xs, err := d.dir.Xattrs(n.Name); err != nil {
		a.report(p, err, true)
	} else {
		n.Xattrs = convertXattrs(xs)
	}
	after, err := f.Stat()
	if err != nil || after.Size != st.Size || after.MTime != st.MTime || after.CTime != st.CTime || int64(size) != st.Size {
		a.report(p, errors.New("changed while it was read; the snapshot holds what was read and the next backup reads it again"), true)
		rec.CTime = 0
	} else if st.CTime > began.Add(-a.opt.RacyWindow).UnixNano() {
		// Changed within the timestamp granularity of our read: a later
		// write could keep the same ctime, so do not trust it next time.
		rec.CTime = 0
	}
	a.prog.Files.Add(1)
	a.prog.Bytes.Add(size)
}
