package archive

import (
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// parentDir is what the parent snapshot and the stat cache know of a
// directory being listed; both are empty without a usable parent.
type parentDir struct {
	tree *snapshot.Tree
	recs []scan.StatRecord
}

// find returns the parent's entry and stat record for name (nil if none).
func (p parentDir) find(name string) (*snapshot.Node, *scan.StatRecord) {
	if p.tree == nil {
		return nil, nil
	}
	return p.tree.Find(name), scan.FindStatRecord(p.recs, name)
}

// recordMatches reports whether st is the object rec describes, with no
// change since: the same inode on the same device, and the same ctime,
// which any write, chmod, chown, xattr change, rename or link count change
// moves. A zero ctime marks a record not to be trusted.
func recordMatches(rec *scan.StatRecord, st fs.Stat) bool {
	return rec != nil && rec.CTime != 0 && rec.CTime == st.CTime && rec.Ino == st.Ino && rec.Dev == st.Dev
}

// unchanged reports whether the entry n (just built from st) is the
// parent's entry on, untouched: then its content, xattrs and symlink
// target are taken from the parent instead of being read. The mode and
// owner are compared too, since the stat record does not hold them.
func (a *archiver) unchanged(n *snapshot.Node, on *snapshot.Node, rec *scan.StatRecord, st fs.Stat) bool {
	return on != nil && !a.opt.ReadAll && on.Type == n.Type && recordMatches(rec, st) &&
		on.Mode == n.Mode && on.UID == n.UID && on.GID == n.GID
}

// sameFile adds, for files, what the content depends on.
func sameFile(n, on *snapshot.Node) bool { return on.Size == n.Size && on.MTime == n.MTime }

// stored reports whether the repository's index has every blob of a
// parent's file, when the options ask for the check. A repair drops lost
// and damaged blobs from the index; a file that used one is read again
// rather than lent to the new snapshot, which would then reference data
// that is gone.
func (a *archiver) stored(content []blob.ID) bool {
	if !a.opt.CheckStored {
		return true
	}
	idx := a.repo.Index()
	for _, id := range content {
		if !idx.Has(id) {
			return false
		}
	}
	return true
}
