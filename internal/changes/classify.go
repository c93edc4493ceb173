package changes

import (
	"path/filepath"
)

// op is what happened to a directory entry, as far as the journal cares.
// Both sources translate their event masks into it.
type op uint8

const (
	opCreate  op = 1 << iota // created or moved in
	opRemove                 // deleted or moved out
	opMeta                   // attributes (mode, owner, times, xattrs, link count)
	opContent                // data written
)

// filter decides what an event means for the journal. It is shared by the
// fanotify and inotify sources so both follow the same rules.
type filter struct {
	roots     []string // normalized
	stateDir  string
	fencesDir string
}

func newFilter(roots []string, stateDir string) *filter {
	return &filter{roots: roots, stateDir: stateDir, fencesDir: layout{stateDir}.fences()}
}

// verdict is what one event asks for.
type verdict struct {
	fence string // a fence marker appeared
	dirty string // directory to record
	tree  string // directory created or moved in: rescan recursively
	// inode: a non-directory entry went away; its other links (if any)
	// changed link count.
	inode string
	// linkCheck: record an inode record for this path if the file has more
	// than one link (the caller checks, with the means its source has).
	linkCheck string
	// rootsReplaced lists roots whose path now names another object (an
	// ancestor or the root itself was created, deleted or renamed).
	rootsReplaced []string
}

// classify handles an event on the entry name in directory dir (both as
// reported by the source, dir absolute and clean); name is "" for an event
// on dir itself.
func (f *filter) classify(dir, name string, isDir bool, o op) verdict {
	var v verdict
	if name == "" {
		// An event on a directory itself concerns its entry in its parent.
		if dir == "/" {
			if underAny("/", f.roots) && o&(opMeta|opContent) != 0 {
				v.dirty = "/"
			}
			return v
		}
		dir, name = filepath.Dir(dir), filepath.Base(dir)
		isDir = true
	}
	p := filepath.Join(dir, name)
	if dir == f.fencesDir {
		if o&opCreate != 0 && validFenceName(name) {
			v.fence = name
		}
		return v
	}
	if within(dir, f.stateDir) {
		return v // the journal's own files
	}
	if underAny(dir, f.roots) {
		v.dirty = dir
		if isDir {
			if o&opCreate != 0 {
				v.tree = p
			}
			return v
		}
		if o&opRemove != 0 {
			v.inode = p
		}
		if o&(opCreate|opMeta|opContent) != 0 {
			v.linkCheck = p
		}
		return v
	}
	// dir is outside every root: it matters only if p is a root or leads
	// to one.
	for _, r := range f.roots {
		if !within(r, p) {
			continue
		}
		switch {
		case o&(opCreate|opRemove) != 0:
			v.rootsReplaced = append(v.rootsReplaced, r)
		case r == p && o&(opMeta|opContent) != 0:
			// The root's own entry (mode, times; content when the root
			// is a file).
			v.dirty = r
		}
	}
	return v
}

// records turns a verdict into journal records (except fence, linkCheck and
// the caller's own handling of replaced roots).
func (v verdict) records() []Record {
	var recs []Record
	if v.dirty != "" {
		recs = append(recs, Record{Kind: RecDirty, Path: v.dirty})
	}
	if v.tree != "" {
		recs = append(recs, Record{Kind: RecTree, Path: v.tree})
	}
	if v.inode != "" {
		recs = append(recs, Record{Kind: RecInode, Path: v.inode})
	}
	for _, r := range v.rootsReplaced {
		recs = append(recs, Record{Kind: RecDirty, Path: r}, Record{Kind: RecTree, Path: r})
	}
	return recs
}
