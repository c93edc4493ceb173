package daemon

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
)

// store is the daemon's database: each job's scheduler state and last
// results, so that a restart knows how old the unprotected changes are
// and when things last ran, and the operation log. Like the state
// database it can be deleted: the daemon then starts as on a new machine.
type store struct {
	db   *sql.DB
	path string
	// lock is the daemon's lock file, held while the store is open (nil
	// for a reader such as `tidemark status`).
	lock *os.File
}

const storeSchema = `
CREATE TABLE IF NOT EXISTS jobs (
	name TEXT PRIMARY KEY,
	state TEXT NOT NULL,
	info TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ops (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	job TEXT NOT NULL,
	kind TEXT NOT NULL,
	reason TEXT NOT NULL,
	started INTEGER NOT NULL,
	finished INTEGER NOT NULL DEFAULT 0,
	outcome TEXT NOT NULL,
	message TEXT NOT NULL DEFAULT '',
	details TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ops_job ON ops (job, id);
CREATE TABLE IF NOT EXISTS meta (
	key TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
`

// Operation outcomes.
const (
	OutcomeRunning   = "running"
	OutcomeOK        = "ok"
	OutcomePartial   = "partial" // a snapshot was saved, with entries that could not be read or a warning
	OutcomeFailed    = "failed"
	OutcomeAbandoned = "abandoned" // the daemon stopped or was killed while it ran
)

// Operation is one entry of the operation log.
type Operation struct {
	ID       int64      `json:"id"`
	Job      string     `json:"job"`
	Kind     OpKind     `json:"kind"`
	Reason   string     `json:"reason"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Outcome  string     `json:"outcome"`
	Message  string     `json:"message,omitempty"`
	// Details holds the operation's result: for a backup the snapshot,
	// scan mode and reason, counts and bytes.
	Details json.RawMessage `json:"details,omitempty"`
}

func openStore(path string) (*store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open daemon database %s: %w", path, err)
	}
	uri := "file:" + strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	db, err := sql.Open("sqlite", uri+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("open daemon database %s: %w", path, err)
	}
	if _, err := db.Exec(storeSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open daemon database %s: %w (delete it to start afresh)", path, err)
	}
	return &store{db: db, path: path}, nil
}

func (s *store) close() error {
	err := s.db.Close()
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

// jobRecord is what the store keeps of a job.
type jobRecord struct {
	State JobState `json:"state"`
	Info  JobInfo  `json:"info"`
}

func (s *store) loadJob(ctx context.Context, name string) (jobRecord, bool, error) {
	var state, info string
	err := s.db.QueryRowContext(ctx, `SELECT state, info FROM jobs WHERE name = ?`, name).Scan(&state, &info)
	if errors.Is(err, sql.ErrNoRows) {
		return jobRecord{}, false, nil
	}
	if err != nil {
		return jobRecord{}, false, fmt.Errorf("load job %s from %s: %w", name, s.path, err)
	}
	var rec jobRecord
	if err := json.Unmarshal([]byte(state), &rec.State); err != nil {
		return jobRecord{}, false, fmt.Errorf("load job %s from %s: %w", name, s.path, err)
	}
	if err := json.Unmarshal([]byte(info), &rec.Info); err != nil {
		return jobRecord{}, false, fmt.Errorf("load job %s from %s: %w", name, s.path, err)
	}
	return rec, true, nil
}

func (s *store) saveJob(ctx context.Context, name string, rec jobRecord) error {
	state, err := json.Marshal(rec.State)
	if err != nil {
		return err
	}
	info, err := json.Marshal(rec.Info)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO jobs (name, state, info) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET state = excluded.state, info = excluded.info`, name, string(state), string(info))
	if err != nil {
		return fmt.Errorf("save job %s in %s: %w", name, s.path, err)
	}
	return nil
}

