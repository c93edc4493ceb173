// Package state is Tidemark's local SQLite database: backup history, the
// per-directory stat cache that lets a backup skip reading unchanged
// files, and the ledger of packs downloaded by verify. Everything in it can
// be discarded; the repository is the truth, a missing stat cache only
// means files are read again, and a missing ledger only means verify
// starts its rotation afresh with a full budget.
package state

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

	"github.com/tidemark/tidemark/internal/blob"
	_ "modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
)

// DB is an open state database.
type DB struct {
	db  *sql.DB
	get *sql.Stmt
}

const schema = `
CREATE TABLE IF NOT EXISTS backups (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	snapshot TEXT NOT NULL,
	time TEXT NOT NULL,
	host TEXT NOT NULL,
	roots TEXT NOT NULL,
	mode TEXT NOT NULL,
	reason TEXT NOT NULL,
	files_new INTEGER, files_changed INTEGER, files_unchanged INTEGER,
	bytes_read INTEGER, bytes_added INTEGER,
	total_bytes INTEGER, total_files INTEGER,
	errors INTEGER,
	duration_ms INTEGER
);
CREATE TABLE IF NOT EXISTS backup_sets (
	backup_set BLOB PRIMARY KEY,
	settings TEXT NOT NULL,
	updated TEXT NOT NULL,
	last_snapshot TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS links (
	backup_set BLOB NOT NULL,
	dev INTEGER NOT NULL,
	ino INTEGER NOT NULL,
	dir BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS links_inode ON links (backup_set, dev, ino);
CREATE INDEX IF NOT EXISTS links_dir ON links (backup_set, dir);
CREATE TABLE IF NOT EXISTS meta (
	key TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dirstats (
	backup_set BLOB NOT NULL,
	path BLOB NOT NULL,
	tree BLOB NOT NULL,
	entries BLOB NOT NULL,
	PRIMARY KEY (backup_set, path)
) WITHOUT ROWID;
-- Stat cache rows of a backup still running: moved into dirstats once its
-- snapshot is saved, so that a backup of a large tree need not hold every
-- directory's records in memory until then.
CREATE TABLE IF NOT EXISTS dirstats_staged (
	run INTEGER NOT NULL,
	backup_set BLOB NOT NULL,
	path BLOB NOT NULL,
	tree BLOB NOT NULL,
	entries BLOB NOT NULL,
	created INTEGER NOT NULL,
	PRIMARY KEY (run, path)
) WITHOUT ROWID;
-- The verify ledger. Times are Unix nanoseconds, not text like the
-- history's, because the budget sums downloads over time ranges.
-- verify_downloads has one row per pack download (one request).
CREATE TABLE IF NOT EXISTS verify_downloads (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	time INTEGER NOT NULL,
	pack TEXT NOT NULL,
	bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS verify_downloads_time ON verify_downloads (time);
-- verified_packs holds each pack's last verification and the damage it
-- found ('' when none).
CREATE TABLE IF NOT EXISTS verified_packs (
	pack TEXT PRIMARY KEY,
	verified_at INTEGER NOT NULL,
	problem TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
`

// Open opens or creates the database at path.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	// The path goes into a URI: escape what SQLite would take for the query
	// ('?'), a fragment ('#') or an escape ('%'), or another file is opened.
	uri := "file:" + strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	db, err := sql.Open("sqlite", uri+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state database %s: %w (delete it to start afresh)", path, err)
	}
	get, err := db.Prepare(`SELECT tree, entries FROM dirstats WHERE backup_set = ? AND path = ?`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	return &DB{db: db, get: get}, nil
}

// Close closes the database.
func (d *DB) Close() error {
	d.get.Close()
	return d.db.Close()
}

