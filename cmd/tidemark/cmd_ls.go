package main

import (
	"context"
	"fmt"
	"io/fs"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/snapshot"
)

func (a *cli) lsCmd() *cobra.Command {
	var opt app.LsOptions
	var ff filterFlags
	var long bool
	cmd := &cobra.Command{
		Use:   "ls SNAPSHOT [PATH]",
		Short: "List the files in a snapshot",
		Long: `List the entries below PATH (default: the whole snapshot) of SNAPSHOT, an ID,
a unique prefix of one, or "latest": the newest snapshot the filters
(--host, --path, --tag) select. Names with control characters or invalid
UTF-8 are shown quoted, with escapes; --json gives them exactly.`,
		Args: needArgs(1, 2, "give a snapshot (an ID, a unique prefix or latest) and optionally a path in it, e.g. tidemark ls latest /home/me/work"),
		RunE: runE(func(ctx context.Context, args []string) error {
			f, err := ff.filter()
			if err != nil {
				return err
			}
			opt.Snapshot, opt.Filter = args[0], f
			if len(args) == 2 {
				opt.Path = args[1]
			}
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			return r.Ls(ctx, opt, func(p string, n *snapshot.Node) error {
				switch {
				case a.jsonOut:
					return jsonLine(a.out, lsJSON{Path: "/" + p, Type: n.Type, Mode: n.Mode, UID: n.UID, GID: n.GID,
						Size: n.Size, MTime: time.Unix(0, n.MTime).UTC(), Target: n.Target})
				case long:
					fmt.Fprintf(a.out, "%s %5d %5d %12d %s %s", modeString(n), n.UID, n.GID, n.Size,
						time.Unix(0, n.MTime).Local().Format("2006-01-02 15:04:05"), displayPath("/"+p))
					if n.Type == snapshot.Symlink {
						fmt.Fprintf(a.out, " -> %s", displayPath(n.Target))
					}
					fmt.Fprintln(a.out)
				default:
					fmt.Fprintln(a.out, displayPath("/"+p))
				}
				return nil
			})
		}),
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show mode, owner, size and mtime")
	cmd.Flags().BoolVarP(&opt.Recursive, "recursive", "R", false, "with PATH, list recursively (without PATH, listing is always recursive)")
	ff.register(cmd.Flags())
	return cmd
}

// lsJSON is one line of ls --json.
type lsJSON struct {
	Path   string            `json:"path"`
	Type   snapshot.NodeType `json:"type"`
	Mode   uint32            `json:"mode"`
	UID    uint32            `json:"uid"`
	GID    uint32            `json:"gid"`
	Size   uint64            `json:"size"`
	MTime  time.Time         `json:"mtime"`
	Target string            `json:"target"`
}

func modeString(n *snapshot.Node) string {
	m := fs.FileMode(n.Mode & 0o777)
	if n.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch n.Type {
	case snapshot.Dir:
		m |= fs.ModeDir
	case snapshot.Symlink:
		m |= fs.ModeSymlink
	case snapshot.BlockDev:
		m |= fs.ModeDevice
	case snapshot.CharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case snapshot.Fifo:
		m |= fs.ModeNamedPipe
	case snapshot.Socket:
		m |= fs.ModeSocket
	}
	return m.String()
}
