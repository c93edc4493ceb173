package repair_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/repair"
)

// TestUnreadableRecords: repair snapshots names every unreadable snapshot
// record with its size and error; --forget removes those proven damaged
// (here, a flipped bit), never one that authenticates but does not decode,
// and --dry-run removes nothing.
func TestUnreadableRecords(t *testing.T) {
	fx := newFixture(t)
	damaged := fx.snaps[1].String()
	p := filepath.Join(fx.be.Location(), "snapshots", damaged)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := fx.open()
	id, err := r.SaveUnpacked(context.Background(), backend.Snapshot, []byte("{not json"))
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	undecodable := id.String()

	find := func(res repair.SnapshotsResult, id string) repair.UnreadableRecord {
		t.Helper()
		i := slices.IndexFunc(res.Unreadable, func(u repair.UnreadableRecord) bool { return u.ID == id })
		if i < 0 {
			t.Fatalf("record %s not named: %+v", id[:8], res.Unreadable)
		}
		return res.Unreadable[i]
	}
	for _, opt := range []repair.SnapshotsOptions{{}, {DryRun: true, Forget: true}, {Forget: true}} {
		res := fx.repairSnapshots(opt)
		if len(res.Unreadable) != 2 || res.Snapshots != 1 {
			t.Fatalf("%+v: %d snapshots, unreadable %+v", opt, res.Snapshots, res.Unreadable)
		}
		d, u := find(res, damaged), find(res, undecodable)
		if d.Size != int64(len(b)) || !d.Damaged || !strings.Contains(d.Error, "content does not match its name") {
			t.Errorf("%+v: damaged record named as %+v", opt, d)
		}
		if u.Damaged || u.Removed || !strings.Contains(u.Error, "decode") {
			t.Errorf("%+v: undecodable record named as %+v", opt, u)
		}
		removed := opt.Forget && !opt.DryRun
		if d.Removed != removed {
			t.Errorf("%+v: damaged record removed: %v", opt, d.Removed)
		}
		if got := slices.Contains(fx.list(backend.Snapshot), damaged); got == removed {
			t.Errorf("%+v: damaged record stored: %v", opt, got)
		}
		if !slices.Contains(fx.list(backend.Snapshot), undecodable) {
			t.Errorf("%+v: undecodable record removed", opt)
		}
	}
	if res := fx.repairSnapshots(repair.SnapshotsOptions{Forget: true}); len(res.Unreadable) != 1 {
		t.Fatalf("after --forget: %+v", res.Unreadable)
	}
}
