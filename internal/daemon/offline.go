package daemon

import (
	"context"
	"path/filepath"
	"time"

	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/config"
	"github.com/tidemark/tidemark/internal/scan"
)

// OfflineStatus describes the jobs of cfg as the daemon database in
// stateDir last recorded them, for `tidemark status` while no daemon
// runs. Changes since the daemon was last known alive were seen by
// nobody, so the recovery points count from then at the latest.
func OfflineStatus(ctx context.Context, cfg *config.Config, stateDir string, now time.Time) (DaemonStatus, []JobStatus, error) {
	l, err := OpenLog(filepath.Join(stateDir, DatabaseName))
	if err != nil {
		return DaemonStatus{}, nil, err
	}
	defer l.Close()
	aliveAt, err := l.AliveAt(ctx)
	if err != nil {
		return DaemonStatus{}, nil, err
	}
	d := &Daemon{cfg: cfg, sched: NewScheduler(cfg.Server.MaxParallel), jobs: map[string]*job{}, feed: &feed{}, clock: wallClock{}}
	ds := DaemonStatus{ConfigFile: cfg.File, StateDir: stateDir, MaxParallel: cfg.Server.MaxParallel, WatcherNote: "tidemark run is not running"}
	if !aliveAt.IsZero() {
		ds.Started = aliveAt.UTC() // for an offline daemon: when it was last alive
	}
	var out []JobStatus
	for _, jc := range cfg.Jobs {
		st, info, known, err := l.Job(ctx, jc.Name)
		if err != nil {
			return DaemonStatus{}, nil, err
		}
		roots, err := changes.NormalizeRoots(jc.Paths)
		if err != nil {
			roots = jc.Paths
		}
		j := &job{cfg: jc, roots: roots, ex: &scan.Excluder{}, info: info}
		if st.DirtySince.IsZero() {
			switch {
			case known && !aliveAt.IsZero():
				st.DirtySince = aliveAt
			case info.LastBackup != nil:
				st.DirtySince = info.LastBackup.Started
			}
			if !st.DirtySince.IsZero() {
				st.DirtyWhy = "tidemark run is not running: changes since it stopped are not seen"
			}
		}
		st.Running = ""
		d.jobs[jc.Name] = j
		d.sched.jobs[jc.Name] = &schedJob{t: j.timing(), st: st}
		s := d.status(j, now)
		s.NextRun = nil // nothing runs
		out = append(out, s)
	}
	return ds, out, nil
}
