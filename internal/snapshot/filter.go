package snapshot

import (
	"fmt"
	"slices"
	"strings"
)

// Filter selects snapshots the way restic's --host, --path and --tag do.
// The zero Filter matches every snapshot.
type Filter struct {
	// Hosts: the snapshot's host is one of these (any host when empty).
	Hosts []string
	// Paths: each of these is one of the snapshot's roots, compared as
	// strings (no prefixes, no subdirectories): /etc matches a backup of
	// /etc, and one of /etc and /usr together, but not one of /etc/ssh or
	// of /. Front ends make them absolute and clean, as roots are stored.
	Paths []string
	// Tags: the snapshot has every tag of at least one of these lists
	// (--tag a,b --tag c: both a and b, or c). The empty tag "" stands for
	// "no tags at all", so --tag "" selects untagged snapshots.
	Tags [][]string
}

// Empty reports whether f matches every snapshot.
func (f Filter) Empty() bool { return len(f.Hosts) == 0 && len(f.Paths) == 0 && len(f.Tags) == 0 }

// Match reports whether sn passes every part of the filter.
func (f Filter) Match(sn *Snapshot) bool {
	if len(f.Hosts) > 0 && !slices.Contains(f.Hosts, sn.Host) {
		return false
	}
	for _, p := range f.Paths {
		if !slices.Contains(sn.Roots, p) {
			return false
		}
	}
	if len(f.Tags) == 0 {
		return true
	}
	for _, list := range f.Tags {
		if hasTags(sn, list) {
			return true
		}
	}
	return false
}

// hasTags reports whether sn has every tag in list ("" meaning no tags).
func hasTags(sn *Snapshot, list []string) bool {
	for _, t := range list {
		if t == "" {
			if len(sn.Tags) > 0 {
				return false
			}
			continue
		}
		if !slices.Contains(sn.Tags, t) {
			return false
		}
	}
	return true
}

// String describes the filter in the flags that make it, for messages:
// `--host a --path /etc --tag x,y`.
func (f Filter) String() string {
	var parts []string
	for _, h := range f.Hosts {
		parts = append(parts, "--host "+quoteArg(h))
	}
	for _, p := range f.Paths {
		parts = append(parts, "--path "+quoteArg(p))
	}
	for _, l := range f.Tags {
		parts = append(parts, "--tag "+quoteArg(strings.Join(l, ",")))
	}
	return strings.Join(parts, " ")
}

// quoteArg quotes s when it would not read as one shell word.
func quoteArg(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune(`"'\$`+"`", r) }) {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// ParseTagList splits a tag list as restic writes it, "a,b,c", trimming
// spaces and dropping empty items; "" alone is the list that selects
// untagged snapshots (see Filter.Tags).
func ParseTagList(s string) []string {
	var tags []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	if len(tags) == 0 {
		return []string{""}
	}
	return tags
}

// GroupBy says which fields group snapshots: restic's --group-by with any
// combination of host, paths and tags.
type GroupBy struct {
	Host, Paths, Tags bool
}

// ParseGroupBy parses a comma-separated --group-by value; "" groups
// nothing (one group). The singular forms are accepted too, as restic does.
func ParseGroupBy(spec string) (GroupBy, error) {
	var g GroupBy
	for _, p := range strings.Split(spec, ",") {
		switch strings.TrimSpace(p) {
		case "":
		case "host", "hosts":
			g.Host = true
		case "paths", "path":
			g.Paths = true
		case "tags", "tag":
			g.Tags = true
		default:
			return GroupBy{}, fmt.Errorf("--group-by %q: unknown field %q (want host, paths, tags)", spec, strings.TrimSpace(p))
		}
	}
	return g, nil
}

// GroupKey is what the snapshots of one group share; the fields not
// grouped by are empty.
type GroupKey struct {
	Host  string   `json:"host,omitempty"`
	Paths []string `json:"paths,omitempty"`
	// Tags are sorted: the order tags were given in does not matter.
	Tags []string `json:"tags,omitempty"`
	// by says which fields are part of the key.
	by GroupBy
}

// Key returns the group of sn.
func (g GroupBy) Key(sn *Snapshot) GroupKey {
	k := GroupKey{by: g}
	if g.Host {
		k.Host = sn.Host
	}
	if g.Paths {
		k.Paths = slices.Clone(sn.Roots)
	}
	if g.Tags {
		k.Tags = slices.Clone(sn.Tags)
		slices.Sort(k.Tags)
	}
	return k
}

// String is the key as forget names groups: "host=a paths=/x:/y tags=t"
// for the fields grouped by ("" for one group).
func (k GroupKey) String() string {
	var key []string
	if k.by.Host {
		key = append(key, "host="+k.Host)
	}
	if k.by.Paths {
		key = append(key, "paths="+strings.Join(k.Paths, ":"))
	}
	if k.by.Tags {
		key = append(key, "tags="+strings.Join(k.Tags, ":"))
	}
	return strings.Join(key, " ")
}
