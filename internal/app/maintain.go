package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/prune"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/retention"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/verify"
)

// CheckResult is what check found.
type CheckResult struct {
	Summary  check.Summary   `json:"summary"`
	Problems []check.Problem `json:"problems"`
}

// Check verifies the repository's structure and, with opt.ReadData or a
// subset, its data. Each problem is also sent as a Problem event when
// found.
func (a *Repo) Check(ctx context.Context, opt check.Options, events func(Event)) (*CheckResult, error) {
	// Steady: a prune replacing index files under a running check would
	// make it report blobs as missing.
	lock, err := a.lock(ctx, repo.LockSteady, "check")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	res := &CheckResult{Problems: []check.Problem{}}
	res.Summary, err = check.Run(ctx, a.r, opt, func(p check.Problem) {
		res.Problems = append(res.Problems, p)
		emitter(events).send(Problem{p})
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// VerifyReport is a verify run's result with the budget it ran under.
type VerifyReport struct {
	verify.Result
	BudgetBytes    int64  `json:"budget_bytes"`
	BytesPeriod    string `json:"budget_bytes_period"`
	BudgetRequests int64  `json:"budget_requests"`
	RequestsPeriod string `json:"budget_requests_period"`
}

// Verify downloads and checks packs within the budget in opt (packs never
// verified first, then the least recently verified), keeping the ledger
// in the state database. Problems are sent as Problem events when found.
func (a *Repo) Verify(ctx context.Context, opt verify.Options, events func(Event)) (*VerifyReport, error) {
	st, err := a.state()
	if err != nil {
		return nil, err
	}
	if !opt.Bytes.Off() && !opt.Requests.Off() {
		// Nothing is downloaded when verify is off: no lock needed.
		lock, err := a.lock(ctx, repo.LockShared, "verify")
		if err != nil {
			return nil, err
		}
		defer lock.Unlock()
		opt.Report = func(p check.Problem) { emitter(events).send(Problem{p}) }
	}
	res, err := verify.Run(ctx, a.r, st, opt)
	if err != nil {
		return nil, err
	}
	return &VerifyReport{Result: res, BudgetBytes: opt.Bytes.Amount, BytesPeriod: opt.Bytes.PeriodName(),
		BudgetRequests: opt.Requests.Amount, RequestsPeriod: opt.Requests.PeriodName()}, nil
}

// ErrNoLedger is returned by Verify when there is no state database (NoCache).
var ErrNoLedger = verify.ErrNoLedger

// Prune removes unused data under a prune lock; its steps are sent as Log
// events.
func (a *Repo) Prune(ctx context.Context, opt prune.Options, events func(Event)) (*prune.Result, error) {
	lock, err := a.lock(ctx, repo.LockPrune, "prune")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	return a.prune(ctx, lock, opt, events)
}

func (a *Repo) prune(ctx context.Context, lock *repo.Lock, opt prune.Options, events func(Event)) (*prune.Result, error) {
	opt.Holder, opt.Alive = lock.Holder(), lock.Check
	if events != nil {
		opt.Log = func(format string, args ...any) { events(Log{Message: fmt.Sprintf(format, args...)}) }
	}
	res, err := prune.Run(ctx, a.r, opt)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	return &res, nil
}

// ForgetOptions say which snapshots a forget keeps.
type ForgetOptions struct {
	Policy retention.Policy
	// GroupBy is a comma-separated list of host, paths and tags; "" judges
	// all snapshots as one group.
	GroupBy string
	// DryRun only reports the verdicts.
	DryRun bool
	// Prune, if set, prunes afterwards under the same lock.
	Prune *prune.Options
	// Now is the time the policy is judged at (zero: now).
	Now time.Time
}

// Validate refuses an empty policy (which would forget every snapshot),
// negative counts and an unknown --group-by field.
func (o ForgetOptions) Validate() error {
	p := o.Policy
	if p.Empty() {
		return errors.New("forget: no policy given (use --keep-* or --retention); refusing to forget every snapshot")
	}
	for _, n := range []int{p.Last, p.Hourly, p.Daily, p.Weekly, p.Monthly, p.Yearly} {
		if n < 0 {
			return errors.New("forget: --keep-* counts must not be negative")
		}
	}
	_, err := Grouper(o.GroupBy)
	return err
}

// ForgetVerdict is one snapshot's fate.
type ForgetVerdict struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Group   string    `json:"group"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons,omitempty"`
	Removed bool      `json:"removed"`
}

// ForgetResult is what a forget did, in group order.
type ForgetResult struct {
	Verdicts []ForgetVerdict `json:"forget"`
	// Forgotten counts the snapshots the policy does not keep; Removed
	// those actually removed; Failed those that could not be.
	Forgotten int           `json:"-"`
	Removed   int           `json:"-"`
	Failed    int           `json:"-"`
	Prune     *prune.Result `json:"prune,omitempty"`
}

// Forget removes the snapshot records the policy does not keep, then
// prunes if asked (and nothing failed). Unreadable snapshot records are
// sent as Warning events and left alone, failed removals as Failed events.
func (a *Repo) Forget(ctx context.Context, opt ForgetOptions, events func(Event)) (*ForgetResult, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	p := opt.Policy
	group, err := Grouper(opt.GroupBy)
	if err != nil {
		return nil, err
	}
	if p.Location == nil {
		p.Location = time.Local
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	ev := emitter(events)
	var lock *repo.Lock
	if !opt.DryRun {
		// Forget only removes snapshot records: backups may go on.
		if lock, err = a.lock(ctx, repo.LockPrune, "forget"); err != nil {
			return nil, err
		}
		defer lock.Unlock()
	}
	sns, errs, err := snapshot.All(ctx, a.r)
	if err != nil {
		return nil, err
	}
	for _, e := range errs {
		ev.send(Warning{Message: fmt.Sprintf("%v (left alone)", e)})
	}
	items := make([]retention.Item, len(sns))
	for i, sn := range sns {
		items[i] = retention.Item{ID: sn.ID.String(), Time: sn.Time, Group: group(sn), Tags: sn.Tags}
	}
	res := &ForgetResult{Verdicts: []ForgetVerdict{}}
	for _, d := range retention.Apply(items, p, now) {
		v := ForgetVerdict{ID: d.Item.ID, Time: d.Item.Time, Group: d.Item.Group, Keep: d.Keep, Reasons: d.Reasons}
		if !d.Keep {
			res.Forgotten++
			if !opt.DryRun {
				if err := a.r.Backend().Remove(ctx, backend.Handle{Type: backend.Snapshot, Name: d.Item.ID}); err != nil && !errors.Is(err, backend.ErrNotFound) {
					ev.send(Failed{Message: fmt.Sprintf("remove snapshot %s: %v", d.Item.ID[:8], err)})
					res.Failed++
				} else {
					v.Removed = true
					res.Removed++
				}
			}
		}
		res.Verdicts = append(res.Verdicts, v)
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("forget: %d snapshots could not be removed", res.Failed)
	}
	if opt.Prune != nil && !opt.DryRun {
		if res.Prune, err = a.prune(ctx, lock, *opt.Prune, events); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Grouper returns the group key of a snapshot for a --group-by spec: any
// of host, paths and tags, comma-separated ("" for one group).
func Grouper(spec string) (func(*snapshot.Snapshot) string, error) {
	var parts []string
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(p)
		switch p {
		case "":
		case "host", "paths", "tags":
			parts = append(parts, p)
		default:
			return nil, fmt.Errorf("--group-by %q: unknown field %q (want host, paths, tags)", spec, p)
		}
	}
	return func(sn *snapshot.Snapshot) string {
		var key []string
		for _, p := range parts {
			switch p {
			case "host":
				key = append(key, "host="+sn.Host)
			case "paths":
				key = append(key, "paths="+strings.Join(sn.Roots, ":"))
			case "tags":
				tags := slices.Clone(sn.Tags)
				slices.Sort(tags)
				key = append(key, "tags="+strings.Join(tags, ":"))
			}
		}
		return strings.Join(key, " ")
	}, nil
}