// Backup is one row of backup history.
type Backup struct {
	Snapshot       string        `json:"snapshot"`
	Time           time.Time     `json:"time"`
	Host           string        `json:"host"`
	Roots          []string      `json:"roots"`
	Mode           string        `json:"mode"`
	Reason         string        `json:"reason"`
	FilesNew       uint64        `json:"files_new"`
	FilesChanged   uint64        `json:"files_changed"`
	FilesUnchanged uint64        `json:"files_unchanged"`
	BytesRead      uint64        `json:"bytes_read"`
	BytesAdded     uint64        `json:"bytes_added"`
	TotalBytes     uint64        `json:"total_bytes"`
	TotalFiles     uint64        `json:"total_files"`
	Errors         uint64        `json:"errors"`
	Duration       time.Duration `json:"duration_ns"`
}

// RecordBackup appends a history row.
func (d *DB) RecordBackup(ctx context.Context, b Backup) error {
	roots, _ := json.Marshal(b.Roots)
	_, err := d.db.ExecContext(ctx, `INSERT INTO backups (snapshot, time, host, roots, mode, reason, files_new, files_changed,
		files_unchanged, bytes_read, bytes_added, total_bytes, total_files, errors, duration_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		b.Snapshot, b.Time.UTC().Format(time.RFC3339Nano), b.Host, string(roots), b.Mode, b.Reason,
		int64(b.FilesNew), int64(b.FilesChanged), int64(b.FilesUnchanged), int64(b.BytesRead), int64(b.BytesAdded),
		int64(b.TotalBytes), int64(b.TotalFiles), int64(b.Errors), b.Duration.Milliseconds())
	if err != nil {
		return fmt.Errorf("record backup history: %w", err)
	}
	return nil
}

// History returns the last n backups, newest first.
func (d *DB) History(ctx context.Context, n int) ([]Backup, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT snapshot, time, host, roots, mode, reason, files_new, files_changed, files_unchanged,
		bytes_read, bytes_added, total_bytes, total_files, errors, duration_ms FROM backups ORDER BY id DESC LIMIT ?`, n)
	if err != nil {
		return nil, fmt.Errorf("read backup history: %w", err)
	}
	defer rows.Close()
	var out []Backup
	for rows.Next() {
		var b Backup
		var t, roots string
		var ms int64
		// The counts were stored as int64 (SQLite has no unsigned type);
		// scanning them straight into uint64 fails for values past
		// MaxInt64, which would make every later History call fail.
		var c [8]int64
		if err := rows.Scan(&b.Snapshot, &t, &b.Host, &roots, &b.Mode, &b.Reason, &c[0], &c[1], &c[2],
			&c[3], &c[4], &c[5], &c[6], &c[7], &ms); err != nil {
			return nil, fmt.Errorf("read backup history: %w", err)
		}
		b.FilesNew, b.FilesChanged, b.FilesUnchanged = uint64(c[0]), uint64(c[1]), uint64(c[2])
		b.BytesRead, b.BytesAdded, b.TotalBytes, b.TotalFiles, b.Errors = uint64(c[3]), uint64(c[4]), uint64(c[5]), uint64(c[6]), uint64(c[7])
		b.Time, _ = time.Parse(time.RFC3339Nano, t)
		_ = json.Unmarshal([]byte(roots), &b.Roots)
		b.Duration = time.Duration(ms) * time.Millisecond
		out = append(out, b)
	}
	return out, rows.Err()
}

// DirStats returns the stat cache row of one directory of a backup set:
// the tree ID the row was recorded with and its encoded entries.
func (d *DB) DirStats(set []byte, path string) (blob.ID, []byte, bool, error) {
	var tree, entries []byte
	err := d.get.QueryRow(set, []byte(path)).Scan(&tree, &entries)
	if errors.Is(err, sql.ErrNoRows) {
		return blob.Null, nil, false, nil
	}
	if err != nil {
		return blob.Null, nil, false, fmt.Errorf("read stat cache for %s: %w", path, err)
	}
	var id blob.ID
	if len(tree) != len(id) {
		return blob.Null, nil, false, nil
	}
	copy(id[:], tree)
	return id, entries, true, nil
}

