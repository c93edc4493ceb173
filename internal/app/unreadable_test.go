package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/retention"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// TestUnreadableNewestRecord: with the newest snapshot record damaged,
// resolving "latest" warns naming it; Restore refuses "latest" and asks
// for an ID, and restores by ID; Forget removes the damaged record when
// named, after which "latest" resolves without a warning.
func TestUnreadableNewestRecord(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, filepath.Join(src, "a.txt"), "alpha")
	opt := options(dir)
	r, err := app.Init(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	bopt := app.BackupOptions{Paths: []string{src}, NoJournal: true}
	first, err := r.Backup(ctx, bopt)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "b.txt"), "bravo")
	second, err := r.Backup(ctx, bopt)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	record := filepath.Join(opt.Repository, "snapshots", second.ID.String())
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.Chmod(record, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(record, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// Another machine's view: a cached intact copy would hide the damage.
	opt.CacheDir = filepath.Join(dir, "other-cache")
	var rec recorder
	opt.Events = rec.add
	r, err = app.Open(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	warned := func() string {
		t.Helper()
		var msgs []string
		for _, e := range rec.all() {
			if w, ok := e.(app.Warning); ok {
				msgs = append(msgs, w.Message)
			}
		}
		rec = recorder{}
		return strings.Join(msgs, "\n")
	}

	sn, err := r.Snapshot(ctx, "latest", snapshot.Filter{})
	if err != nil || sn.ID != first.ID {
		t.Fatalf("latest: %v %v", sn, err)
	}
	if w := warned(); !strings.Contains(w, "snapshot record "+second.ID.Short()) || !strings.Contains(w, "content does not match its name") ||
		!strings.Contains(w, `"latest" (`+first.ID.Short()) {
		t.Fatalf("latest over a damaged record warned %q", w)
	}
	if err := r.Ls(ctx, app.LsOptions{Snapshot: "latest", Recursive: true}, func(string, *snapshot.Node) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if w := warned(); !strings.Contains(w, second.ID.Short()) {
		t.Fatalf("ls latest warned %q", w)
	}

	target := filepath.Join(dir, "restore")
	_, err = r.Restore(ctx, app.RestoreOptions{Snapshot: "latest", Options: restore.Options{Target: target}})
	if err == nil || !strings.Contains(err.Error(), "snapshot record "+second.ID.Short()+" is unreadable") || !strings.Contains(err.Error(), "give a snapshot ID explicitly") {
		t.Fatalf("restore latest: %v", err)
	}
	if res, err := r.Restore(ctx, app.RestoreOptions{Snapshot: first.ID.String()[:8], Options: restore.Options{Target: target}}); err != nil || res.Files != 1 {
		t.Fatalf("restore by ID: %+v %v", res, err)
	}
	warned()

	for _, bad := range []app.ForgetOptions{
		{Snapshots: []string{"latest"}},
		{Snapshots: []string{first.ID.String()}, Policy: retention.Policy{Last: 1}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("forget %+v accepted", bad)
		}
	}
	fr, err := r.Forget(ctx, app.ForgetOptions{Snapshots: []string{second.ID.String()[:8]}, GroupBy: "host,paths"}, nil)
	if err != nil || fr.Removed != 1 || len(fr.Verdicts) != 1 {
		t.Fatalf("forget the damaged record: %+v %v", fr, err)
	}
	if v := fr.Verdicts[0]; v.ID != second.ID.String() || !v.Removed || v.Size != int64(len(b)) || !strings.Contains(v.Error, "content does not match its name") {
		t.Fatalf("verdict %+v", v)
	}
	if sn, err := r.Snapshot(ctx, "latest", snapshot.Filter{}); err != nil || sn.ID != first.ID {
		t.Fatalf("latest after forget: %v %v", sn, err)
	}
	if w := warned(); w != "" {
		t.Fatalf("latest after forget warned %q", w)
	}
}
