package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/location"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/config"
	"github.com/tidemark/tidemark/internal/plan"
	"github.com/tidemark/tidemark/internal/prune"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/verify"
)

// opParams is what an operation needs, copied when it starts so that it
// runs without the daemon's lock.
type opParams struct {
	job    string
	kind   OpKind
	id     int64
	cfg    *config.Job
	roots  []string
	host   string
	reason string
	policy plan.Policy
	rp     time.Duration
}

// opResult is how an operation ended.
type opResult struct {
	outcome string
	message string
	details any
	elapsed time.Duration

	// Backups: the snapshot's facts and cursor, the policy's counters, the
	// verify budget used.
	facts            *BackupFacts
	cursor           changes.Cursor
	lastFull         time.Time
	journalSinceFull int
	verify           *VerifyUsage
	// Forget: what it did.
	forget *ForgetFacts
	// repoID is the repository's ID, once opened.
	repoID string
}

// forgetMaxWait bounds how long a prune waits for clients that may still
// use the old index: the job's backups wait for its prune meanwhile.
const forgetMaxWait = 10 * time.Minute

// appOptions opens a job's repository the way the CLI would with the
// job's settings.
func (d *Daemon) appOptions(ctx context.Context, jc *config.Job) app.Options {
	name := jc.Name
	lookup := jc.S3BucketLookup
	if lookup == "" {
		lookup = "auto"
	}
	return app.Options{
		Repository:  jc.Repository,
		Password:    func() ([]byte, error) { return jc.Password.Resolve(ctx) },
		CacheDir:    d.cacheRoot,
		KeyCache:    true,
		Compression: jc.Compression,
		Backend: location.Options{S3Region: jc.S3Region, S3BucketLookup: lookup, UploadKiB: jc.LimitUploadKiB, DownloadKiB: jc.LimitDownloadKiB,
			Retry: func(op string, h backend.Handle, err error, attempt int, wait time.Duration) {
				d.logf(name, "warning", "%s %s failed (attempt %d), retrying in %v: %v", op, h, attempt, wait.Round(time.Millisecond), err)
			}},
		Events: func(ev app.Event) { d.appEvent(name, ev) },
	}
}

// appEvent logs what an operation reports, and streams backup progress.
func (d *Daemon) appEvent(job string, ev app.Event) {
	switch e := ev.(type) {
	case app.Warning:
		d.logf(job, "warning", "%s", e.Message)
	case app.Failed:
		d.logf(job, "error", "%s", e.Message)
	case app.Problem:
		d.logf(job, "error", "problem: %s: %s: %s", e.Kind, e.Object, e.Err)
	case app.Log:
		d.logf(job, "info", "%s", e.Message)
	case app.ScanStarted:
		if e.Declined != "" {
			d.logf(job, "info", "the journal scan gave up (%s); starting over", e.Declined)
		}
		d.logf(job, "info", "scan: %s (%s)", e.Mode, e.Reason)
	case app.Progress:
		p := e
		d.hub.send(Event{Time: time.Now().UTC(), Type: EventProgress, Job: job, Progress: &p})
	}
}

// openError says why a job's repository did not open, in the words a user
// needs to fix it.
func openError(jc *config.Job, err error) error {
	switch {
	case errors.Is(err, app.ErrWrongPassword):
		return fmt.Errorf("wrong password for repository %s (%s): %w", jc.Repository, jc.Password, err)
	case errors.Is(err, app.ErrNoRepository):
		return fmt.Errorf("no repository at %s (create it with `tidemark init -r %s`): %w", jc.Repository, jc.Repository, err)
	}
	return fmt.Errorf("open repository %s: %w", jc.Repository, err)
}

