// Package daemon is continuous backup (`tidemark run`): it runs one change
// watcher for the roots of every job of a configuration, follows its
// journal, and backs each job up when its changes have settled, bounded
// by a minimum interval and a maximum delay, with a safety net when
// nothing changes; it runs forget and prune on their schedule and verify
// within its budget after backups; it alerts when changes stay
// unprotected too long or a backup fails, runs the jobs' hooks, and keeps
// an operation log.
//
// The decisions of when to run what are the Scheduler's, pure logic given
// the time at every call (schedule.go), so that they are tested with a
// fake clock through suspends, clock jumps and failures. Daemon wires it
// to the real things: the watcher (internal/app's Watch), the journal
// (internal/changes), backups and maintenance through internal/app, and
// the daemon database (store.go) in the state directory.
//
// Freshness is a number per job, the recovery point: the age of the oldest
// change not yet in a snapshot. A change counts from when the daemon saw
// it in the journal (within a poll interval of a second). After a restart
// the changes made while no daemon ran are unknown, so the recovery point
// counts from when the last daemon was last known alive, and the first
// backup scans fully (the watcher starts a new journal epoch).
package daemon
