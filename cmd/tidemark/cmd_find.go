package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// findGroupJSON starts one snapshot's group in find --json: restic's
// shape (snapshot, matches, hits) with the snapshot's time, host and
// paths.
type findGroupJSON struct {
	Snapshot blob.ID   `json:"snapshot"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	Paths    []string  `json:"paths"`
}

// findPrinter prints find's matches as they come, grouped by snapshot.
// With --json it writes an array of groups, restic's way, a match at a
// time, so that nothing holds all of a snapshot's matches:
// [{"snapshot":...,"matches":[...],"hits":N},...].
type findPrinter struct {
	a      *cli
	long   bool
	cur    *snapshot.Snapshot
	groups int
	hits   int
}

func (p *findPrinter) match(sn *snapshot.Snapshot, m app.FindMatch) error {
	if sn != p.cur {
		if err := p.start(sn); err != nil {
			return err
		}
	}
	p.hits++
	if !p.a.jsonOut {
		printFindMatch(p.a, m, p.long)
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if p.hits > 1 {
		fmt.Fprint(p.a.out, ",")
	}
	_, err = fmt.Fprintf(p.a.out, "\n%s", b)
	return err
}

// start ends the group under way and starts sn's.
func (p *findPrinter) start(sn *snapshot.Snapshot) error {
	p.end()
	p.cur, p.hits = sn, 0
	p.groups++
	if !p.a.jsonOut {
		if p.groups > 1 {
			fmt.Fprintln(p.a.out)
		}
		fmt.Fprintf(p.a.out, "Found matching entries in snapshot %s of %s (host %s, paths %s):\n", sn.ID.Short(),
			sn.Time.Local().Format(time.DateTime), displayPath(sn.Host), displayPaths(sn.Roots, " "))
		return nil
	}
	b, err := json.Marshal(findGroupJSON{Snapshot: sn.ID, Time: sn.Time, Host: sn.Host, Paths: sn.Roots})
	if err != nil {
		return err
	}
	sep := ","
	if p.groups == 1 {
		sep = "["
	}
	// The group's object stays open for its matches.
	fmt.Fprintf(p.a.out, "%s\n%s,\"matches\":[", sep, b[:len(b)-1])
	return nil
}

// end closes the JSON group under way.
func (p *findPrinter) end() {
	if p.a.jsonOut && p.cur != nil {
		fmt.Fprintf(p.a.out, "],\"hits\":%d}", p.hits)
	}
}

// finish closes the output.
func (p *findPrinter) finish() error {
	if !p.a.jsonOut {
		return nil
	}
	p.end()
	if p.groups == 0 {
		_, err := fmt.Fprintln(p.a.out, "[]")
		return err
	}
	_, err := fmt.Fprint(p.a.out, "\n]\n")
	return err
}

func (a *cli) findCmd() *cobra.Command {
	var opt app.FindOptions
	var ff filterFlags
	var newer, older string
	var long bool
	cmd := &cobra.Command{
		Use:   "find PATTERN...",
		Short: "Find files and directories in snapshots by name or path",
		Long: `Search the snapshots for entries matching any PATTERN and list them, grouped
by snapshot (oldest first): an entry in five snapshots is listed under each.

A pattern without '/' matches an entry's name at any depth ("*.odt",
"report.odt"); one with '/' matches the end of its path ("work/*.odt": .odt
files in any directory called work); a leading '/' anchors it to the
snapshot's root ("/home/*/work"). '*' matches any characters but '/', '?'
one, [a-z] a class ([^a-z] its complement), '**' any number of directories,
'\' escapes. Quote patterns, or the shell expands them.

Every snapshot the filters (--host, --path, --tag) select is searched, or
only those named by --snapshot. Directory listings come from the local
cache; a directory that is the same in a later snapshot is not read again.

