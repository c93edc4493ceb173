package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/config"
	"github.com/tidemark/tidemark/internal/plan"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/state"
)

// job is a configured job as the daemon runs it.
type job struct {
	cfg *config.Job
	// roots are the paths as the watcher and the backup name them.
	roots []string
	// host is what the job's snapshots record (for listing and forget).
	host string
	// ex are the job's exclude patterns (with its exclude files read when
	// the configuration was loaded), for telling which journal changes
	// concern its snapshots.
	ex *scan.Excluder
	// ignoreUnder and ignoreAt are the daemon's own files, whose changes
	// must not trigger backups (a cache or state directory inside a
	// backed-up tree would otherwise make every backup trigger the next):
	// everything below the first, and the directories of the second
	// themselves (whose entries the daemon's files are).
	ignoreUnder, ignoreAt []string

	// epoch and seen are how far this job has read the journal.
	epoch string
	seen  uint64

	info     JobInfo
	counters Counters
	// rpAlerted and failAlerted: an alert was sent and not yet resolved.
	rpAlerted, failAlerted bool
	// settledOnce: an operation of the job finished since the daemon
	// started; before that, a recovery point inherited from a previous run
	// is not alerted on (the startup backup is about to resolve it).
	settledOnce bool
	// opID is the running operation's log entry.
	opID int64
	// links is the job's repository's state database, open to look up the
	// hard-link records of its backup set (nil until a backup told the
	// repository's ID); linkSet keys the set in it.
	links   *state.DB
	linkSet []byte
}

// closeLinks closes the job's state database, if open.
func (j *job) closeLinks() {
	if j.links != nil {
		j.links.Close()
		j.links = nil
	}
}

// newJob prepares a configured job. Its exclude files are read now, for
// the trigger filter only: the backup reads them again itself.
func newJob(cfg *config.Job, stateDir, cacheRoot string) (*job, error) {
	roots, err := changes.NormalizeRoots(cfg.Paths)
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", cfg.Name, err)
	}
	patterns := append([]string(nil), cfg.Exclude...)
	for _, f := range cfg.ExcludeFiles {
		p, err := scan.ReadPatternFile(f)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", cfg.Name, err)
		}
		patterns = append(patterns, p...)
	}
	ex, err := scan.NewExcluder(patterns)
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", cfg.Name, err)
	}
	host := cfg.Host
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("job %s: hostname: %w", cfg.Name, err)
		}
	}
	j := &job{cfg: cfg, roots: roots, host: host, ex: ex}
	for _, d := range []string{stateDir, cacheRoot} {
		if d == "" {
			continue
		}
		if r, err := changes.NormalizeRoots([]string{d}); err == nil {
			d = r[0]
		}
		j.ignoreUnder = append(j.ignoreUnder, d)
		j.ignoreAt = append(j.ignoreAt, filepath.Dir(d))
	}
	return j, nil
}

func (j *job) name() string { return j.cfg.Name }

// timing is the job's schedule for the scheduler.
func (j *job) timing() Timing {
	t := j.cfg.Trigger
	tm := Timing{Settle: t.Settle, MinInterval: t.MinInterval, MaxDelay: t.MaxDelay, SafetyNet: t.SafetyNet, Retry: t.Retry, RetryMax: t.RetryMax}
	if j.cfg.Retention != nil {
		tm.Maintenance = j.cfg.Retention.Every
	}
	return tm
}

// relevant reports whether a delta concerns the job's snapshots: a
// directory, subtree or file below its roots that neither the daemon's own
// files nor the job's excludes account for, or a hard-linked file known
// only by its number (a change through a name outside the roots) that
// linked says the job's last scans met. It returns the first such path,
// for the log to say why a backup ran.
func (j *job) relevant(d changes.Delta, linked func(changes.Inode) bool) (string, bool) {
	for _, p := range d.Trees {
		if !j.ignored(p) {
			return p, true
		}
	}
	for _, p := range d.Dirs {
		if !j.ignored(p) {
			return p, true
		}
	}
	for _, in := range d.Inodes {
		switch {
		case in.Path != "" && !j.ignored(in.Path):
			return in.Path, true
		case in.Path == "" && linked(in):
			what := fmt.Sprintf("hard-linked file %d:%d", in.Dev, in.Ino)
			if in.Outside != "" {
				what += " (through " + in.Outside + ")"
			}
			return what, true
		}
	}
	return "", false
}