// SetMeta stores a small named value.
func (d *DB) SetMeta(ctx context.Context, key, value string) error {
	if _, err := d.db.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`, key, value); err != nil {
		return fmt.Errorf("write state metadata %s: %w", key, err)
	}
	return nil
}

// Meta returns the value stored under key, "" if none.
func (d *DB) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := d.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read state metadata %s: %w", key, err)
	}
	return v, nil
}

// MarkRebuilt records that the database was recreated from the repository
// (tidemark cache rebuild), so backups can say why they scan fully.
func (d *DB) MarkRebuilt(ctx context.Context, at time.Time) error {
	return d.SetMeta(ctx, "rebuilt", at.UTC().Format(time.RFC3339))
}

// Rebuilt returns when the database was recreated from the repository, or
// the zero time.
func (d *DB) Rebuilt(ctx context.Context) (time.Time, error) {
	v, err := d.Meta(ctx, "rebuilt")
	if err != nil || v == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("read state metadata: rebuild time %q: %w", v, err)
	}
	return t, nil
}

// HasDirStats reports whether the set has any stat cache rows.
func (d *DB) HasDirStats(set []byte) (bool, error) {
	var n int
	err := d.db.QueryRow(`SELECT COUNT(*) FROM (SELECT 1 FROM dirstats WHERE backup_set = ? LIMIT 1)`, set).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read stat cache: %w", err)
	}
	return n > 0, nil
}

// DirStatsUpdate is one row to write.
type DirStatsUpdate struct {
	Path    string
	Tree    blob.ID
	Entries []byte
}

// PutDirStats writes rows in one transaction.
func (d *DB) PutDirStats(ctx context.Context, set []byte, rows []DirStatsUpdate) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write stat cache: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO dirstats (backup_set, path, tree, entries) VALUES (?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("write stat cache: %w", err)
	}
	defer st.Close()
	for _, r := range rows {
		if _, err := st.ExecContext(ctx, set, []byte(r.Path), r.Tree[:], r.Entries); err != nil {
			return fmt.Errorf("write stat cache for %s: %w", r.Path, err)
		}
	}
	return tx.Commit()
}

// StageDirStats writes stat cache rows of the running backup run (an ID
// of the caller's choosing, unique among concurrent runs) aside; they take
// effect with CommitDirStats, once the snapshot they describe is saved.
func (d *DB) StageDirStats(ctx context.Context, run int64, set []byte, rows []DirStatsUpdate) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("stage stat cache rows: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO dirstats_staged (run, backup_set, path, tree, entries, created) VALUES (?,?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("stage stat cache rows: %w", err)
	}
	defer st.Close()
	now := time.Now().UnixNano()
	for _, r := range rows {
		if _, err := st.ExecContext(ctx, run, set, []byte(r.Path), r.Tree[:], r.Entries, now); err != nil {
			return fmt.Errorf("stage stat cache row for %s: %w", r.Path, err)
		}
	}
	return tx.Commit()
}

// CommitDirStats makes the rows staged by run the stat cache's, in one
// transaction.
func (d *DB) CommitDirStats(ctx context.Context, run int64) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write stat cache: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO dirstats (backup_set, path, tree, entries)
		SELECT backup_set, path, tree, entries FROM dirstats_staged WHERE run = ?`, run); err != nil {
		return fmt.Errorf("write stat cache: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM dirstats_staged WHERE run = ?`, run); err != nil {
		return fmt.Errorf("write stat cache: %w", err)
	}
	return tx.Commit()
}

// DropStagedDirStats forgets what run staged (its backup failed), and
// rows that runs which died left behind a day ago or more.
func (d *DB) DropStagedDirStats(ctx context.Context, run int64) error {
	if _, err := d.db.ExecContext(ctx, `DELETE FROM dirstats_staged WHERE run = ? OR created < ?`,
		run, time.Now().Add(-24*time.Hour).UnixNano()); err != nil {
		return fmt.Errorf("drop staged stat cache rows: %w", err)
	}
	return nil
}

