// Package restore writes a snapshot tree back to a directory.
//
// One walker goroutine visits the trees depth-first in name order, creating
// directories, symlinks and special files itself and handing regular files
// to a pool of workers that fetch and write their content. Every filesystem
// call goes through package fs, relative to an open directory, and never
// follows a symlink inside the target, so deep trees (paths longer than
// PATH_MAX) restore correctly and a hostile snapshot or a planted symlink
// cannot make the restore write outside the target. What a platform cannot
// restore (fifos, sockets and devices on macOS and Windows; owners and
// xattrs on Windows) is reported per entry.
//
// A directory's metadata (mode, owner, xattrs, mtime) is applied when its
// last child is done, so writing the children neither bumps its mtime nor is
// blocked by a read-only mode. Hard links are recreated (linkat) once the
// first copy of the inode has been written in full; all-zero chunks become
// holes, so sparse files stay sparse. A file whose content cannot be loaded
// or verified is reported and removed, never left with wrong data.
//
// The files are split by role: restore.go holds the options, the walk and
// directories; select.go the include and exclude patterns (package
// pattern), with directories that only lead to included entries made when
// the first of them is; existing.go the decisions about what is already
// at the target, which the overwrite mode drives; files.go the file
// workers, content, hard links and verification; other.go symlinks and
// special files and metadata; dryrun.go the dry run, which walks the same
// way and makes the same decisions through the same functions, looking at
// the target through read-only descriptors and writing nothing.
package restore
