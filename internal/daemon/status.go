package daemon

import (
	"time"
)

// JobInfo is what the daemon remembers of a job's results, beside the
// scheduler's state.
type JobInfo struct {
	// FirstSeen is when a daemon first ran the job.
	FirstSeen time.Time `json:"first_seen"`
	// RepoID is the job's repository's ID, as its last backup met it: it
	// names the repository's cache directory.
	RepoID string `json:"repo_id,omitempty"`
	// LastBackup is the last successful backup.
	LastBackup *BackupFacts `json:"last_backup,omitempty"`
	// LastError is the last failure's message (cleared by a success).
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at"`
	// LastFull and JournalSinceFull are the forced-full-scan policy's
	// inputs, from the last snapshot.
	LastFull         time.Time `json:"last_full"`
	JournalSinceFull int       `json:"journal_since_full"`
	// Verify is the budget used, from the last verify run.
	Verify *VerifyUsage `json:"verify,omitempty"`
	// LastForget is the last forget's result.
	LastForget *ForgetFacts `json:"last_forget,omitempty"`
}

// BackupFacts describe a finished backup.
type BackupFacts struct {
	Snapshot string    `json:"snapshot"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Reason is why it ran; Mode and ScanReason how it scanned and why.
	Reason         string        `json:"reason"`
	Mode           string        `json:"mode"`
	ScanReason     string        `json:"scan_reason"`
	Duration       time.Duration `json:"duration_ns"`
	FilesNew       uint64        `json:"files_new"`
	FilesChanged   uint64        `json:"files_changed"`
	FilesUnchanged uint64        `json:"files_unchanged"`
	BytesRead      uint64        `json:"bytes_read"`
	BytesAdded     uint64        `json:"bytes_added"`
	Errors         uint64        `json:"errors"`
	TotalFiles     uint64        `json:"total_files"`
	TotalBytes     uint64        `json:"total_bytes"`
	// Warning is a problem that did not cost the snapshot (entries that
	// could not be read, the local state not recorded, damage found by
	// verify).
	Warning string `json:"warning,omitempty"`
}

// VerifyUsage is the verification budget as the last verify left it.
type VerifyUsage struct {
	Time           time.Time `json:"time"`
	Budget         string    `json:"budget"`
	Requests       string    `json:"requests"`
	WindowBytes    int64     `json:"window_bytes"`
	WindowRequests int64     `json:"window_requests"`
	BytesLeft      int64     `json:"bytes_left"`
	RequestsLeft   int64     `json:"requests_left"`
	Packs          int       `json:"packs"`
	NeverVerified  int       `json:"never_verified"`
	Damaged        int       `json:"damaged"`
}

// ForgetFacts describe the last forget (and prune).
type ForgetFacts struct {
	Time       time.Time `json:"time"`
	Removed    int       `json:"removed"`
	Kept       int       `json:"kept"`
	Pruned     bool      `json:"pruned"`
	FreedBytes int64     `json:"freed_bytes,omitempty"`
}

// JobStatus is a job as `tidemark status` and the API show it.
type JobStatus struct {
	Name       string   `json:"name"`
	Repository string   `json:"repository"`
	Paths      []string `json:"paths"`
	// State is one of idle, pending (changes wait for a backup),
	// running, paused, failing.
	State  string `json:"state"`
	Paused bool   `json:"paused"`
	// Running is the operation in progress, since RunningSince.
	Running      OpKind     `json:"running,omitempty"`
	RunningSince *time.Time `json:"running_since,omitempty"`
	// RecoveryPoint is the age of the oldest change not yet in a
	// snapshot, in seconds (0: everything seen is in a snapshot);
	// UnprotectedSince is that change's time, UnprotectedWhy what it was.
	RecoveryPoint    float64    `json:"recovery_point_seconds"`
	UnprotectedSince *time.Time `json:"unprotected_since,omitempty"`
	UnprotectedWhy   string     `json:"unprotected_why,omitempty"`
	// NextRun is when the next operation is due if nothing changes.
	NextRun *time.Time `json:"next_run,omitempty"`
	// LastBackup is the last successful backup; LastSuccess its end.
	LastBackup  *BackupFacts `json:"last_backup,omitempty"`
	LastSuccess *time.Time   `json:"last_success,omitempty"`
	// Failures counts failed backups in a row, LastError the last one's
	// message; RetryAt is when the next attempt may start.
	Failures  int        `json:"failures"`
	LastError string     `json:"last_error,omitempty"`
	RetryAt   *time.Time `json:"retry_at,omitempty"`
	// NextFullScan is when the forced-full-scan policy next applies
	// (max_age or window); FullScanIn counts the journal backups left
	// before `every` forces one (0: not set). FullScanNote says it in
	// words.
	NextFullScan *time.Time `json:"next_full_scan,omitempty"`
	FullScanIn   int        `json:"full_scan_in_backups,omitempty"`
	FullScanNote string     `json:"full_scan_note"`
	// Verify is the verification budget used.
	Verify     *VerifyUsage `json:"verify,omitempty"`
	LastForget *ForgetFacts `json:"last_forget,omitempty"`
	// Alerting: the recovery point is past alert.after and was alerted.
	Alerting bool `json:"alerting"`
	// Counters are totals since the daemon started (for metrics).
	Counters Counters `json:"counters"`
}

// Counters total a job's operations since the daemon started.
type Counters struct {
	Backups       uint64            `json:"backups"`
	BackupsFailed uint64            `json:"backups_failed"`
	ByMode        map[string]uint64 `json:"by_mode"`
	BytesAdded    uint64            `json:"bytes_added"`
	BytesRead     uint64            `json:"bytes_read"`
	FilesChanged  uint64            `json:"files_changed"`
	DurationTotal float64           `json:"duration_seconds_total"`
	Forgets       uint64            `json:"forgets"`
	ForgetsFailed uint64            `json:"forgets_failed"`
	AlertsSent    uint64            `json:"alerts_sent"`
	AlertsFailed  uint64            `json:"alerts_failed"`
	ChangesSeen   uint64            `json:"changes_seen"`
}

// DaemonStatus describes the daemon itself.
type DaemonStatus struct {
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	Version    string    `json:"version"`
	ConfigFile string    `json:"config_file"`
	StateDir   string    `json:"state_dir"`
	// Watcher says whether the change watcher records (and how).
	WatcherUp     bool   `json:"watcher_up"`
	WatcherSource string `json:"watcher_source,omitempty"`
	WatcherNote   string `json:"watcher_note,omitempty"`
	Running       int    `json:"running"`
	MaxParallel   int    `json:"max_parallel"`
}