// startOp logs an operation as running and returns its ID.
func (s *store) startOp(ctx context.Context, op Operation) (int64, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO ops (job, kind, reason, started, outcome) VALUES (?, ?, ?, ?, ?)`,
		op.Job, string(op.Kind), op.Reason, op.Started.UnixNano(), OutcomeRunning)
	if err != nil {
		return 0, fmt.Errorf("log operation in %s: %w", s.path, err)
	}
	return res.LastInsertId()
}

// finishOp records how an operation ended, and trims the log to keep
// rows.
func (s *store) finishOp(ctx context.Context, id int64, finished time.Time, outcome, message string, details any, keep int) error {
	var d []byte
	if details != nil {
		var err error
		if d, err = json.Marshal(details); err != nil {
			return err
		}
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE ops SET finished = ?, outcome = ?, message = ?, details = ? WHERE id = ?`,
		finished.UnixNano(), outcome, message, string(d), id); err != nil {
		return fmt.Errorf("log operation in %s: %w", s.path, err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM ops WHERE id <= (SELECT MAX(id) FROM ops) - ?`, keep); err != nil {
		return fmt.Errorf("trim operation log in %s: %w", s.path, err)
	}
	return nil
}

// abandonRunning marks the operations a killed daemon left running.
func (s *store) abandonRunning(ctx context.Context, at time.Time, why string) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE ops SET outcome = ?, finished = ?, message = ? WHERE outcome = ?`,
		OutcomeAbandoned, at.UnixNano(), why, OutcomeRunning)
	if err != nil {
		return 0, fmt.Errorf("update operation log in %s: %w", s.path, err)
	}
	return res.RowsAffected()
}

// ops lists operations newest first: of one job ("" for all), with IDs
// below before (0 for no bound), at most limit.
func (s *store) ops(ctx context.Context, job string, before int64, limit int) ([]Operation, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := `SELECT id, job, kind, reason, started, finished, outcome, message, details FROM ops WHERE 1 = 1`
	var args []any
	if job != "" {
		q += ` AND job = ?`
		args = append(args, job)
	}
	if before > 0 {
		q += ` AND id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read operation log from %s: %w", s.path, err)
	}
	defer rows.Close()
	out := []Operation{}
	for rows.Next() {
		var op Operation
		var kind, details string
		var started, finished int64
		if err := rows.Scan(&op.ID, &op.Job, &kind, &op.Reason, &started, &finished, &op.Outcome, &op.Message, &details); err != nil {
			return nil, fmt.Errorf("read operation log from %s: %w", s.path, err)
		}
		op.Kind, op.Started = OpKind(kind), time.Unix(0, started).UTC()
		if finished != 0 {
			f := time.Unix(0, finished).UTC()
			op.Finished = &f
		}
		if details != "" {
			op.Details = json.RawMessage(details)
		}
		out = append(out, op)
	}
	return out, rows.Err()
}

func (s *store) setMeta(ctx context.Context, key, value string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("write %s in %s: %w", key, s.path, err)
	}
	return nil
}

func (s *store) meta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s from %s: %w", key, s.path, err)
	}
	return v, nil
}

// setAlive records that the daemon was running at t: after a crash, the
// changes made since are the ones nobody saw.
func (s *store) setAlive(ctx context.Context, t time.Time) error {
	return s.setMeta(ctx, "alive_at", t.UTC().Format(time.RFC3339Nano))
}

func (s *store) aliveAt(ctx context.Context) (time.Time, error) {
	v, err := s.meta(ctx, "alive_at")
	if err != nil || v == "" {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, v)
}

// OpenLog opens the operation log and job records of a daemon database
// read-only in spirit (for `tidemark status` while no daemon runs).
func OpenLog(path string) (*Log, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("daemon database %s: %w", path, err)
	}
	s, err := openStore(path)
	if err != nil {
		return nil, err
	}
	return &Log{s: s}, nil
}

// Log reads a daemon database.
type Log struct{ s *store }

// Close closes the database.
func (l *Log) Close() error { return l.s.close() }

// Operations lists operations newest first (job "" for all).
func (l *Log) Operations(ctx context.Context, job string, before int64, limit int) ([]Operation, error) {
	return l.s.ops(ctx, job, before, limit)
}

// Job returns the last recorded state and facts of a job.
func (l *Log) Job(ctx context.Context, name string) (JobState, JobInfo, bool, error) {
	rec, ok, err := l.s.loadJob(ctx, name)
	return rec.State, rec.Info, ok, err
}

// AliveAt is when the daemon last said it was running.
func (l *Log) AliveAt(ctx context.Context) (time.Time, error) { return l.s.aliveAt(ctx) }
