// Package scan holds the portable rules of a backup's scan: exclude
// patterns and the encoding of the per-directory stat records (inode,
// device, ctime) kept in the local state database for change detection.
// The filesystem itself (listing, lstat, xattrs) is reached through
// package fs.
package scan
