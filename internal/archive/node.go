package archive

import (
	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// nodeType maps a file type to the snapshot's; 0 for a type snapshots
// cannot hold.
func nodeType(st fs.Stat) snapshot.NodeType {
	switch st.Type() {
	case fs.TypeRegular:
		return snapshot.File
	case fs.TypeDir:
		return snapshot.Dir
	case fs.TypeSymlink:
		return snapshot.Symlink
	case fs.TypeBlockDev:
		return snapshot.BlockDev
	case fs.TypeCharDev:
		return snapshot.CharDev
	case fs.TypeFifo:
		return snapshot.Fifo
	case fs.TypeSocket:
		return snapshot.Socket
	}
	return 0
}

// newEntry is the tree entry and the stat record of name as st describes
// it; content, xattrs, symlink targets and subtrees are filled in later.
func newEntry(name string, typ snapshot.NodeType, st fs.Stat) (snapshot.Node, scan.StatRecord) {
	n := snapshot.Node{Name: name, Type: typ}
	rec := scan.StatRecord{Name: name}
	applyStat(&n, &rec, st)
	return n, rec
}

// applyStat sets what a stat says of an entry: the node's metadata and the
// record's change-detection values. It is the one place that maps a stat
// to an entry, so a new field is added here once; it also serves entries
// taken from the parent snapshot and files that were replaced between
// lstat and open.
func applyStat(n *snapshot.Node, rec *scan.StatRecord, st fs.Stat) {
	n.Mode, n.UID, n.GID, n.MTime = st.Mode&0o7777, st.UID, st.GID, st.MTime
	switch n.Type {
	case snapshot.File:
		n.Size = uint64(st.Size)
	case snapshot.BlockDev, snapshot.CharDev:
		n.Rdev = st.Rdev
	}
	rec.Name, rec.Ino, rec.Dev, rec.CTime = n.Name, st.Ino, st.Dev, st.CTime
}

func convertXattrs(xs []fs.Xattr) []snapshot.Xattr {
	if len(xs) == 0 {
		return nil
	}
	out := make([]snapshot.Xattr, len(xs))
	for i, x := range xs {
		out[i] = snapshot.Xattr{Name: x.Name, Value: x.Value}
	}
	return out
}