func (j *job) ignored(p string) bool {
	for _, d := range j.ignoreAt {
		if p == d {
			return true
		}
	}
	for _, d := range j.ignoreUnder {
		if within(p, d) {
			return true
		}
	}
	root := ""
	for _, r := range j.roots {
		if within(p, r) {
			root = r
			break
		}
	}
	if root == "" {
		return false
	}
	// Excluded itself or below an excluded directory: not in snapshots.
	for q := p; ; q = filepath.Dir(q) {
		if j.ex.Excluded(q, filepath.Base(q)) {
			return true
		}
		if q == root || q == filepath.Dir(q) {
			return false
		}
	}
}

// within reports whether p is root or below it (both absolute and clean).
func within(p, root string) bool {
	if root == "/" || p == root {
		return true
	}
	return strings.HasPrefix(p, root) && len(p) > len(root) && p[len(root)] == filepath.Separator
}

// policy is the forced-full-scan policy for a backup starting at now.
// The window applies once per occurrence: a backup every minute inside
// "01:00-05:00" must not scan fully every minute, only the first time.
func (j *job) policy(now time.Time) plan.Policy {
	fs := j.cfg.FullScan
	p := plan.Policy{Every: fs.Every, MaxAge: fs.MaxAge}
	if fs.Window != "" && plan.InWindow(fs.Window, now.Local()) && j.info.LastFull.Before(windowStart(fs.Window, now.Local())) {
		p.Window = fs.Window
	}
	return p
}

// windowStart is when the occurrence of the window that now is in began.
func windowStart(window string, now time.Time) time.Time {
	start, _, err := plan.ParseWindow(window)
	if err != nil {
		return now
	}
	y, m, d := now.Date()
	t := time.Date(y, m, d, start/60, start%60, 0, 0, now.Location())
	if t.After(now) {
		t = t.AddDate(0, 0, -1)
	}
	return t
}

// nextWindowStart is when the window next begins after now.
func nextWindowStart(window string, now time.Time) time.Time {
	t := windowStart(window, now)
	for !t.After(now) {
		t = t.AddDate(0, 0, 1)
	}
	return t
}

// fullScanStatus says when the forced-full-scan policy next applies.
func (j *job) fullScanStatus(now time.Time) (next *time.Time, in int, note string) {
	if j.info.LastBackup == nil {
		return nil, 0, "the first backup scans fully"
	}
	fs := j.cfg.FullScan
	var notes []string
	pick := func(t time.Time, why string) {
		if next == nil || t.Before(*next) {
			tt := t
			next = &tt
		}
		notes = append(notes, why)
	}
	if fs.MaxAge > 0 && !j.info.LastFull.IsZero() {
		t := j.info.LastFull.Add(fs.MaxAge)
		pick(t, fmt.Sprintf("max_age %s: at %s", fs.MaxAge, t.Local().Format("2006-01-02 15:04")))
	}
	if fs.Window != "" {
		t := nextWindowStart(fs.Window, now.Local())
		if plan.InWindow(fs.Window, now.Local()) && j.info.LastFull.Before(windowStart(fs.Window, now.Local())) {
			t = now
		}
		pick(t, fmt.Sprintf("window %s: at %s", fs.Window, t.Local().Format("2006-01-02 15:04")))
	}
	if fs.Every > 0 {
		in = max(fs.Every-j.info.JournalSinceFull, 1)
		notes = append(notes, fmt.Sprintf("every %d: after %d more journal backups", fs.Every, in))
	}
	if len(notes) == 0 {
		return nil, 0, "no forced full scans (full_scan policy off)"
	}
	return next, in, strings.Join(notes, "; ")
}
