package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// leader is the first restored file of a hard-link group. done is closed
// once its content is written; ok (set before) says it succeeded.
type leader struct {
	dir      *dirJob
	path     string
	done     chan struct{}
	ok       bool
	dev, ino uint64
}

// fileJob is a regular file handed to a worker: either f is an empty file
// the walker created, or f is a file that was already there (existing),
// opened for reading, or linkTo names the file to hard-link to.
type fileJob struct {
	dir    *dirJob
	node   *snapshot.Node
	path   string
	f      *fs.File
	lead   *leader // set when this file is its group's leader
	linkTo *leader
	// existing: f is the file that was in the way, of the snapshot's size;
	// the worker keeps it if its content is the snapshot's. It is never
	// removed but to be replaced (as the overwrite mode allows).
	existing bool
	// sameMeta: the file in the way has the snapshot's size and mtime,
	// and --overwrite if-changed takes it as unchanged; f is nil.
	sameMeta bool
	// existingStat is its stat from when it was opened.
	existingStat fs.Stat
	// replaced: f was created in the place of something else.
	replaced bool
}

// restoreFile creates the file (so existing entries are dealt with in walk
// order) and hands it to a worker, or queues a hard link to its group's
// leader.
func (w *restorer) restoreFile(ctx context.Context, d *dirJob, n *snapshot.Node, p string) {
	j := fileJob{dir: d, node: n, path: p}
	key := w.linkKey(n, p)
	if ld := w.links[key]; ld != nil {
		j.linkTo = ld
	} else {
		var err error
		if j, err = w.createOrOpen(j); err != nil {
			w.report(p, n, err)
			return
		}
		if key != "" {
			j.lead = &leader{dir: d, path: p, done: make(chan struct{})}
			w.links[key] = j.lead
		}
	}
	d.pending.Add(1)
	select {
	case w.jobs <- j:
	case <-ctx.Done():
		w.abandon(j)
		d.pending.Add(-1) // the walker still holds d
	}
}

// createOrOpen creates the file for j's node or, when an entry is in its
// place, decides about it (see inspect): a regular file of the node's
// size is opened for reading (existing set) so that a worker can tell
// whether it already holds the content; one --overwrite if-changed takes
// as unchanged is marked sameMeta; anything else in the way is replaced
// or left as the overwrite mode says. The file is opened without
// following a symlink, and checked to be the one just looked at.
func (w *restorer) createOrOpen(j fileJob) (fileJob, error) {
	dir, n := j.dir.dir, j.node
	f, err := dir.CreateFile(n.Name, 0o600)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		j.f = f
		return j, err
	}
	v, err := w.inspect(dir, n)
	if err != nil {
		return j, err
	}
	switch v.kind {
	case sameMeta:
		j.sameMeta, j.existingStat = true, v.st
		return j, nil
	case compare:
		j.f, j.existing, j.existingStat = v.f, true, v.st
		return j, nil
	}
	// Gone meanwhile, or to be replaced.
	j.f, j.replaced, err = w.createFile(dir, n)
	return j, err
}

// createFile creates n's file in dir, replacing what is in the way as the
// overwrite mode allows.
func (w *restorer) createFile(dir *fs.Dir, n *snapshot.Node) (f *fs.File, replaced bool, err error) {
	replaced, err = w.place(dir, n, "create file", func() error {
		var err error
		f, err = dir.CreateFile(n.Name, 0o600)
		return err
	})
	return f, replaced, err
}

// place runs create for n's name in dir; the errors of create name the
// operation (op) themselves. If something is there already it is removed
// (not followed) and create retried when the overwrite mode allows it
// (replaced says so); directories are never removed.
func (w *restorer) place(dir *fs.Dir, n *snapshot.Node, op string, create func() error) (replaced bool, err error) {
	err = create()
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return false, err
	}
	st, err := dir.Lstat(n.Name)
	if err != nil {
		return false, fmt.Errorf("%s: inspect existing entry: %w", op, err)
	}
	if err := w.replaceable(st, n); err != nil {
		return false, err
	}
	if err := dir.Remove(n.Name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%s: remove existing entry: %w", op, err)
	}
	return true, create()
}

// abandon undoes a job that will not run: an empty file is not the
// snapshot's content, so it goes; a file that was there stays.
func (w *restorer) abandon(j fileJob) {
	if j.f != nil {
		j.f.Close()
		if !j.existing {
			j.dir.dir.Remove(j.node.Name)
		}
	}
	if j.lead != nil {
		close(j.lead.done)
	}
}

func (w *restorer) worker(ctx context.Context) {
	for j := range w.jobs {
		switch {
		case ctx.Err() != nil:
			w.abandon(j)
		case j.linkTo != nil:
			w.linkFile(ctx, j)
		default:
			w.writeFile(ctx, j)
		}
		j.dir.childDone(w)
	}
}

