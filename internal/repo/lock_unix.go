//go:build unix

package repo

import (
	"errors"
	"syscall"
)

// processGone reports whether no process with the given ID runs on this
// host: signal 0 checks for existence without sending anything. EPERM (a
// process of another user) means it runs.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
