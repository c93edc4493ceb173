package daemon

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestStore: the operation log stays bounded, operations a killed daemon
// left running are marked abandoned, and job records round-trip.
func TestStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "daemon.db")
	s, err := openStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 30; i++ {
		id, err := s.startOp(ctx, Operation{Job: "a", Kind: OpBackup, Reason: "r", Started: t0.Add(time.Duration(i) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.finishOp(ctx, id, t0.Add(time.Duration(i)*time.Minute+time.Second), OutcomeOK, "done", map[string]int{"n": i}, 10); err != nil {
			t.Fatal(err)
		}
	}
	ops, err := s.ops(ctx, "", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 10 || ops[0].ID != 30 || string(ops[0].Details) != `{"n":29}` || ops[0].Finished == nil {
		t.Fatalf("log kept %d operations, newest %+v", len(ops), ops[0])
	}
	if page, _ := s.ops(ctx, "a", 25, 2); len(page) != 2 || page[0].ID != 24 {
		t.Errorf("page before 25: %+v", page)
	}
	if other, _ := s.ops(ctx, "b", 0, 10); len(other) != 0 {
		t.Errorf("job b: %+v", other)
	}

	// A daemon killed while two operations ran.
	s.startOp(ctx, Operation{Job: "a", Kind: OpBackup, Started: t0})
	s.startOp(ctx, Operation{Job: "b", Kind: OpForget, Started: t0})
	s.close()
	s, err = openStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	n, err := s.abandonRunning(ctx, t0.Add(time.Hour), "killed")
	if err != nil || n != 2 {
		t.Fatalf("abandoned %d, %v", n, err)
	}
	ops, _ = s.ops(ctx, "", 0, 2)
	for _, op := range ops {
		if op.Outcome != OutcomeAbandoned || op.Message != "killed" {
			t.Errorf("%+v", op)
		}
	}

	rec := jobRecord{State: JobState{DirtySince: t0, DirtyWhy: "files changed", Failures: 2, Paused: true},
		Info: JobInfo{RepoID: "abc", LastBackup: &BackupFacts{Snapshot: "s", Mode: "journal"}}}
	if err := s.saveJob(ctx, "a", rec); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.loadJob(ctx, "a")
	if err != nil || !ok || !got.State.DirtySince.Equal(t0) || got.State.Failures != 2 || !got.State.Paused || got.Info.LastBackup.Mode != "journal" {
		t.Errorf("job record: %+v %v %v", got, ok, err)
	}
	if _, ok, _ := s.loadJob(ctx, "nope"); ok {
		t.Error("unknown job found")
	}
	if err := s.setAlive(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if at, err := s.aliveAt(ctx); err != nil || !at.Equal(t0) {
		t.Errorf("alive at %v, %v", at, err)
	}
}