// SaveSettings stores the settings of a backup set (paths, excludes,
// options and the forced-full-scan policy, as JSON) so that continuous mode
// and the web UI run it the same way.
// lastSnapshot is the set's newest snapshot ID, so the next backup finds
// its parent without listing every snapshot in the repository.
func (d *DB) SaveSettings(ctx context.Context, set []byte, settingsJSON []byte, lastSnapshot string) error {
	_, err := d.db.ExecContext(ctx, `INSERT OR REPLACE INTO backup_sets (backup_set, settings, updated, last_snapshot) VALUES (?,?,?,?)`,
		set, string(settingsJSON), time.Now().UTC().Format(time.RFC3339Nano), lastSnapshot)
	if err != nil {
		return fmt.Errorf("save backup settings: %w", err)
	}
	return nil
}

// LastSnapshot returns the ID of the set's newest snapshot made through
// this database, or "".
func (d *DB) LastSnapshot(ctx context.Context, set []byte) (string, error) {
	var id string
	err := d.db.QueryRowContext(ctx, `SELECT last_snapshot FROM backup_sets WHERE backup_set = ?`, set).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read last snapshot: %w", err)
	}
	return id, nil
}

// DevIno identifies an inode on the running system.
type DevIno struct{ Dev, Ino uint64 }

// PutLinks records which multiply-linked inodes each listed directory
// holds. With full set, the set's previous records are dropped first (a
// full scan lists every directory); otherwise only the given directories'
// records are replaced. Stale records of removed directories only make a
// later journal backup more cautious.
func (d *DB) PutLinks(ctx context.Context, set []byte, full bool, dirs map[string][]DevIno) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write hard-link records: %w", err)
	}
	defer tx.Rollback()
	if full {
		if _, err := tx.ExecContext(ctx, `DELETE FROM links WHERE backup_set = ?`, set); err != nil {
			return fmt.Errorf("write hard-link records: %w", err)
		}
	}
	del, err := tx.PrepareContext(ctx, `DELETE FROM links WHERE backup_set = ? AND dir = ?`)
	if err != nil {
		return fmt.Errorf("write hard-link records: %w", err)
	}
	defer del.Close()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO links (backup_set, dev, ino, dir) VALUES (?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("write hard-link records: %w", err)
	}
	defer ins.Close()
	for dir, inodes := range dirs {
		if !full {
			if _, err := del.ExecContext(ctx, set, []byte(dir)); err != nil {
				return fmt.Errorf("write hard-link records for %s: %w", dir, err)
			}
		}
		for _, in := range inodes {
			if _, err := ins.ExecContext(ctx, set, int64(in.Dev), int64(in.Ino), []byte(dir)); err != nil {
				return fmt.Errorf("write hard-link records for %s: %w", dir, err)
			}
		}
	}
	return tx.Commit()
}

