//go:build unix

package changes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// watcherLocked reports whether a watcher holds the state directory's lock.
// flock locks die with their process, so unlike a pid file this cannot be
// fooled by a SIGKILLed watcher or a reused pid.
func watcherLocked(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("watcher lock: %w", err)
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("watcher lock: %w", err)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false, nil
}

// errWatcherRunning is returned by lockStateDir when another watcher holds
// the lock.
var errWatcherRunning = errors.New("another watcher is running on this state directory")

// lockStateDir takes the watcher's exclusive lock. Readers probing the lock
// hold a shared lock for an instant, so a few retries tell them apart from
// a running watcher.
func lockStateDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("watcher lock: %w", err)
	}
	for i := 0; ; i++ {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || i == 20 {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	f.Close()
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, errWatcherRunning
	}
	return nil, fmt.Errorf("watcher lock: %w", err)
}
