package changes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// WatcherState is the watcher's self-description in watcher.json, rewritten
// at start, at every heartbeat and whenever coverage changes.
type WatcherState struct {
	PID       int       `json:"pid"`
	Epoch     string    `json:"epoch"`
	Kind      string    `json:"kind"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	Roots     []string  `json:"roots"`
	// Reason says why the primary source was chosen.
	Reason      string           `json:"reason"`
	Filesystems []FilesystemInfo `json:"filesystems"`
	// Uncovered lists paths (roots, or mount points inside roots) whose
	// changes are currently not recorded; Fence refuses roots overlapping
	// them.
	Uncovered []Uncovered `json:"uncovered,omitempty"`
	// Stalled says what part of the watcher has been stuck, and on what
	// (empty when nothing is). The watcher's watchdog writes it, apart
	// from the loop that writes the heartbeat, so a stall is known before
	// the heartbeat ages; Fence fails at once with it.
	Stalled string `json:"stalled,omitempty"`
	// Processed counts the events handled and directories walked so far.
	// A fence waits longer for a watcher whose count advances: it is slow
	// (a loaded machine, a backlog of events), not stuck.
	Processed uint64 `json:"processed"`
}

// FilesystemInfo describes one watched filesystem.
type FilesystemInfo struct {
	Dev uint64 `json:"dev"`
	// Device is Dev as major:minor.
	Device string   `json:"device"`
	Mount  string   `json:"mount"`
	Type   string   `json:"type,omitempty"`
	Source string   `json:"source"` // fanotify or inotify
	Roots  []string `json:"roots,omitempty"`
	// Watches counts inotify watches on it.
	Watches int `json:"watches,omitempty"`
}

// Uncovered is a path whose changes are not being recorded, and why.
type Uncovered struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// heartbeatInterval is how often the watcher rewrites watcher.json;
// readers call a watcher whose heartbeat is older than heartbeatStale
// unresponsive.
const (
	heartbeatInterval = 2 * time.Second
	heartbeatStale    = 15 * time.Second
)

// epochMeta is journal/<epoch>/epoch.json.
type epochMeta struct {
	Epoch   string    `json:"epoch"`
	Kind    string    `json:"kind"`
	Roots   []string  `json:"roots"`
	Started time.Time `json:"started"`
	PID     int       `json:"pid"`
}

// setState is sets/<hash>.json: what one backup set released.
type setState struct {
	Set    string    `json:"set"`
	Cursor Cursor    `json:"cursor"`
	Time   time.Time `json:"time"`
}

// writeJSONAtomic replaces path with v's JSON via a temporary file and a
// rename, so readers see the old or the new file, never a torn one.
func writeJSONAtomic(path string, v any, durable bool) error {
	buf, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(buf, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if durable {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

func readJSON(path string, v any) error {
	buf, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(buf, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
