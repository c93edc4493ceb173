//go:build linux || darwin

package fs

import "golang.org/x/sys/unix"

// Mkdir creates the directory name with permissions perm (less the umask).
// An existing entry of any kind fails with an error matching ErrExist.
func (d *Dir) Mkdir(name string, perm uint32) error {
	for {
		err := unix.Mkdirat(d.fd, name, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return pathError("create directory", joinPath(d.path, name), err)
		}
		return nil
	}
}

// CreateFile creates the regular file name for writing, with permissions
// perm (less the umask). It never opens an existing entry: one there, a
// symlink included, fails with an error matching ErrExist.
func (d *Dir) CreateFile(name string, perm uint32) (*File, error) {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	for {
		fd, err := unix.Openat(d.fd, name, flags, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, pathError("create file", joinPath(d.path, name), err)
		}
		return &File{fd: fd, path: joinPath(d.path, name)}, nil
	}
}

// Symlink creates the symlink name pointing to target. An existing entry
// fails with an error matching ErrExist.
func (d *Dir) Symlink(target, name string) error {
	if err := unix.Symlinkat(target, d.fd, name); err != nil {
		return pathError("create symlink", joinPath(d.path, name), err)
	}
	return nil
}

// Link creates newName in newDir as a hard link to oldName in oldDir,
// without following a symlink at oldName. An existing entry at newName
// fails with an error matching ErrExist.
func Link(oldDir *Dir, oldName string, newDir *Dir, newName string) error {
	if err := unix.Linkat(oldDir.fd, oldName, newDir.fd, newName, 0); err != nil {
		return pathError("link", joinPath(newDir.path, newName), err)
	}
	return nil
}

// Remove removes the entry name, which must not be a directory; a symlink
// is removed, not followed.
func (d *Dir) Remove(name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return pathError("remove", joinPath(d.path, name), err)
	}
	return nil
}
