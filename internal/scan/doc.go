// Package scan holds the filesystem side of a backup: directory listing and
// lstat relative to open directory descriptors (so paths of any length
// work), extended attributes, exclude patterns, and the encoding of the
// per-directory stat records (inode, device, ctime) kept in the local state
// database for change detection.
package scan