// runBackup runs the job's hooks around a backup, then verify within the
// budget.
func (d *Daemon) runBackup(ctx context.Context, p opParams) opResult {
	began := time.Now()
	jc := p.cfg
	facts := hookFacts{Job: p.job, Repository: jc.Repository, Reason: p.reason, Paths: jc.Paths, RecoveryPoint: p.rp}
	hook := func(name, line string) error {
		if line == "" {
			return nil
		}
		f := facts
		f.Hook = name
		out, err := runHook(ctx, line, jc.Hooks.Timeout, f)
		if out != "" {
			d.logf(p.job, "info", "%s hook: %s", name, out)
		}
		if err != nil {
			return fmt.Errorf("%s hook: %w", name, err)
		}
		return nil
	}
	fail := func(err error) opResult {
		facts.Err = err
		if herr := hook("failure", jc.Hooks.Failure); herr != nil {
			d.logf(p.job, "warning", "%v", herr)
		}
		return opResult{outcome: OutcomeFailed, message: "no snapshot was written: " + err.Error(), elapsed: time.Since(began)}
	}
	if err := hook("before", jc.Hooks.Before); err != nil {
		return fail(err)
	}
	r, err := app.Open(ctx, d.appOptions(ctx, jc))
	if err != nil {
		return fail(openError(jc, err))
	}
	defer r.Close()
	res, err := r.Backup(ctx, app.BackupOptions{Paths: jc.Paths, Excludes: jc.Exclude, ExcludeFiles: jc.ExcludeFiles,
		OneFileSystem: jc.OneFileSystem, Tags: jc.Tags, Host: jc.Host, Scan: plan.ScanAuto, Policy: p.policy, StateDir: d.stateDir,
		Events: func(ev app.Event) { d.appEvent(p.job, ev) }, ProgressInterval: time.Second})
	var sn *snapshot.Snapshot
	var warnings []string
	var ce *backup.CommittedError
	switch {
	case err == nil:
		sn = res.Snapshot
	case errors.As(err, &ce):
		// The snapshot is saved: recording it locally failed, which costs
		// later backups time, not data.
		sn = ce.Result.Snapshot
		warnings = append(warnings, err.Error())
	default:
		return fail(err)
	}
	out := opResult{outcome: OutcomeOK, lastFull: sn.Scan.LastFull, journalSinceFull: sn.Scan.JournalSinceFull, repoID: r.ID()}
	if len(sn.Scan.Cursor) > 0 {
		if err := json.Unmarshal(sn.Scan.Cursor, &out.cursor); err != nil {
			out.cursor = changes.Cursor{}
		}
	}
	f := &BackupFacts{Snapshot: sn.ID.String(), Started: sn.Time, Finished: time.Now().UTC(), Reason: p.reason, Mode: sn.Scan.Mode,
		ScanReason: sn.Scan.Reason, Duration: sn.Summary.Duration, FilesNew: sn.Summary.FilesNew, FilesChanged: sn.Summary.FilesChanged,
		FilesUnchanged: sn.Summary.FilesUnchanged, BytesRead: sn.Summary.BytesRead, BytesAdded: sn.Summary.BytesAdded,
		Errors: sn.Summary.Errors, TotalFiles: sn.Totals.Files, TotalBytes: sn.Totals.Bytes}
	if sn.Summary.Errors > 0 {
		warnings = append(warnings, fmt.Sprintf("%d entries could not be read", sn.Summary.Errors))
		if res != nil {
			for i, e := range res.Errors {
				if i == 5 {
					d.logf(p.job, "warning", "... and %d more", len(res.Errors)-i)
					break
				}
				d.logf(p.job, "warning", "%s: %s", e.Path, e.Err)
			}
		}
	}
	if jc.Verify.On() {
		usage, problems, err := d.verify(ctx, r, jc)
		switch {
		case err != nil:
			warnings = append(warnings, "verify: "+err.Error())
		case problems > 0:
			warnings = append(warnings, fmt.Sprintf("verify found %d problems (run `tidemark check --read-data`, then `tidemark repair packs`)", problems))
		}
		out.verify = usage
	}
	f.Warning = strings.Join(warnings, "; ")
	out.facts, out.details = f, f
	facts.Facts = f
	out.message = fmt.Sprintf("snapshot %s (%s scan: %s), %d new, %d changed files, %d bytes added in %s",
		sn.ID.Short(), f.Mode, f.ScanReason, f.FilesNew, f.FilesChanged, f.BytesAdded, f.Duration.Round(time.Millisecond))
	if len(warnings) > 0 {
		out.outcome = OutcomePartial
		out.message += "; " + f.Warning
	}
	if err := hook("after", jc.Hooks.After); err != nil {
		d.logf(p.job, "warning", "%v", err)
	}
	out.elapsed = time.Since(began)
	return out
}