--newer and --older take a date and time in the local time zone
("2024-01-31", "2024-01-31 15:04", "2024-01-31T15:04:05+01:00") or an age
("36h", "2d", "1w", "1d12h"); restic's --oldest and --newest are accepted
for them.`,
		Example: `  tidemark find '*.odt'
  tidemark find -i report.odt --newer 1w
  tidemark find '/home/*/work/**/*.go' --host laptop --json
  tidemark find notes.txt --snapshot latest --snapshot 1a2b3c4d -l`,
		Args: needArgs(1, -1, "give a name or pattern to look for, e.g. tidemark find '*.odt'"),
		RunE: runE(func(ctx context.Context, args []string) error {
			f, err := ff.filter()
			if err != nil {
				return err
			}
			now := time.Now()
			if opt.Newer, err = parseTimeBound("--newer", newer, now); err != nil {
				return err
			}
			if opt.Older, err = parseTimeBound("--older", older, now); err != nil {
				return err
			}
			opt.Patterns, opt.Filter = args, f
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			out := &findPrinter{a: a, long: long}
			res, err := r.Find(ctx, opt, out.match)
			if err != nil {
				return err
			}
			if err := out.finish(); err != nil {
				return err
			}
			for _, e := range res.Errors {
				fmt.Fprintf(a.errOut, "error: %s\n", displayText(e))
			}
			switch {
			case res.Matches == 0:
				a.printf("no matches in %d snapshots\n", res.Snapshots)
			default:
				a.printf("\n%d matches in %d of %d snapshots\n", res.Matches, out.groups, res.Snapshots)
			}
			if len(res.Errors) > 0 {
				return fmt.Errorf("find: %d directories could not be read (see above); what they hold was not searched", len(res.Errors))
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&opt.IgnoreCase, "ignore-case", "i", false, "ignore the case of letters")
	fl.StringVar(&newer, "newer", "", "only entries modified after `TIME` (a date, or an age such as 2d)")
	fl.StringVar(&older, "older", "", "only entries modified before `TIME` (a date, or an age such as 2d)")
	fl.StringVarP(&newer, "oldest", "O", "", "restic's name for --newer")
	fl.StringVarP(&older, "newest", "N", "", "restic's name for --older")
	_ = fl.MarkHidden("oldest")
	_ = fl.MarkHidden("newest")
	fl.StringArrayVarP(&opt.Snapshots, "snapshot", "s", nil, "search only this `SNAPSHOT`: an ID, a unique prefix or latest (repeatable)")
	fl.BoolVarP(&long, "long", "l", false, "show mode, owner, size and mtime")
	ff.register(fl)
	return cmd
}

func printFindMatch(a *cli, m app.FindMatch, long bool) {
	if !long {
		fmt.Fprintln(a.out, displayPath(m.Path))
		return
	}
	n := &snapshot.Node{Type: m.Type, Mode: m.Mode}
	line := fmt.Sprintf("%s %5d %5d %12d %s %s", modeString(n), m.UID, m.GID, m.Size, m.MTime.Local().Format(time.DateTime), displayPath(m.Path))
	if m.Type == snapshot.Symlink {
		line += " -> " + displayPath(m.Target)
	}
	fmt.Fprintln(a.out, line)
}

// timeLayouts are the date forms --newer and --older take, in the local
// time zone unless they say otherwise.
var timeLayouts = []string{"2006-01-02", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339Nano}

// parseTimeBound parses a --newer or --older value: a date and time, or
// an age before now ("36h", "2d", "1w", "1d12h"). "" is no bound.
func parseTimeBound(flag, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if age, ok := parseAge(s); ok {
		return now.Add(-age), nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf(`%s %q: want a date ("2024-01-31", "2024-01-31 15:04") or an age ("36h", "2d", "1w")`, flag, s)
}

// parseAge parses an age: Go durations plus days (d) and weeks (w),
// which lead ("1w2d", "1d12h").
func parseAge(s string) (time.Duration, bool) {
	var total time.Duration
	for rest := s; rest != ""; {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, false
		}
		var unit time.Duration
		switch rest[i] {
		case 'w':
			unit = 7 * 24 * time.Hour
		case 'd':
			unit = 24 * time.Hour
		default:
			d, err := time.ParseDuration(rest)
			if err != nil || d < 0 {
				return 0, false
			}
			return total + d, total+d > 0
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > math.MaxInt64/int64(unit) || total > math.MaxInt64-time.Duration(n)*unit {
			return 0, false
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	return total, total > 0
}
