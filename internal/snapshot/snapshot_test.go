package snapshot_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

func cheapKDF() (crypto.KDFParams, error) {
	p, err := crypto.DefaultKDFParams()
	p.Time, p.Memory = 1, 8*1024
	return p, err
}

// newRepo makes a repository holding snapshots at the given times, oldest
// first, and returns it with their IDs and the repository directory.
func newRepo(t *testing.T, times ...time.Time) (*repo.Repository, []blob.ID, string) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, []byte("pw"), repo.Options{KDF: cheapKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	var ids []blob.ID
	for _, tm := range times {
		sn := &snapshot.Snapshot{Time: tm, Host: "h", Roots: []string{"/src"}}
		if err := snapshot.Save(ctx, r, sn); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sn.ID)
	}
	return r, ids, dir
}

// damage flips a bit of a snapshot record and returns its size.
func damage(t *testing.T, dir string, id blob.ID) int64 {
	t.Helper()
	p := filepath.Join(dir, "snapshots", id.String())
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
	return int64(len(b))
}

// TestLatestOverUnreadable: "latest" is the newest readable snapshot, and
// the unreadable records come with it, with their sizes and whether they
// are proven damaged; an ID or prefix resolves as before.
func TestLatestOverUnreadable(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, ids, dir := newRepo(t, t0, t0.Add(time.Hour), t0.Add(2*time.Hour))
	size := damage(t, dir, ids[2])

	sn, bad, err := snapshot.Find(ctx, r, "latest", snapshot.Filter{})
	if err != nil || sn.ID != ids[1] {
		t.Fatalf("latest: %v %v", sn, err)
	}
	if len(bad) != 1 || bad[0].ID != ids[2] || bad[0].Size != size || !bad[0].Damaged() || !strings.Contains(bad[0].Error(), "load snapshot "+ids[2].Short()) {
		t.Fatalf("unreadable records: %+v", bad)
	}
	if sn, bad, err := snapshot.Find(ctx, r, strings.ToUpper(ids[0].String()[:10]), snapshot.Filter{}); err != nil || sn.ID != ids[0] || bad != nil {
		t.Fatalf("find by prefix: %v %v %v", sn, bad, err)
	}
	_, _, err = snapshot.Find(ctx, r, ids[2].String()[:8], snapshot.Filter{})
	var u *snapshot.UnreadableError
	if !errors.As(err, &u) || u.ID != ids[2] || u.Size != size || !u.Damaged() || !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("find the damaged record by prefix: %v", err)
	}

	// A record that authenticates but does not decode was written that
	// way: unreadable, not proven damaged.
	garbage, err := r.SaveUnpacked(ctx, backend.Snapshot, []byte("{not json"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = snapshot.Load(ctx, r, garbage)
	if !errors.As(err, &u) || u.Damaged() || !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("undecodable record: %v (damaged %v)", err, u != nil && u.Damaged())
	}
	if _, bad, _ := snapshot.Latest(ctx, r, snapshot.Filter{}); len(bad) != 2 {
		t.Fatalf("latest with two unreadable records: %+v", bad)
	}

	// With no readable record, "latest" finds nothing and says why.
	for _, id := range ids[:2] {
		damage(t, dir, id)
	}
	sn, bad, err = snapshot.Find(ctx, r, "latest", snapshot.Filter{})
	if sn != nil || len(bad) != 4 || !errors.Is(err, snapshot.ErrNoSnapshot) || !strings.Contains(err.Error(), "none of the 4 snapshot records can be read") {
		t.Fatalf("latest with no readable record: %v %d %v", sn, len(bad), err)
	}
}

// TestMatch: IDs and unique prefixes, in either case; ambiguous and
// unknown ones fail.
func TestMatch(t *testing.T) {
	id := func(s string) blob.ID {
		t.Helper()
		b, err := blob.ParseID(s + strings.Repeat("0", 64-len(s)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	recs := []snapshot.Record{{ID: id("ab12"), Size: 1}, {ID: id("ab34"), Size: 2}, {ID: id("cd"), Size: 3}}
	for _, tc := range []struct {
		ref  string
		want int // index in recs, -1 for an error
		err  string
	}{
		{"ab1", 0, ""},
		{"AB3", 1, ""},
		{id("cd").String(), 2, ""},
		{"ab", -1, `snapshot prefix "ab" is ambiguous (2 matches)`},
		{"ef", -1, `snapshot "ef": no matching snapshot`},
		{"", -1, "no matching snapshot"},
		{"latest", -1, "no matching snapshot"},
	} {
		got, err := snapshot.Match(recs, tc.ref)
		switch {
		case tc.want >= 0 && (err != nil || got != recs[tc.want]):
			t.Errorf("Match(%q) = %v, %v; want %v", tc.ref, got, err, recs[tc.want])
		case tc.want < 0 && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Match(%q): error %v, want %q", tc.ref, err, tc.err)
		}
	}
}