// verify downloads and checks packs within the job's budget.
func (d *Daemon) verify(ctx context.Context, r *app.Repo, jc *config.Job) (*VerifyUsage, int, error) {
	b, err := verify.ParseBudget(jc.Verify.Budget)
	if err != nil {
		return nil, 0, err
	}
	n, err := verify.ParseRequests(jc.Verify.Requests)
	if err != nil {
		return nil, 0, err
	}
	res, err := r.Verify(ctx, verify.Options{Bytes: b, Requests: n}, func(ev app.Event) { d.appEvent(jc.Name, ev) })
	if err != nil {
		return nil, 0, err
	}
	return &VerifyUsage{Time: time.Now().UTC(), Budget: jc.Verify.Budget, Requests: jc.Verify.Requests, WindowBytes: res.WindowBytes,
		WindowRequests: res.WindowRequests, BytesLeft: res.BytesLeft, RequestsLeft: res.RequestsLeft, Packs: res.Packs,
		NeverVerified: res.NeverVerified, Damaged: len(res.Damaged)}, len(res.Problems), nil
}

// runForget applies the job's retention policy to its snapshots (this
// host, these paths), and prunes when the job says so.
func (d *Daemon) runForget(ctx context.Context, p opParams) opResult {
	began := time.Now()
	rc := p.cfg.Retention
	if rc == nil {
		return opResult{outcome: OutcomeOK, message: "no retention policy", elapsed: time.Since(began)}
	}
	r, err := app.Open(ctx, d.appOptions(ctx, p.cfg))
	if err != nil {
		return opResult{outcome: OutcomeFailed, message: openError(p.cfg, err).Error(), elapsed: time.Since(began)}
	}
	defer r.Close()
	opt := app.ForgetOptions{Policy: rc.Policy, Filter: snapshot.Filter{Hosts: []string{p.host}, Paths: p.roots}, GroupBy: "host,paths"}
	if rc.Prune {
		opt.Prune = &prune.Options{MaxUnused: rc.MaxUnused, RepackSmall: true, MaxWait: forgetMaxWait}
	}
	res, err := r.Forget(ctx, opt, func(ev app.Event) { d.appEvent(p.job, ev) })
	if res == nil {
		return opResult{outcome: OutcomeFailed, message: fmt.Sprintf("forget: %v", err), elapsed: time.Since(began)}
	}
	f := &ForgetFacts{Time: time.Now().UTC(), Removed: res.Removed, Pruned: res.Prune != nil}
	for _, v := range res.Verdicts {
		if v.Keep {
			f.Kept++
		}
	}
	msg := fmt.Sprintf("kept %d snapshots, removed %d (%s)", f.Kept, f.Removed, rc.Rules)
	if res.Prune != nil {
		f.FreedBytes = res.Prune.FreedBytes
		msg += fmt.Sprintf("; prune freed %d bytes", res.Prune.FreedBytes)
	}
	out := opResult{outcome: OutcomeOK, message: msg, details: f, forget: f, elapsed: time.Since(began)}
	if err != nil {
		out.outcome, out.message = OutcomeFailed, msg+": "+err.Error()
	}
	return out
}
