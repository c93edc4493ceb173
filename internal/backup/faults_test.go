//go:build linux

package backup_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/faulty"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/backend/retry"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/restore"
)

// TestBackupsUnderFaults backs up a changing tree through a backend that
// fails 10% of its calls (errors before and after the operation,
// timeouts, truncated reads, slow answers). With retries (as remote
// repositories are opened) every backup must complete and restore
// exactly; without them each backup either completes and restores exactly
// or fails with an error that names the fault. Either way the repository
// must check clean, read-data included.
func TestBackupsUnderFaults(t *testing.T) {
	for _, withRetry := range []bool{true, false} {
		t.Run(fmt.Sprintf("retry=%v", withRetry), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			if _, err := gentree.Generate(src, gentree.Spec{Files: 300, Seed: 5, LargeEvery: 40, LargeSize: 3 << 20}); err != nil {
				t.Fatal(err)
			}
			be, err := local.Create(filepath.Join(dir, "repo"))
			if err != nil {
				t.Fatal(err)
			}
			raw := be.WithoutSync()
			kdf := repo.Options{KDF: func() (crypto.KDFParams, error) {
				p, err := crypto.DefaultKDFParams()
				p.Time, p.Memory = 1, 8*1024
				return p, err
			}}
			if _, err := repo.Init(ctx, raw, []byte("pw"), kdf); err != nil {
				t.Fatal(err)
			}
			clean, err := repo.Open(ctx, raw, []byte("pw"), repo.Options{})
			if err != nil {
				t.Fatal(err)
			}
			completed, failed, injected := 0, 0, int64(0)
			for round := range 12 {
				if round > 0 {
					if _, err := gentree.Modify(src, 30, uint64(round)); err != nil {
						t.Fatal(err)
					}
				}
				f := faulty.New(raw, faulty.Options{Rate: 0.10, Seed: uint64(round), Slow: time.Millisecond})
				var through backend.Backend = f
				if withRetry {
					through = retry.New(f, retry.Options{Base: time.Millisecond, Max: 10 * time.Millisecond})
				}
				res, err := func() (*backup.Result, error) {
					r, err := repo.Open(ctx, through, []byte("pw"), repo.Options{})
					if err != nil {
						return nil, err
					}
					defer r.Close()
					return backup.Run(ctx, r, nil, backup.Options{Paths: []string{src}, Host: "h", RacyWindow: racy})
				}()
				injected += f.Injected.Load()
				if err != nil {
					if withRetry {
						t.Fatalf("round %d: backup failed despite retries: %v", round, err)
					}
					if !errors.Is(err, faulty.ErrInjected) && !errors.Is(err, repo.ErrCorrupt) && !errors.Is(err, crypto.ErrUnauthenticated) {
						t.Fatalf("round %d: error does not say what failed: %v", round, err)
					}
					failed++
					continue
				}
				completed++
				// What the snapshot holds is exactly the tree, read back
				// through a reliable handle.
				fresh, err := repo.Open(ctx, raw, []byte("pw"), repo.Options{})
				if err != nil {
					t.Fatal(err)
				}
				target := filepath.Join(dir, fmt.Sprintf("restore%d", round))
				if _, err := restore.Run(ctx, fresh, res.Snapshot.Tree, restore.Options{Target: target}); err != nil {
					t.Fatalf("round %d: restore: %v", round, err)
				}
				if err := gentree.Compare(src, filepath.Join(target, src)); err != nil {
					t.Fatalf("round %d: restored tree differs: %v", round, err)
				}
				os.RemoveAll(target)
				fresh.Close()
			}
			sum, err := check.Run(ctx, clean, check.Options{ReadData: true}, func(p check.Problem) { t.Errorf("check: %+v", p) })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d backups completed, %d failed, %d faults injected; check: %d snapshots, %d packs, %d unreferenced",
				completed, failed, injected, sum.Snapshots, sum.Packs, sum.UnreferencedPacks)
			if injected == 0 || sum.Snapshots != completed {
				t.Fatalf("%d faults injected, %d snapshots for %d completed backups", injected, sum.Snapshots, completed)
			}
		})
	}
}
