// Package fs is the one place where Tidemark meets the operating system's
// filesystem: listing a directory, lstat, opening files for reading,
// extended attributes, file identity for hard links, and, on restore,
// creating entries and setting their metadata.
//
// Everything works relative to an open directory (a [Dir]) and never
// follows a symlink at the name it is given, so paths of any length work
// and a symlink planted in a tree cannot redirect a backup or a restore.
// A Dir is opened once from an absolute path ([OpenDir]) and every other
// directory is reached from it one name at a time ([Dir.OpenDir]).
//
// The implementation is split by operating system, one concern a file:
//
//   - Linux keeps the directory-descriptor calls the scanner was built on
//     (openat with O_NOFOLLOW, fstatat with AT_SYMLINK_NOFOLLOW, getdents
//     with a 64 KiB buffer, xattrs through /proc/self/fd, O_PATH and
//     O_NOATIME where they help), retrying on EINTR.
//   - macOS uses the same *at calls (files ending in _unix.go are shared by
//     both); it has no getdents (listing goes through the C library), no
//     O_PATH (O_SEARCH instead), no O_NOATIME, no mknodat (so fifos,
//     sockets and devices cannot be restored), and no xattr calls relative
//     to a directory (the entry is opened with O_SYMLINK instead).
//   - Windows opens entries relative to a directory handle with
//     NtCreateFile and FILE_OPEN_REPARSE_POINT, so symlinks and junctions
//     are reported as symlinks and never followed. File identity is the
//     volume serial number (Dev) and file index (Ino); modes are
//     synthesized from the attributes. Owners, devices, fifos, sockets and
//     extended attributes are not built yet: listing reports no xattrs and
//     every attempt to set them fails with [ErrNotSupported].
//
// Errors are *os.PathError values whose Op says what was being done
// ("lstat", "open directory", "create file") and whose Path names the
// entry; errors.Is works with [ErrNotExist], [ErrExist], [ErrPermission]
// and [ErrNotSupported] on every platform.
package fs
