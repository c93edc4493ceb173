// Package changes records which directories change on Linux so that a backup
// can rescan only those, and answers, for two cursors, what may have changed
// between them — or that it cannot prove an uninterrupted record (ErrGap).
//
// A long-running watcher (Watch, the `tidemark watch` command) listens to
// fanotify filesystem marks (FAN_MARK_FILESYSTEM with FAN_REPORT_DFID_NAME;
// CAP_SYS_ADMIN) or, as a fallback, to recursive inotify watches, and appends
// records to an on-disk journal in its state directory: one directory per
// epoch (a random ID chosen at each watcher start), holding segment files of
// checksummed records (dirty directory, subtree to rescan, changed inode,
// fence, gap, start).
//
// Readers (the backup) use a Journal:
//
//   - Fence creates a marker file in the state directory, which the watcher
//     sees through the same ordered event queue as the backed-up trees, and
//     returns the cursor of the fence record: every change made before the
//     Fence call is in the journal before that cursor.
//   - Since returns the directories recorded between two cursors, restricted
//     to the backup's roots, or a *GapError when the record between them is
//     not provably complete: another epoch (the watcher restarted or was
//     killed), a gap record (queue overflow, watch limit, unmounted or
//     unsupported filesystem, read error), records already compacted away,
//     or a missing or damaged journal.
//   - Release lets compaction delete records every backup set has passed.
//
// What counts as a gap (Since returns a *GapError instead of a delta):
//
//   - the cursors belong to different epochs: the watcher stopped, crashed
//     or was killed in between (a new epoch begins at every start);
//   - a gap record lies between them whose scope overlaps a requested root:
//     "overflow" (the kernel dropped events), "watch limit" (inotify could
//     not watch a directory), "filesystem unmounted" / "filesystem changed"
//     (a mark or watch vanished without events), "unsupported filesystem",
//     "journal error: ..." (a read error, a handle that could not be
//     resolved for a reason other than the object being gone);
//   - the records after the older cursor were compacted away, or the
//     journal is missing or fails its checksums or sequence numbers.
//
// Fence refuses (with a *GapError) when no watcher holds the state
// directory's lock, its heartbeat is stale, a root is not below a watched
// root, or a root overlaps a path the watcher currently cannot cover.
//
// Directory handles from fanotify are resolved to paths when they are read
// (open_by_handle_at and the /proc/self/fd link), with a cache cleared at
// every directory rename; see fanSource.resolveDir for why a path resolved
// later than the event is safe, and why a handle whose directory is gone
// (ESTALE) is ignored.
//
// The kernel's blind spots, and how each is closed:
//
//   - stores through a shared writable mapping raise no event: the
//     journal Source (JournalSource) reads /proc/*/maps just before each
//     fence and adds the mapped files in the roots to that fence's delta
//     (maps.go, maps_linux.go);
//   - a directory may be visible inside a root through a bind mount and be
//     changed through its path elsewhere: fanotify handles are resolved
//     through every mount of their filesystem that holds a watched path,
//     so every name the directory has inside the roots is recorded (a
//     bound file or directory changed itself is recorded at its mount
//     point); inotify watches the directory itself, and a directory
//     visible under two names inside the roots is reported uncovered;
//   - inotify sees only names used through watched directories: it also
//     watches every multiply-linked file below the roots (and every file
//     bind-mounted there).
//
// What the journal promises is deliberately narrow: a directory not listed
// did not have entries created, deleted, renamed, or their metadata or
// content changed, between the two cursors. It never says what changed; the
// backup re-lists each listed directory and compares with its parent
// snapshot.
package changes
