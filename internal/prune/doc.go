// Package prune removes data that no snapshot references: it deletes
// packs whose blobs are all unused, repacks packs with too much unused
// space, consolidates the index, and deletes packs that no index names
// (left by killed backups).
//
// Prune runs alongside backups of other clients without blocking them.
// It holds a prune lock (one prune at a time) and follows one rule before
// deleting anything: every client that might have read the old index has
// finished. In order:
//
//  1. List the snapshots, then read every index file, in that order: a
//     backup writes its index file before its snapshot, so the files read
//     name every tree and blob the listed snapshots use, also those stored
//     after the prune opened the repository (they are added to its index).
//     Then read the listed snapshots and mark the blobs their trees reach.
//  2. List every pack and read the headers of packs that no index names.
//     Those holding a used blob that is otherwise lost are indexed again
//     (a prune or backup killed at the wrong time); the others are
//     candidates for deletion.
//  3. Give every used blob one home pack. Packs homing nothing are
//     deleted; packs with too much unused space are repacked: their used
//     blobs are copied into new packs, which are indexed.
//  4. Write a doomed index file naming the packs to delete, index files for
//     everything that stays, then remove the old ones. From here on a
//     client that takes a lock reads the new index (repo.LockMode reads the
//     index again when files it knew are gone), so it cannot deduplicate
//     against the blobs about to go: doomed blobs can be read, but are
//     never offered for deduplication.
//  5. List the locks and wait until every client holding one then has
//     released it. Only they can have read the old index, or be about to
//     index a pack that step 2 saw unindexed.
//  6. Read the snapshots and index files that appeared meanwhile (listed
//     in the order of step 1, since clients that locked after step 4 are
//     not waited for and may still be writing both). A pack that a new
//     index file names is kept; a pack holding a blob that a new snapshot
//     uses and nothing else holds is indexed again and kept.
//  7. Delete the remaining candidates, then the doomed index file.
//
// Killed at any point, the repository stays consistent: new objects are
// written before old ones are removed, and a pack is only deleted once no
// live index entry names it. The doomed file keeps what a concurrent
// backup reused readable even if the prune is killed before step 6: that
// snapshot restores and checks clean, and the next prune indexes the data
// again. What a killed prune leaves (doomed files, unindexed packs,
// duplicate index entries) the next one cleans up.
package prune
