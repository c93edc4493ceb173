package restore

import (
	"errors"
	"fmt"

	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// otherCreate returns the function that creates n, a symlink, fifo,
// socket or device node, in dir; nil for an unknown type.
func otherCreate(dir *fs.Dir, n *snapshot.Node) func() error {
	mknod := func(typ uint32, dev uint64) func() error {
		return func() error { return dir.Mknod(n.Name, typ|0o600, dev) }
	}
	switch n.Type {
	case snapshot.Symlink:
		return func() error { return dir.Symlink(n.Target, n.Name) }
	case snapshot.Fifo:
		return mknod(fs.TypeFifo, 0)
	case snapshot.Socket:
		return mknod(fs.TypeSocket, 0)
	case snapshot.CharDev:
		return mknod(fs.TypeCharDev, n.Rdev)
	case snapshot.BlockDev:
		return mknod(fs.TypeBlockDev, n.Rdev)
	}
	return nil
}

// restoreOther creates a symlink, fifo, socket or device node.
func (w *restorer) restoreOther(d *dirJob, n *snapshot.Node, p string) {
	create := otherCreate(d.dir, n)
	if create == nil {
		w.report(p, nil, fmt.Errorf("unknown entry type %s", n.Type))
		return
	}
	err := create()
	if errors.Is(err, fs.ErrExist) && sameEntry(d.dir, n) {
		// Restored before into the same place: keep it, as files with the
		// snapshot's content are kept.
		if err := w.setMeta(d.dir, n.Name, nil, n); err != nil {
			w.report(p, nil, err)
		}
		w.kept(p, n)
		return
	}
	replaced := false
	if err != nil {
		replaced, err = w.place(d.dir, n, "create "+n.Type.String(), create)
	}
	if err != nil {
		if (n.Type == snapshot.CharDev || n.Type == snapshot.BlockDev) && errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("%w (creating devices needs root)", err)
		}
		w.report(p, n, err)
		return
	}
	if err := w.setMeta(d.dir, n.Name, nil, n); err != nil {
		w.report(p, nil, err)
	}
	w.restored(p, n, replaced)
}

// sameEntry reports whether the entry name in dir is already what n
// describes: a symlink with n's target, a fifo, a socket, a device with
// n's number. Nothing is followed.
func sameEntry(dir *fs.Dir, n *snapshot.Node) bool {
	st, err := dir.Lstat(n.Name)
	if err != nil {
		return false
	}
	switch n.Type {
	case snapshot.Symlink:
		if !st.IsSymlink() {
			return false
		}
		target, err := dir.Readlink(n.Name)
		return err == nil && target == n.Target
	case snapshot.Fifo:
		return st.Type() == fs.TypeFifo
	case snapshot.Socket:
		return st.Type() == fs.TypeSocket
	case snapshot.CharDev:
		return st.Type() == fs.TypeCharDev && st.Rdev == n.Rdev
	case snapshot.BlockDev:
		return st.Type() == fs.TypeBlockDev && st.Rdev == n.Rdev
	}
	return false
}

// openEntry is an entry open while its metadata is set: a restored file or
// directory. Going through it rather than its name saves path lookups and
// cannot be redirected.
type openEntry interface {
	Chown(uid, gid uint32) error
	SetXattr(x fs.Xattr) error
	Chmod(mode uint32) error
}

// setMeta restores owner, xattrs, mode and mtime of name in dir, through
// self (the entry itself) when it is open. The order matters: chown clears
// setuid/setgid bits and file capabilities, and user xattrs need write
// permission, so the mode comes after both; the mtime comes last.
func (w *restorer) setMeta(dir *fs.Dir, name string, self openEntry, n *snapshot.Node) error {
	var errs []error
	if w.opt.Owners {
		var err error
		if self != nil {
			err = self.Chown(n.UID, n.GID)
		} else {
			err = dir.Lchown(name, n.UID, n.GID)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, x := range n.Xattrs {
		var err error
		if self != nil {
			err = self.SetXattr(fs.Xattr{Name: x.Name, Value: x.Value})
		} else {
			err = dir.Lsetxattr(name, fs.Xattr{Name: x.Name, Value: x.Value})
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if n.Type != snapshot.Symlink { // symlink modes mean nothing on Linux
		mode := n.Mode & 0o7777
		var err error
		if self != nil {
			err = self.Chmod(mode)
		} else {
			err = dir.Lchmod(name, mode)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := dir.SetMtime(name, n.MTime); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("restore metadata: %w", errors.Join(errs...))
}
