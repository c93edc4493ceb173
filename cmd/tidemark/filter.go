package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// filterFlags are restic's snapshot filters: --host, --path, --tag.
type filterFlags struct {
	hosts, paths, tags []string
}

// register adds the filter flags; what says what they select for
// ("only consider" for most commands).
func (ff *filterFlags) register(f *pflag.FlagSet) {
	f.StringArrayVarP(&ff.hosts, "host", "H", nil, "only consider snapshots of this `host` (repeatable: any of them)")
	f.StringArrayVar(&ff.paths, "path", nil, "only consider snapshots with this `path` among their backed-up paths, exactly (repeatable: all of them)")
	f.StringArrayVar(&ff.tags, "tag", nil, "only consider snapshots with all tags of this `taglist`, tag[,tag...] (repeatable: any of the lists; \"\" for no tags)")
}

// filter turns the flags into a snapshot.Filter. Paths are made absolute
// and clean, as backups store their roots (restic does the same).
func (ff *filterFlags) filter() (snapshot.Filter, error) {
	f := snapshot.Filter{Hosts: ff.hosts}
	for _, p := range ff.paths {
		if p == "" {
			return snapshot.Filter{}, fmt.Errorf("--path: empty path")
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return snapshot.Filter{}, fmt.Errorf("--path %s: %w", p, err)
		}
		f.Paths = append(f.Paths, abs)
	}
	for _, t := range ff.tags {
		f.Tags = append(f.Tags, snapshot.ParseTagList(t))
	}
	return f, nil
}

// splitTags splits tag flags given as restic writes them, "a,b" or
// repeated, into tags, dropping empty ones.
func splitTags(values []string) []string {
	var tags []string
	for _, v := range values {
		for _, t := range snapshot.ParseTagList(v) {
			if t != "" {
				tags = append(tags, t)
			}
		}
	}
	return tags
}