// writeFile fills the file the walker created and sets its metadata. On
// failure the file is removed: a restore never leaves wrong content behind.
func (w *restorer) writeFile(ctx context.Context, j fileJob) {
	n := j.node
	ok := false
	if j.lead != nil {
		defer func() {
			j.lead.ok = ok
			close(j.lead.done)
		}()
	}
	if j.existing || j.sameMeta {
		keep, err := w.keepExisting(ctx, j)
		if keep || err != nil {
			if err != nil && ctx.Err() == nil {
				w.report(j.path, n, err)
			}
			ok = keep
			return
		}
		// Different content, and the mode says replace it.
		if j.f, _, err = w.createFile(j.dir.dir, n); err != nil {
			w.report(j.path, n, err)
			return
		}
		j.existing, j.replaced = false, true
	}
	err := w.writeContent(ctx, j.f, n)
	if err == nil && j.lead != nil {
		var st fs.Stat
		if st, err = j.f.Stat(); err == nil {
			j.lead.dev, j.lead.ino = st.Dev, st.Ino
		}
	}
	if err != nil {
		j.f.Close()
		if uerr := j.dir.dir.Remove(n.Name); uerr != nil && !errors.Is(uerr, fs.ErrNotExist) {
			err = fmt.Errorf("%w; removing the incomplete file failed: %w", err, uerr)
		}
		if ctx.Err() == nil {
			w.report(j.path, n, err)
		}
		return
	}
	metaErr := w.setMeta(j.dir.dir, n.Name, j.f, n)
	if err := j.f.Close(); err != nil {
		metaErr = errors.Join(metaErr, err)
	}
	if metaErr != nil {
		w.report(j.path, n, metaErr)
	}
	ok = true
	w.restored(j.path, n, j.replaced)
	if w.opt.Verify {
		w.verifyWritten(ctx, j)
	}
}

var zeros [64 << 10]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeros))
		if !bytes.Equal(b[:k], zeros[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}

// writeContent writes n's chunks in order into f, a file just created
// (empty). All-zero chunks are skipped and the size set with ftruncate at
// the end, which leaves holes where the source most likely had them; a
// file whose last chunk was written needs no ftruncate (most files: one
// system call fewer a file).
func (w *restorer) writeContent(ctx context.Context, f *fs.File, n *snapshot.Node) error {
	var off, end uint64
	for _, id := range n.Content {
		data, err := w.blobs.load(ctx, id)
		if err != nil {
			return fmt.Errorf("load content: %w", err)
		}
		if off+uint64(len(data)) > n.Size {
			return fmt.Errorf("content exceeds the recorded size %d: %w", n.Size, repo.ErrCorrupt)
		}
		if !isZero(data) {
			if _, err := f.WriteAt(data, int64(off)); err != nil {
				return err
			}
			end = off + uint64(len(data))
		}
		off += uint64(len(data))
		w.prog.Bytes.Add(uint64(len(data)))
	}
	if off != n.Size {
		return fmt.Errorf("content is %d bytes, the recorded size is %d: %w", off, n.Size, repo.ErrCorrupt)
	}
	if end == off {
		return nil
	}
	return f.Truncate(int64(off))
}

// keepExisting decides about the file that was in j's place (and closes
// it): when it holds the snapshot's content it is kept, its metadata set
// and counted as unchanged (keep true, and it becomes the leader of its
// hard-link group); when it differs, an error says it was not overwritten,
// unless the overwrite mode asks the caller to replace it (keep and err
// nil). A file --overwrite if-changed takes as unchanged by its size and
// mtime is kept unread, unless Verify asks for it to be read.
func (w *restorer) keepExisting(ctx context.Context, j fileJob) (keep bool, err error) {
	n := j.node
	var same bool
	var cerr error
	switch {
	case j.sameMeta:
		same = true
	default:
		same, cerr = w.sameContent(ctx, j.f, n)
		j.f.Close()
	}
	switch {
	case ctx.Err() != nil:
		return false, ctx.Err()
	case same:
		// By name, not through the descriptor: it was opened for reading,
		// and on Windows that handle may not set attributes. The fs calls
		// do not follow symlinks.
		if err := w.setMeta(j.dir.dir, n.Name, nil, n); err != nil {
			w.report(j.path, nil, err)
		}
		if j.lead != nil {
			j.lead.dev, j.lead.ino = j.existingStat.Dev, j.existingStat.Ino
		}
		w.kept(j.path, n)
		switch {
		case j.sameMeta && w.opt.Verify:
			w.verifyWritten(ctx, j)
		case !j.sameMeta:
			// Its content was just compared: that is a verification.
			w.verified.Add(1)
			w.verifiedBytes.Add(n.Size)
		}
		return true, nil
	}
	if err := w.replaceable(j.existingStat, n); err != nil {
		if cerr != nil && errors.Is(err, errExists) {
			return false, fmt.Errorf("%w; comparing it with the snapshot failed: %w", err, cerr)
		}
		return false, err
	}
	return false, nil
}

// verifyWritten reads j's file back (by name, without following a
// symlink, checking it is the file just written or kept) and compares it
// with the snapshot's content; a difference is listed as a mismatch.
func (w *restorer) verifyWritten(ctx context.Context, j fileJob) {
	n := j.node
	f, err := j.dir.dir.OpenFile(n.Name)
	if err != nil {
		w.mismatch(j.path, fmt.Errorf("verify: %w", err))
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.IsRegular() {
		w.mismatch(j.path, fmt.Errorf("verify: not the regular file restored (%v)", err))
		return
	}
	same, err := w.sameContent(ctx, f, n)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		w.mismatch(j.path, fmt.Errorf("verify: read back: %w", err))
	case !same:
		w.mismatch(j.path, errors.New("verify: the content read back differs from the snapshot's"))
	default:
		w.verified.Add(1)
		w.verifiedBytes.Add(n.Size)
	}
}

func (w *restorer) mismatch(p string, err error) {
	w.mu.Lock()
	w.mismatches = append(w.mismatches, FileError{Path: w.display(p), Err: fs.ErrorText(err)})
	w.mu.Unlock()
}

// sameContent reports whether f holds n's content. It reads the file in
// the snapshot's chunks (their lengths from the index) and compares their
// keyed hashes with the chunk IDs, so nothing is downloaded. A chunk the
// index does not know makes the file count as different.
func (w *restorer) sameContent(ctx context.Context, f *fs.File, n *snapshot.Node) (bool, error) {
	var buf []byte
	var off uint64
	for _, id := range n.Content {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		loc, ok := w.repo.Index().Lookup(id)
		if !ok || loc.Type != blob.Data || off+uint64(loc.RawLen) > n.Size {
			return false, nil
		}
		size := int(loc.RawLen)
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		if _, err := io.ReadFull(f, buf[:size]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return false, nil // shrunk meanwhile
			}
			return false, err
		}
		if w.repo.Key().ID(buf[:size]) != id {
			return false, nil
		}
		off += uint64(size)
	}
	if off != n.Size {
		return false, nil
	}
	// Grown meanwhile?
	var one [1]byte
	if k, err := f.Read(one[:]); k > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		return false, err
	}
	return true, nil
}

