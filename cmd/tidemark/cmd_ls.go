package main

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/snapshot"
)

func (a *app) lsCmd() *cobra.Command {
	var long, recursive bool
	cmd := &cobra.Command{
		Use:   "ls SNAPSHOT [PATH]",
		Short: "List the files in a snapshot",
		Long:  "List the entries below PATH (default: the whole snapshot) of SNAPSHOT, an ID, a unique prefix of one, or \"latest\".",
		Args:  cobra.RangeArgs(1, 2),
		RunE: runE(func(ctx context.Context, args []string) error {
			r, err := a.openRepo(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			sn, err := snapshot.Find(ctx, r, args[0])
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 2 {
				prefix = strings.Trim(args[1], "/")
			}
			start, err := snapshot.FindPath(ctx, r, sn.Tree, prefix)
			if err != nil {
				return err
			}
			show := func(p string, n *snapshot.Node) {
				if a.jsonOut {
					_ = a.printJSONLine(map[string]any{"path": "/" + p, "type": n.Type, "mode": n.Mode, "uid": n.UID, "gid": n.GID,
						"size": n.Size, "mtime": time.Unix(0, n.MTime).UTC(), "target": n.Target})
					return
				}
				if long {
					fmt.Fprintf(a.out, "%s %5d %5d %12d %s /%s", modeString(n), n.UID, n.GID, n.Size,
						time.Unix(0, n.MTime).Local().Format("2006-01-02 15:04:05"), p)
					if n.Type == snapshot.Symlink {
						fmt.Fprintf(a.out, " -> %s", n.Target)
					}
					fmt.Fprintln(a.out)
					return
				}
				fmt.Fprintf(a.out, "/%s\n", p)
			}
			if start.Type != snapshot.Dir {
				show(prefix, start)
				return nil
			}
			return snapshot.Walk(ctx, r, start.Subtree, prefix, func(p string, n *snapshot.Node) error {
				show(p, n)
				if !recursive && len(args) == 2 && n.Type == snapshot.Dir {
					return snapshot.ErrSkipDir
				}
				return nil
			})
		}),
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show mode, owner, size and mtime")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "with PATH, list recursively (without PATH, listing is always recursive)")
	return cmd
}

func (a *app) printJSONLine(v any) error {
	return jsonLine(a.out, v)
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
