package main

import (
	"context"
	"fmt"
	"io/fs"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/snapshot"
)

func (a *cli) lsCmd() *cobra.Command {
	var long, recursive bool
	cmd := &cobra.Command{
		Use:   "ls SNAPSHOT [PATH]",
		Short: "List the files in a snapshot",
		Long:  "List the entries below PATH (default: the whole snapshot) of SNAPSHOT, an ID, a unique prefix of one, or \"latest\".",
		Args:  cobra.RangeArgs(1, 2),
		RunE: runE(func(ctx context.Context, args []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			path := ""
			if len(args) == 2 {
				path = args[1]
			}
			return r.Ls(ctx, args[0], path, recursive, func(p string, n *snapshot.Node) error {
				switch {
				case a.jsonOut:
					return jsonLine(a.out, lsJSON{Path: "/" + p, Type: n.Type, Mode: n.Mode, UID: n.UID, GID: n.GID,
						Size: n.Size, MTime: time.Unix(0, n.MTime).UTC(), Target: n.Target})
				case long:
					fmt.Fprintf(a.out, "%s %5d %5d %12d %s /%s", modeString(n), n.UID, n.GID, n.Size,
						time.Unix(0, n.MTime).Local().Format("2006-01-02 15:04:05"), p)
					if n.Type == snapshot.Symlink {
						fmt.Fprintf(a.out, " -> %s", n.Target)
					}
					fmt.Fprintln(a.out)
				default:
					fmt.Fprintf(a.out, "/%s\n", p)
				}
				return nil
			})
		}),
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show mode, owner, size and mtime")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "with PATH, list recursively (without PATH, listing is always recursive)")
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
