// Package repair brings a damaged repository back to a consistent state
// and says exactly what was lost: RebuildIndex recreates the index from
// the pack headers, RepairSnapshots writes copies of snapshots that leave
// out what is gone.
package repair
