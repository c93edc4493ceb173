package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/state"
)

// A run that stops because the budget is spent records until when the
// pack at the head of the rotation cannot fit (waitKey in the state
// database). Runs before then would download nothing, so they return at
// once without reading the index: with backup --verify every minute, all
// but a few runs a day cost a database query, not a pass over every blob
// of the repository.
const waitKey = "verify_wait"

// wait is the record of a spent budget.
type wait struct {
	Until   time.Time `json:"until"`
	Stopped string    `json:"stopped"`
	// Budgets are the budgets it was computed for; other budgets ignore it.
	Budgets string `json:"budgets"`
	// Damaged is what the run knew of damage, reported again while the
	// wait lasts.
	Damaged []Damaged `json:"damaged,omitempty"`
}

func budgetsKey(opt Options) string {
	return fmt.Sprintf("%d/%d %d/%d", opt.Bytes.Amount, opt.Bytes.Window(), opt.Requests.Amount, opt.Requests.Window())
}

// loadWait returns the recorded wait if it applies to opt at now.
func loadWait(ctx context.Context, st *state.DB, opt Options, now time.Time) (*wait, error) {
	v, err := st.Meta(ctx, waitKey)
	if err != nil || v == "" {
		return nil, err
	}
	var w wait
	if json.Unmarshal([]byte(v), &w) != nil {
		return nil, nil // unreadable: a full run rewrites it
	}
	if w.Budgets != budgetsKey(opt) || !now.Before(w.Until) {
		return nil, nil
	}
	return &w, nil
}

// saveWait records until when the head pack of size need cannot be
// downloaded under opt's budgets, as the ledger stands at now; a zero need
// clears the record.
func saveWait(ctx context.Context, st *state.DB, opt Options, now time.Time, need int64, stopped string, damaged []Damaged) error {
	if need == 0 {
		return st.SetMeta(ctx, waitKey, "")
	}
	tb, err := fitsAt(ctx, st, now, opt.Bytes, need, func(d state.VerifyDownload) int64 { return d.Bytes })
	if err != nil {
		return err
	}
	tr, err := fitsAt(ctx, st, now, opt.Requests, 1, func(state.VerifyDownload) int64 { return 1 })
	if err != nil {
		return err
	}
	until := tb
	if tr.After(until) {
		until = tr
	}
	if !until.After(now) {
		return st.SetMeta(ctx, waitKey, "")
	}
	buf, err := json.Marshal(wait{Until: until, Stopped: stopped, Budgets: budgetsKey(opt), Damaged: damaged})
	if err != nil {
		return err
	}
	return st.SetMeta(ctx, waitKey, string(buf))
}

// fitsAt returns the first time at which the downloads still in b's window
// leave room for need more (bytes or requests, as cost counts them).
// Downloads leave the window one period after they were made.
func fitsAt(ctx context.Context, st *state.DB, now time.Time, b Budget, need int64, cost func(state.VerifyDownload) int64) (time.Time, error) {
	ds, err := st.VerifyDownloads(ctx, now.Add(-b.Window()))
	if err != nil {
		return time.Time{}, err
	}
	var spent int64
	for _, d := range ds {
		spent += cost(d)
	}
	at := now
	for _, d := range ds {
		if spent+need <= b.Amount {
			break
		}
		spent -= cost(d)
		at = d.At.Add(b.Window())
	}
	return at, nil
}

// waiting fills res for a run during a recorded wait: what the window
// holds, and the damage known, minus packs no longer stored.
func waiting(ctx context.Context, r *repo.Repository, st *state.DB, opt Options, now time.Time, w *wait, res *Result) error {
	res.Stopped, res.WaitUntil = w.Stopped, w.Until
	var err error
	if res.WindowBytes, res.WindowRequests, err = spent(ctx, st, opt, now); err != nil {
		return err
	}
	res.BytesLeft = max(0, opt.Bytes.Amount-res.WindowBytes)
	res.RequestsLeft = max(0, opt.Requests.Amount-res.WindowRequests)
	for _, d := range w.Damaged {
		h, ok := parseObject(d.Object)
		if !ok {
			continue
		}
		if _, err := r.Raw().Stat(ctx, h); errors.Is(err, backend.ErrNotFound) {
			continue // removed by prune or repair
		}
		res.Damaged = append(res.Damaged, d)
	}
	return nil
}

// parseObject splits "data/<id>" or "trees/<id>".
func parseObject(s string) (backend.Handle, bool) {
	t, name, ok := strings.Cut(s, "/")
	if !ok || name == "" || (backend.FileType(t) != backend.Data && backend.FileType(t) != backend.Tree) {
		return backend.Handle{}, false
	}
	return backend.Handle{Type: backend.FileType(t), Name: name}, true
}
