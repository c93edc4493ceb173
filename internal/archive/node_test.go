package archive

import (
	"testing"

	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// TestNewEntry: every field a stat gives lands in the node or the record,
// and only where it belongs (size for files, rdev for devices).
func TestNewEntry(t *testing.T) {
	base := fs.Stat{Ino: 11, Dev: 22, Nlink: 1, UID: 1000, GID: 100, Size: 4096, MTime: 1e18, CTime: 2e18, Rdev: 0x0801}
	with := func(mode uint32) fs.Stat { st := base; st.Mode = mode; return st }
	tests := []struct {
		name string
		st   fs.Stat
		want snapshot.Node
	}{
		{"file", with(fs.TypeRegular | 0o4755), snapshot.Node{Type: snapshot.File, Mode: 0o4755, Size: 4096}},
		{"dir", with(fs.TypeDir | 0o1777), snapshot.Node{Type: snapshot.Dir, Mode: 0o1777}},
		{"symlink", with(fs.TypeSymlink | 0o777), snapshot.Node{Type: snapshot.Symlink, Mode: 0o777}},
		{"block device", with(fs.TypeBlockDev | 0o660), snapshot.Node{Type: snapshot.BlockDev, Mode: 0o660, Rdev: 0x0801}},
		{"char device", with(fs.TypeCharDev | 0o600), snapshot.Node{Type: snapshot.CharDev, Mode: 0o600, Rdev: 0x0801}},
		{"fifo", with(fs.TypeFifo | 0o644), snapshot.Node{Type: snapshot.Fifo, Mode: 0o644}},
		{"socket", with(fs.TypeSocket | 0o755), snapshot.Node{Type: snapshot.Socket, Mode: 0o755}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ := nodeType(tt.st)
			n, rec := newEntry("x", typ, tt.st)
			want := tt.want
			want.Name, want.UID, want.GID, want.MTime = "x", 1000, 100, 1e18
			if n.Name != want.Name || n.Type != want.Type || n.Mode != want.Mode || n.UID != want.UID || n.GID != want.GID ||
				n.MTime != want.MTime || n.Size != want.Size || n.Rdev != want.Rdev {
				t.Fatalf("node %+v, want %+v", n, want)
			}
			if rec != (scan.StatRecord{Name: "x", Ino: 11, Dev: 22, CTime: 2e18}) {
				t.Fatalf("record %+v", rec)
			}
			if !recordMatches(&rec, tt.st) {
				t.Fatal("a fresh record must match its own stat")
			}
		})
	}
	if nodeType(with(0o170000)) != 0 {
		t.Fatal("an unknown type must map to 0")
	}
}

// TestRecordMatches: any change of identity or ctime, or an untrusted
// record, means the entry must be looked at again.
func TestRecordMatches(t *testing.T) {
	st := fs.Stat{Mode: fs.TypeRegular, Ino: 1, Dev: 2, CTime: 3}
	for _, tt := range []struct {
		name string
		rec  *scan.StatRecord
		want bool
	}{
		{"same", &scan.StatRecord{Ino: 1, Dev: 2, CTime: 3}, true},
		{"none", nil, false},
		{"untrusted", &scan.StatRecord{Ino: 1, Dev: 2, CTime: 0}, false},
		{"other inode", &scan.StatRecord{Ino: 9, Dev: 2, CTime: 3}, false},
		{"other device", &scan.StatRecord{Ino: 1, Dev: 9, CTime: 3}, false},
		{"changed", &scan.StatRecord{Ino: 1, Dev: 2, CTime: 4}, false},
	} {
		if got := recordMatches(tt.rec, st); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
