package repo

import "golang.org/x/sys/windows"

// stillActive is STILL_ACTIVE, the exit code GetExitCodeProcess reports
// for a running process.
const stillActive = 259

// processGone reports whether no process with the given ID runs on this
// host. Windows refuses to open a process ID that is not in use with
// ERROR_INVALID_PARAMETER; any other failure (such as access denied to
// another user's process) counts as running, so the lock goes stale by
// time only, which is safe.
func processGone(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return err == windows.ERROR_INVALID_PARAMETER
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return false
	}
	return code != stillActive
}