// linkFile waits for the group's leader and links to it. If the leader
// failed, or cannot be linked to (too many links, another filesystem
// mounted inside the target), the content is written as a separate file.
func (w *restorer) linkFile(ctx context.Context, j fileJob) {
	ld := j.linkTo
	select {
	case <-ld.done:
	case <-ctx.Done():
		return
	}
	if ld.ok {
		// Linked already (restored before into the same place)?
		if st, err := j.dir.dir.Lstat(j.node.Name); err == nil && st.IsRegular() && st.Dev == ld.dev && st.Ino == ld.ino {
			w.kept(j.path, j.node)
			return
		}
		replaced, err := w.link(ld, j)
		if err == nil {
			w.restored(j.path, j.node, replaced)
			w.prog.Bytes.Add(j.node.Size)
			return
		}
		if errors.Is(err, errExists) || errors.Is(err, errIsDir) || errors.Is(err, errSkipped) {
			w.report(j.path, j.node, err)
			return
		}
	}
	j, err := w.createOrOpen(fileJob{dir: j.dir, node: j.node, path: j.path})
	if err != nil {
		w.report(j.path, j.node, err)
		return
	}
	w.writeFile(ctx, j)
}

// link creates j's entry as a hard link to the leader, after checking the
// leader's name still holds the inode that was written.
func (w *restorer) link(ld *leader, j fileJob) (replaced bool, err error) {
	olddir := j.dir.dir
	if ld.dir != j.dir {
		// The leader's directory may be done and closed by now: open it
		// again from the target, one component at a time.
		d, err := w.root.OpenDirPath(path.Dir(ld.path))
		if err != nil {
			return false, fmt.Errorf("open directory of %s: %w", w.display(ld.path), err)
		}
		defer d.Close()
		olddir = d
	}
	oldname := path.Base(ld.path)
	st, err := olddir.Lstat(oldname)
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", w.display(ld.path), err)
	}
	if st.Dev != ld.dev || st.Ino != ld.ino {
		return false, fmt.Errorf("%s was replaced during the restore", w.display(ld.path))
	}
	return w.place(j.dir.dir, j.node, "link", func() error {
		return fs.Link(olddir, oldname, j.dir.dir, j.node.Name)
	})
}