// HasLink reports whether the set's last backup held the inode as a
// multiply-linked file.
func (d *DB) HasLink(ctx context.Context, set []byte, in DevIno) (bool, error) {
	var n int
	err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM links WHERE backup_set = ? AND dev = ? AND ino = ? LIMIT 1)`,
		set, int64(in.Dev), int64(in.Ino)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read hard-link records: %w", err)
	}
	return n > 0, nil
}

// LinkDirs returns, for each of inodes that the set's records hold, the
// directories in which the set's last scans met it as a multiply-linked
// file (sorted). A journal backup lists them again when the inode changed:
// a change to a file concerns all its names.
func (d *DB) LinkDirs(ctx context.Context, set []byte, inodes []DevIno) (map[DevIno][]string, error) {
	out := map[DevIno][]string{}
	if len(inodes) == 0 {
		return out, nil
	}
	st, err := d.db.PrepareContext(ctx, `SELECT DISTINCT dir FROM links WHERE backup_set = ? AND dev = ? AND ino = ? ORDER BY dir`)
	if err != nil {
		return nil, fmt.Errorf("read hard-link records: %w", err)
	}
	defer st.Close()
	for _, in := range inodes {
		rows, err := st.QueryContext(ctx, set, int64(in.Dev), int64(in.Ino))
		if err != nil {
			return nil, fmt.Errorf("read hard-link records: %w", err)
		}
		for rows.Next() {
			var dir []byte
			if err := rows.Scan(&dir); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read hard-link records: %w", err)
			}
			out[in] = append(out[in], string(dir))
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read hard-link records: %w", err)
		}
	}
	return out, nil
}

// StatsComplete returns the snapshot whose every directory the set's stat
// cache rows describe, entries and inodes ("" if none is known): a full
// scan's, and after it each journal scan's whose parent was complete and
// that rebuilt no directory without its records. A journal backup may
// then take a file the stat cache never met for one that was not in the
// parent snapshot.
func (d *DB) StatsComplete(ctx context.Context, set []byte) (string, error) {
	return d.Meta(ctx, statsCompleteKey(set))
}

// SetStatsComplete records the snapshot StatsComplete returns ("" for
// none). It is written after the snapshot's stat cache rows.
func (d *DB) SetStatsComplete(ctx context.Context, set []byte, snapshot string) error {
	return d.SetMeta(ctx, statsCompleteKey(set), snapshot)
}

func statsCompleteKey(set []byte) string { return fmt.Sprintf("stats-complete:%x", set) }

// StatRows calls fn with every stat cache row of the set (the directory
// and its encoded entries), in no particular order, until fn returns an
// error. It is how a journal backup finds the name a file had when the
// last scan met it with one link (hard-link records hold only files with
// several): its cost follows the size of the set, so it runs only when a
// link was added to such a file.
func (d *DB) StatRows(ctx context.Context, set []byte, fn func(dir string, entries []byte) error) error {
	rows, err := d.db.QueryContext(ctx, `SELECT path, entries FROM dirstats WHERE backup_set = ?`, set)
	if err != nil {
		return fmt.Errorf("read stat cache: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var path, entries []byte
		if err := rows.Scan(&path, &entries); err != nil {
			return fmt.Errorf("read stat cache: %w", err)
		}
		if err := fn(string(path), entries); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read stat cache: %w", err)
	}
	return nil
}

// VerifyLimits bounds the downloads of verify over rolling windows: at
// most MaxBytes downloaded after BytesSince, and at most MaxRequests
// downloads after RequestsSince.
type VerifyLimits struct {
	BytesSince    time.Time
	MaxBytes      int64
	RequestsSince time.Time
	MaxRequests   int64
}

// ReserveVerifyDownload records a download of bytes from pack at time at,
// but only if the downloads recorded so far leave room for it within lim;
// ok reports whether it did. The check and the insert are one statement,
// which SQLite runs under its write lock, so verify runs of several
// processes sharing the database cannot together overspend. id names the
// row for SettleVerifyDownload.
func (d *DB) ReserveVerifyDownload(ctx context.Context, pack string, bytes int64, at time.Time, lim VerifyLimits) (id int64, ok bool, err error) {
	res, err := d.db.ExecContext(ctx, `INSERT INTO verify_downloads (time, pack, bytes)
		SELECT ?1, ?2, ?3
		WHERE (SELECT COALESCE(SUM(bytes), 0) FROM verify_downloads WHERE time > ?4) + ?3 <= ?5
		AND (SELECT COUNT(*) FROM verify_downloads WHERE time > ?6) + 1 <= ?7`,
		at.UnixNano(), pack, bytes, lim.BytesSince.UnixNano(), lim.MaxBytes, lim.RequestsSince.UnixNano(), lim.MaxRequests)
	if err != nil {
		return 0, false, fmt.Errorf("record verify download: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, false, fmt.Errorf("record verify download: %w", err)
	}
	if n == 0 {
		return 0, false, nil
	}
	id, err = res.LastInsertId()
	if err != nil {
		return 0, false, fmt.Errorf("record verify download: %w", err)
	}
	return id, true, nil
}

// SettleVerifyDownload corrects the size of a reserved download to what
// was actually transferred.
func (d *DB) SettleVerifyDownload(ctx context.Context, id, bytes int64) error {
	if _, err := d.db.ExecContext(ctx, `UPDATE verify_downloads SET bytes = ? WHERE id = ?`, bytes, id); err != nil {
		return fmt.Errorf("record verify download: %w", err)
	}
	return nil
}

// VerifySpent returns the bytes and the number of downloads (requests)
// verify recorded after since.
func (d *DB) VerifySpent(ctx context.Context, since time.Time) (bytes, requests int64, err error) {
	err = d.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM verify_downloads WHERE time > ?`,
		since.UnixNano()).Scan(&bytes, &requests)
	if err != nil {
		return 0, 0, fmt.Errorf("read verify ledger: %w", err)
	}
	return bytes, requests, nil
}

