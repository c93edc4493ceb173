// Package verify downloads a few whole packs at a time and checks them,
// within a budget of bytes and requests per period, so that over days
// every pack of a repository gets read back without any one run costing
// much. It is meant to run after every backup (tidemark backup --verify)
// or on its own (tidemark verify).
//
// # What a pack check does
//
// A pack is loaded whole, with one request, from the repository's backend
// without the local cache (a good cached copy must not hide a damaged
// stored one). Its bytes must hash to its name; its header must
// authenticate with the key and agree with the index; and every blob the
// index places in it must decrypt and hash to its ID, which is what a
// restore relies on. Damage is reported as check.Problem values, the same
// kinds `tidemark check --read-data` reports, naming the pack and blob.
//
// # The budget
//
// Budgets are rolling windows, not calendar days: the bytes downloaded in
// the last Period, summed from the ledger in the local state database,
// never exceed the byte budget, and likewise for the number of downloads.
// Each run spends only what the window has left, so many small runs
// spread the same allowance as one large run and never more: with
// backups every five minutes, the first run of a day spends the budget
// and the next 287 find nothing left until the first run's downloads
// leave the window a day later. A pack is also not downloaded again
// within one Period of its last verification, so a repository smaller
// than the budget is read once per period, however often verify runs.
//
// The reservation of each download and the check against the budget are
// one SQLite statement, so verify runs of several processes sharing the
// state database cannot together overspend.
//
// A run that stops for want of budget records until when the next pack
// cannot fit (see wait.go). Runs before then return at once without
// reading the index, so verifying after every backup costs a database
// query on all but a few runs a day, not a pass over the whole index.
//
// # Which packs
//
// Packs never verified come first, in random order, then the least
// recently verified. When the next pack does not fit in what is left of
// the budget, the run stops instead of trying smaller packs: with a
// rolling window the budget comes back a little at a time, and smaller
// packs taking each bit as it came back could keep a large pack at the
// head of the queue waiting forever. Stopping keeps the rotation strict,
// so every pack is read within about Total/Budget periods: each period
// spends more than the budget minus one pack, so the bound is
// ceil(Total / (Budget - largest pack)) periods, and exactly
// ceil(Total/Budget) when the budget is a whole number of equal packs. A
// pack larger than the whole byte budget can never fit; it is skipped and
// listed in Result.TooLarge.
//
// Pack sizes are computed from the index (the blobs' extent plus the
// header, whose size follows from the number of blobs), not by listing or
// statting the backend, so choosing costs no requests. The estimate is
// exact unless the index attributes some of a pack's blobs to another
// copy (the same blob stored twice by concurrent backups); the ledger
// then records the size actually downloaded.
//
// # Damage
//
// A damaged pack is recorded in the ledger with the damage found, and
// every later run reports it again (Result.Damaged) without downloading
// it, until it is verified intact or leaves the index (repair, prune): a
// problem found at 3:00 must not go quiet at 3:05. A failed download is
// reported but not recorded as a verification, so the pack is tried
// again.
package verify
