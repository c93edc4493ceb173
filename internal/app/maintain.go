package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
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
		var u *snapshot.UnreadableError
		if errors.As(err, &u) {
			return nil, fmt.Errorf("prune: %w (`tidemark forget %s` removes it; `tidemark repair snapshots --forget` removes every damaged record)", err, u.ID.Short())
		}
		return nil, fmt.Errorf("prune: %w", err)
	}
	return &res, nil
}

// ForgetOptions say which snapshots a forget keeps, or which it removes.
type ForgetOptions struct {
	Policy retention.Policy
	// Snapshots names the snapshots to remove (IDs or unique prefixes)
	// instead of a policy; unreadable records are removed all the same.
	Snapshots []string
	// Filter limits the policy to the snapshots it matches; the others
	// are neither judged nor listed. It cannot go with Snapshots.
	Filter snapshot.Filter
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
// a policy together with snapshot IDs, "latest" as an ID, negative counts
// and an unknown --group-by field.
func (o ForgetOptions) Validate() error {
	p := o.Policy
	switch {
	case len(o.Snapshots) > 0 && !p.Empty():
		return errors.New("forget: give either snapshot IDs or --keep-*/--retention rules, not both")
	case len(o.Snapshots) == 0 && p.Empty():
		return errors.New("forget: no policy given (use --keep-* or --retention, or name snapshot IDs); refusing to forget every snapshot")
	case len(o.Snapshots) > 0 && !o.Filter.Empty():
		// Removing by name is exact; a filter beside it could only be
		// a condition the user expects to be checked on records that
		// may be unreadable.
		return fmt.Errorf("forget: give either snapshot IDs or filters (%s), not both", o.Filter)
	}
	for _, ref := range o.Snapshots {
		if ref == "latest" {
			// A damaged record may be newer than what "latest" finds:
			// removing snapshots is done by name only.
			return errors.New(`forget: "latest" is not accepted; name the snapshot by its ID (see tidemark snapshots)`)
		}
		if ref == "" {
			return errors.New("forget: empty snapshot ID")
		}
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
	// Error says why the record could not be read (a snapshot named by ID
	// is removed all the same); Size is then its stored size.
	Error string `json:"error,omitempty"`
	Size  int64  `json:"size,omitempty"`
}

// ForgetResult is what a forget did, in group order (in the order named
// for snapshots named by ID).
type ForgetResult struct {
	Verdicts []ForgetVerdict `json:"forget"`
	// Forgotten counts the snapshots the policy does not keep (or the
	// snapshots named); Removed those actually removed; Failed those that
	// could not be.
	Forgotten int           `json:"-"`
	Removed   int           `json:"-"`
	Failed    int           `json:"-"`
	Prune     *prune.Result `json:"prune,omitempty"`
}

// Forget removes the snapshot records the policy does not keep, or those
// opt.Snapshots names, then prunes if asked (and nothing failed). Under a
// policy, unreadable snapshot records are sent as Warning events and left
// alone; named ones are removed, readable or not. Failed removals are sent
// as Failed events.
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
	res := &ForgetResult{Verdicts: []ForgetVerdict{}}
	if len(opt.Snapshots) > 0 {
		if err := a.forgetNamed(ctx, opt, group, res, ev); err != nil {
			return nil, err
		}
		return a.forgetDone(ctx, opt, lock, res, events)
	}
	sns, errs, err := snapshot.All(ctx, a.r)
	if err != nil {
		return nil, err
	}
	sns = slices.DeleteFunc(sns, func(sn *snapshot.Snapshot) bool { return !opt.Filter.Match(sn) })
	for _, e := range errs {
		msg := fmt.Sprintf("%v (left alone", e)
		var u *snapshot.UnreadableError
		if errors.As(e, &u) {
			msg += fmt.Sprintf(": `tidemark forget %s` removes it", u.ID.Short())
		}
		ev.send(Warning{Message: msg + ")"})
	}
	items := make([]retention.Item, len(sns))
	for i, sn := range sns {
		items[i] = retention.Item{ID: sn.ID.String(), Time: sn.Time, Group: group(sn), Tags: sn.Tags}
	}
	for _, d := range retention.Apply(items, p, now) {
		v := ForgetVerdict{ID: d.Item.ID, Time: d.Item.Time, Group: d.Item.Group, Keep: d.Keep, Reasons: d.Reasons}
		if !d.Keep {
			a.forgetOne(ctx, opt.DryRun, &v, res, ev)
		}
		res.Verdicts = append(res.Verdicts, v)
	}
	return a.forgetDone(ctx, opt, lock, res, events)
}

// forgetOne removes the record of v (unless dryRun), counting it in res.
func (a *Repo) forgetOne(ctx context.Context, dryRun bool, v *ForgetVerdict, res *ForgetResult, ev emitter) {
	res.Forgotten++
	if dryRun {
		return
	}
	if err := a.r.Backend().Remove(ctx, backend.Handle{Type: backend.Snapshot, Name: v.ID}); err != nil && !errors.Is(err, backend.ErrNotFound) {
		ev.send(Failed{Message: fmt.Sprintf("remove snapshot %s: %v", v.ID[:8], err)})
		res.Failed++
		return
	}
	v.Removed = true
	res.Removed++
}

// forgetNamed removes the snapshots opt.Snapshots names. Every name is
// resolved before anything is removed, so a typo removes nothing.
func (a *Repo) forgetNamed(ctx context.Context, opt ForgetOptions, group func(*snapshot.Snapshot) string, res *ForgetResult, ev emitter) error {
	recs, err := snapshot.Records(ctx, a.r)
	if err != nil {
		return err
	}
	var named []snapshot.Record
	seen := map[blob.ID]bool{}
	for _, ref := range opt.Snapshots {
		rec, err := snapshot.Match(recs, ref)
		if err != nil {
			return fmt.Errorf("forget: %w", err)
		}
		if !seen[rec.ID] {
			seen[rec.ID] = true
			named = append(named, rec)
		}
	}
	for _, rec := range named {
		v := ForgetVerdict{ID: rec.ID.String()}
		sn, err := snapshot.Load(ctx, a.r, rec.ID)
		switch {
		case err == nil:
			v.Time, v.Group = sn.Time, group(sn)
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			var u *snapshot.UnreadableError
			if errors.As(err, &u) {
				err = u.Err
			}
			v.Error, v.Size = err.Error(), rec.Size
		}
		a.forgetOne(ctx, opt.DryRun, &v, res, ev)
		res.Verdicts = append(res.Verdicts, v)
	}
	return nil
}

// forgetDone reports failed removals, then prunes if asked.
func (a *Repo) forgetDone(ctx context.Context, opt ForgetOptions, lock *repo.Lock, res *ForgetResult, events func(Event)) (*ForgetResult, error) {
	if res.Failed > 0 {
		return res, fmt.Errorf("forget: %d snapshots could not be removed", res.Failed)
	}
	if opt.Prune != nil && !opt.DryRun {
		pres, err := a.prune(ctx, lock, *opt.Prune, events)
		if err != nil {
			return res, err
		}
		res.Prune = pres
	}
	return res, nil
}

// Grouper returns the group key of a snapshot for a --group-by spec: any
// of host, paths and tags, comma-separated ("" for one group); the key is
// snapshot.GroupKey's String.
func Grouper(spec string) (func(*snapshot.Snapshot) string, error) {
	by, err := snapshot.ParseGroupBy(spec)
	if err != nil {
		return nil, err
	}
	return func(sn *snapshot.Snapshot) string { return by.Key(sn).String() }, nil
}