// PruneVerifyDownloads drops the download records made at or before
// before: they no longer count against any budget.
func (d *DB) PruneVerifyDownloads(ctx context.Context, before time.Time) error {
	if _, err := d.db.ExecContext(ctx, `DELETE FROM verify_downloads WHERE time <= ?`, before.UnixNano()); err != nil {
		return fmt.Errorf("prune verify ledger: %w", err)
	}
	return nil
}

// VerifyDownload is one download in the verify ledger.
type VerifyDownload struct {
	At    time.Time
	Bytes int64
}

// VerifyDownloads returns the downloads recorded after since, oldest
// first.
func (d *DB) VerifyDownloads(ctx context.Context, since time.Time) ([]VerifyDownload, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT time, bytes FROM verify_downloads WHERE time > ? ORDER BY time, id`, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("read verify ledger: %w", err)
	}
	defer rows.Close()
	var out []VerifyDownload
	for rows.Next() {
		var ns, n int64
		if err := rows.Scan(&ns, &n); err != nil {
			return nil, fmt.Errorf("read verify ledger: %w", err)
		}
		out = append(out, VerifyDownload{At: time.Unix(0, ns), Bytes: n})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read verify ledger: %w", err)
	}
	return out, nil
}

// VerifiedPack is the outcome of a pack's last verification.
type VerifiedPack struct {
	At time.Time
	// Problem describes the damage found, "" if the pack was intact.
	Problem string
}

// MarkVerified records that pack was downloaded and checked at time at,
// with the damage found ("" for none), replacing its earlier record.
func (d *DB) MarkVerified(ctx context.Context, pack string, at time.Time, problem string) error {
	_, err := d.db.ExecContext(ctx, `INSERT OR REPLACE INTO verified_packs (pack, verified_at, problem) VALUES (?,?,?)`,
		pack, at.UnixNano(), problem)
	if err != nil {
		return fmt.Errorf("record verified pack %s: %w", pack, err)
	}
	return nil
}

// VerifiedPacks returns the last verification of every pack verify has
// checked, by pack ID.
func (d *DB) VerifiedPacks(ctx context.Context) (map[string]VerifiedPack, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT pack, verified_at, problem FROM verified_packs`)
	if err != nil {
		return nil, fmt.Errorf("read verify ledger: %w", err)
	}
	defer rows.Close()
	out := map[string]VerifiedPack{}
	for rows.Next() {
		var pack, problem string
		var at int64
		if err := rows.Scan(&pack, &at, &problem); err != nil {
			return nil, fmt.Errorf("read verify ledger: %w", err)
		}
		out[pack] = VerifiedPack{At: time.Unix(0, at), Problem: problem}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read verify ledger: %w", err)
	}
	return out, nil
}

// ForgetVerified drops the records of packs, e.g. packs no longer in the
// repository.
func (d *DB) ForgetVerified(ctx context.Context, packs []string) error {
	if len(packs) == 0 {
		return nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("prune verify ledger: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `DELETE FROM verified_packs WHERE pack = ?`)
	if err != nil {
		return fmt.Errorf("prune verify ledger: %w", err)
	}
	defer st.Close()
	for _, p := range packs {
		if _, err := st.ExecContext(ctx, p); err != nil {
			return fmt.Errorf("prune verify ledger: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("prune verify ledger: %w", err)
	}
	return nil
}
