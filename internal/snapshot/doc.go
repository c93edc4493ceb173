// Package snapshot defines what a backup records: directory trees as
// Merkle-tree nodes carrying their subtree's aggregates, and the snapshot
// record that points at a root tree.
//
// A tree node stores only what describes the content as a user sees it
// (name, type, mode, owner, size, mtime, xattrs, symlink target, content
// chunks, subtree, hard-link identity). Values that only serve change
// detection and are unstable across restores and remounts (inode, device,
// ctime) live in the local state database instead, so two snapshots of the
// same tree have the same root ID however and wherever they were taken.
package snapshot
