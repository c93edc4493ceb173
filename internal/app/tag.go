package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// TagOptions say which snapshots' tags change and how.
type TagOptions struct {
	// Snapshots names the snapshots (IDs, unique prefixes or "latest",
	// each matching Filter); without any, every snapshot Filter matches.
	Snapshots []string
	Filter    snapshot.Filter
	// Add and Remove add and remove these tags; when Replace is true, Set
	// replaces all tags instead (an empty Set removes every tag).
	Add, Remove, Set []string
	Replace          bool
}

// Validate refuses a tag call that changes nothing, and Set given with
// Add or Remove (restic's rule: which would win is not obvious).
func (o TagOptions) Validate() error {
	switch {
	case o.Replace && (len(o.Add) > 0 || len(o.Remove) > 0):
		return errors.New("tag: --set replaces all tags; it cannot be given with --add or --remove")
	case !o.Replace && len(o.Add) == 0 && len(o.Remove) == 0:
		return errors.New("tag: nothing to do: give --add, --remove or --set")
	}
	for _, t := range slices.Concat(o.Add, o.Remove, o.Set) {
		if t == "" {
			return errors.New("tag: empty tag (to remove every tag, give --set \"\")")
		}
	}
	for _, ref := range o.Snapshots {
		if ref == "" {
			return errors.New("tag: empty snapshot ID")
		}
	}
	return nil
}

// apply returns tags changed as the options say, and whether they changed.
func (o TagOptions) apply(tags []string) ([]string, bool) {
	var out []string
	if o.Replace {
		for _, t := range o.Set {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	} else {
		out = slices.Clone(tags)
		for _, t := range o.Add {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
		out = slices.DeleteFunc(out, func(t string) bool { return slices.Contains(o.Remove, t) })
	}
	if len(out) == 0 {
		out = nil
	}
	return out, !slices.Equal(out, tags)
}

// TagChange is one snapshot whose tags changed: the record that replaced
// it and its tags now.
type TagChange struct {
	Old  blob.ID  `json:"old_snapshot"`
	New  blob.ID  `json:"new_snapshot"`
	Tags []string `json:"tags"`
}

// TagResult is what a tag call changed.
type TagResult struct {
	Changed []TagChange `json:"changed"`
	// Unchanged counts the snapshots selected that already had the tags.
	Unchanged int `json:"unchanged"`
}

// Tag changes the tags of the snapshots opt selects. Snapshot records are
// write-once and named by their content, so each change writes a new
// record, the same in all but its tags and Original (the first record of
// the snapshot, as restic keeps it), then removes the old one. Holding a
// prune lock keeps forget, prune and other tag calls out meanwhile (a
// forget of the old record would otherwise race with its copy), while
// backups go on. Unreadable records are sent as Warning events and left
// alone, unless named (an error); "latest" is refused while any record is
// unreadable, as Restore refuses it.
func (a *Repo) Tag(ctx context.Context, opt TagOptions, events func(Event)) (*TagResult, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	lock, err := a.lock(ctx, repo.LockPrune, "tag")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	sns, err := a.tagTargets(ctx, opt, events)
	if err != nil {
		return nil, err
	}
	res := &TagResult{Changed: []TagChange{}}
	for _, sn := range sns {
		tags, changed := opt.apply(sn.Tags)
		if !changed {
			res.Unchanged++
			continue
		}
		cp := *sn
		cp.Tags = tags
		if cp.Original == nil {
			orig := sn.ID
			cp.Original = &orig
		}
		if err := snapshot.Save(ctx, a.r, &cp); err != nil {
			return res, fmt.Errorf("tag snapshot %s: %w", sn.ID.Short(), err)
		}
		// The new record is stored: from here a failure leaves both, which
		// list as two snapshots of the same tree, never none.
		if err := a.r.Backend().Remove(ctx, backend.Handle{Type: backend.Snapshot, Name: sn.ID.String()}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return res, fmt.Errorf("tag snapshot %s: wrote %s, but removing the old record failed (`tidemark forget %s` removes it): %w",
				sn.ID.Short(), cp.ID.Short(), sn.ID.Short(), err)
		}
		res.Changed = append(res.Changed, TagChange{Old: sn.ID, New: cp.ID, Tags: tags})
	}
	return res, nil
}

// tagTargets resolves the snapshots a tag call changes, each once.
func (a *Repo) tagTargets(ctx context.Context, opt TagOptions, events func(Event)) ([]*snapshot.Snapshot, error) {
	if len(opt.Snapshots) == 0 {
		return a.matching(ctx, opt.Filter, func(e Event) {
			if w, ok := e.(Warning); ok {
				w.Message += " (left alone)"
				e = w
			}
			emitter(events).send(e)
		})
	}
	var sns []*snapshot.Snapshot
	seen := map[blob.ID]bool{}
	for _, ref := range opt.Snapshots {
		sn, bad, err := a.find(ctx, ref, opt.Filter)
		if err != nil {
			return nil, fmt.Errorf("tag: %w", err)
		}
		if len(bad) > 0 {
			return nil, fmt.Errorf("tag %s: %s (the newest readable one is %s of %s); give a snapshot ID explicitly",
				ref, unreadableNote(bad), sn.ID.Short(), sn.Time.Local().Format(time.DateTime))
		}
		if !seen[sn.ID] {
			seen[sn.ID] = true
			sns = append(sns, sn)
		}
	}
	return sns, nil
}
