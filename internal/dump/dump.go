// Package dump writes parts of a snapshot as a stream: one file's content
// as it is, or a directory as a tar or zip archive, for `tidemark dump`.
//
// Everything is streamed: a file's chunks are loaded a few at a time
// ahead of the writer and written in order, so memory stays bounded by a
// handful of chunks whatever the file's size, and an archive holds in
// memory only the directory being written and the names of hard-linked
// files met so far.
//
// Tar keeps what a tar can: modes (setuid, setgid and sticky included),
// owners by number, nanosecond mtimes (PAX), extended attributes
// (SCHILY.xattr records), symlinks, hard links (later names of a file are
// links to the first one in the archive), fifos and devices; sockets
// cannot be stored and are reported. Sparse files are written dense:
// archive/tar does not write sparse entries. Zip keeps modes, mtimes and
// symlinks (Info-ZIP's convention: the target as content); a hard link's
// content is stored again under each name, and fifos, sockets and devices
// are reported, not stored.
package dump

import (
	"archive/tar"
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// Source is what a dump reads from the repository.
type Source interface {
	// LoadTree reads and decodes a tree.
	LoadTree(ctx context.Context, id blob.ID) (*snapshot.Tree, error)
	// LoadData returns the plaintext of a data blob. It is called from
	// several goroutines at once.
	LoadData(ctx context.Context, id blob.ID) ([]byte, error)
}

// ErrCorrupt marks content that does not add up to the size recorded.
var ErrCorrupt = errors.New("content does not match the recorded size")

// readAhead is how many chunks are loaded ahead of the writer.
const readAhead = 4

// WriteFile writes the content of file node n to w and returns the bytes
// written. The chunks are loaded in parallel, readAhead at a time, and
// written in order.
func WriteFile(ctx context.Context, src Source, n *snapshot.Node, w io.Writer) (uint64, error) {
	// On return, whatever the reason, the loads still under way are
	// cancelled and waited for: none outlives the call (and, say, the
	// repository it reads).
	var loads sync.WaitGroup
	defer loads.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type loaded struct {
		data []byte
		err  error
	}
	pending := make(chan chan loaded, readAhead)
	loads.Go(func() {
		defer close(pending)
		for _, id := range n.Content {
			ch := make(chan loaded, 1)
			select {
			case pending <- ch:
			case <-ctx.Done():
				return
			}
			loads.Go(func() {
				data, err := src.LoadData(ctx, id)
				ch <- loaded{data, err}
			})
		}
	})
	var written uint64
	for ch := range pending {
		var l loaded
		select {
		case l = <-ch:
		case <-ctx.Done():
			return written, ctx.Err()
		}
		if l.err != nil {
			return written, fmt.Errorf("load content: %w", l.err)
		}
		if written+uint64(len(l.data)) > n.Size {
			return written, fmt.Errorf("%w: more than %d bytes", ErrCorrupt, n.Size)
		}
		k, err := w.Write(l.data)
		written += uint64(k)
		if err != nil {
			return written, err
		}
	}
	if err := ctx.Err(); err != nil {
		return written, err
	}
	if written != n.Size {
		return written, fmt.Errorf("%w: %d bytes, recorded %d", ErrCorrupt, written, n.Size)
	}
	return written, nil
}

// Format is an archive format.
type Format string

// Archive formats.
const (
	Tar Format = "tar"
	Zip Format = "zip"
)

// ParseFormat checks an --archive value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Tar, Zip:
		return f, nil
	}
	return "", fmt.Errorf("--archive %q: want tar or zip", s)
}

// Root is the part of a snapshot an archive holds.
type Root struct {
	// Node is the directory (or other entry) to write.
	Node *snapshot.Node
	// Path is Node's snapshot path from the root tree (slash-separated,
	// "" for the root tree itself): hard links are recorded by those.
	Path string
	// Name is Node's name in the archive ("home/me/work"); "" writes the
	// directory's contents at the top of the archive, without an entry
	// for the directory itself.
	Name string
}

// Counts say what an archive holds.
type Counts struct {
	Files uint64 `json:"files"`
	Dirs  uint64 `json:"dirs"`
	// Links counts the names written as hard links to an earlier one.
	Links uint64 `json:"links"`
	// Other counts symlinks, fifos and devices.
	Other uint64 `json:"other"`
	// Bytes counts the file content written.
	Bytes uint64 `json:"bytes"`
	// Skipped counts the entries the format cannot hold (see Options.Skip).
	Skipped uint64 `json:"skipped"`
}

// Options configure WriteArchive.
type Options struct {
	Format Format
	// Skip, if set, is told about each entry the format cannot hold,
	// with its archive name and why.
	Skip func(name, why string)
}

// entryWriter is one archive format.
type entryWriter interface {
	dir(name string, n *snapshot.Node) error
	// file starts a regular file; its content is written to the writer
	// returned. linkTo, when set, names an earlier entry of the same
	// inode, and a format that can says so instead (linked true).
	file(name string, n *snapshot.Node, linkTo string) (w io.Writer, linked bool, err error)
	// other writes a symlink, fifo or device; stored false says the
	// format cannot hold it, and why.
	other(name string, n *snapshot.Node) (stored bool, why string, err error)
	close() error
}

// WriteArchive writes root and everything below it to w as an archive.
func WriteArchive(ctx context.Context, src Source, w io.Writer, root Root, opt Options) (Counts, error) {
	var ew entryWriter
	switch opt.Format {
	case Tar:
		ew = &tarWriter{w: tar.NewWriter(w)}
	case Zip:
		ew = &zipWriter{w: zip.NewWriter(w)}
	default:
		return Counts{}, fmt.Errorf("unknown archive format %q", opt.Format)
	}
	a := &archiver{src: src, ew: ew, opt: opt, links: map[string]string{}}
	err := a.entry(ctx, root.Node, root.Path, root.Name)
	if cerr := ew.close(); err == nil {
		err = cerr
	}
	return a.counts, err
}

type archiver struct {
	src    Source
	ew     entryWriter
	opt    Options
	counts Counts
	// links maps a hard-link group (see linkKey) to the archive name of
	// its first entry written.
	links map[string]string
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// entry writes n, at snapshot path p, as name, and for a directory what
// is below it.
func (a *archiver) entry(ctx context.Context, n *snapshot.Node, p, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch n.Type {
	case snapshot.Dir:
		if name != "" {
			if err := a.ew.dir(name, n); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			a.counts.Dirs++
		}
		t, err := a.src.LoadTree(ctx, n.Subtree)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for i := range t.Nodes {
			c := &t.Nodes[i]
			if err := a.entry(ctx, c, join(p, c.Name), join(name, c.Name)); err != nil {
				return err
			}
		}
		return nil
	case snapshot.File:
		return a.file(ctx, n, p, name)
	}
	stored, why, err := a.ew.other(name, n)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", name, err)
	case !stored:
		a.counts.Skipped++
		if a.opt.Skip != nil {
			a.opt.Skip(name, why)
		}
	default:
		a.counts.Other++
	}
	return nil
}

// linkKey names n's hard-link group: the snapshot path of the group's
// first name, which later names record; "" when n is not hard-linked.
func linkKey(n *snapshot.Node, p string) string {
	switch {
	case n.HardLink != "":
		return n.HardLink
	case n.MultiLink:
		return p
	}
	return ""
}

func (a *archiver) file(ctx context.Context, n *snapshot.Node, p, name string) error {
	key := linkKey(n, p)
	// The group's first name may lie outside what is dumped: then the
	// first name met here holds the content and the others link to it.
	first := a.links[key]
	w, linked, err := a.ew.file(name, n, first)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if linked {
		a.counts.Links++
		return nil
	}
	written, err := WriteFile(ctx, a.src, n, w)
	a.counts.Bytes += written
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	a.counts.Files++
	if key != "" && first == "" {
		a.links[key] = name
	}
	return nil
}

// mtime returns n's modification time.
func mtime(n *snapshot.Node) time.Time { return time.Unix(0, n.MTime) }

// fileMode returns n's permissions and type as an io/fs mode.
func fileMode(n *snapshot.Node) iofs.FileMode {
	m := iofs.FileMode(n.Mode & 0o777)
	if n.Mode&0o4000 != 0 {
		m |= iofs.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		m |= iofs.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		m |= iofs.ModeSticky
	}
	switch n.Type {
	case snapshot.Dir:
		m |= iofs.ModeDir
	case snapshot.Symlink:
		m |= iofs.ModeSymlink
	}
	return m
}

// tarWriter writes PAX tar archives: the format that keeps nanosecond
// times, long and non-ASCII names and xattrs.
type tarWriter struct {
	w *tar.Writer
}

func (t *tarWriter) header(name string, n *snapshot.Node, typ byte) *tar.Header {
	h := &tar.Header{Typeflag: typ, Name: name, Mode: int64(n.Mode & 0o7777), Uid: int(n.UID), Gid: int(n.GID),
		ModTime: mtime(n), Format: tar.FormatPAX}
	if len(n.Xattrs) > 0 {
		h.PAXRecords = map[string]string{}
		for _, x := range n.Xattrs {
			h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
		}
	}
	return h
}

func (t *tarWriter) dir(name string, n *snapshot.Node) error {
	return t.w.WriteHeader(t.header(name+"/", n, tar.TypeDir))
}

func (t *tarWriter) file(name string, n *snapshot.Node, linkTo string) (io.Writer, bool, error) {
	if linkTo != "" {
		h := t.header(name, n, tar.TypeLink)
		h.Linkname = linkTo
		return nil, true, t.w.WriteHeader(h)
	}
	h := t.header(name, n, tar.TypeReg)
	h.Size = int64(n.Size)
	return t.w, false, t.w.WriteHeader(h)
}

func (t *tarWriter) other(name string, n *snapshot.Node) (bool, string, error) {
	var h *tar.Header
	switch n.Type {
	case snapshot.Symlink:
		h = t.header(name, n, tar.TypeSymlink)
		h.Linkname = n.Target
	case snapshot.Fifo:
		h = t.header(name, n, tar.TypeFifo)
	case snapshot.CharDev, snapshot.BlockDev:
		typ := byte(tar.TypeChar)
		if n.Type == snapshot.BlockDev {
			typ = tar.TypeBlock
		}
		h = t.header(name, n, typ)
		h.Devmajor, h.Devminor = devMajor(n.Rdev), devMinor(n.Rdev)
	default:
		return false, fmt.Sprintf("a tar cannot hold a %s", n.Type), nil
	}
	return true, "", t.w.WriteHeader(h)
}

func (t *tarWriter) close() error { return t.w.Close() }

// devMajor and devMinor split a device number as Linux encodes it
// (glibc's gnu_dev_major/minor); backups record the number as the
// system gave it, and they run on Linux.
func devMajor(dev uint64) int64 { return int64((dev>>8)&0xfff | (dev>>32)&^0xfff) }
func devMinor(dev uint64) int64 { return int64(dev&0xff | (dev>>12)&^0xff) }

// zipWriter writes zip archives (zip64 where sizes need it).
type zipWriter struct {
	w *zip.Writer
}

func (z *zipWriter) header(name string, n *snapshot.Node, method uint16) *zip.FileHeader {
	h := &zip.FileHeader{Name: name, Method: method, Modified: mtime(n)}
	h.SetMode(fileMode(n))
	return h
}

func (z *zipWriter) dir(name string, n *snapshot.Node) error {
	_, err := z.w.CreateHeader(z.header(name+"/", n, zip.Store))
	return err
}

func (z *zipWriter) file(name string, n *snapshot.Node, _ string) (io.Writer, bool, error) {
	w, err := z.w.CreateHeader(z.header(name, n, zip.Deflate))
	return w, false, err
}

func (z *zipWriter) other(name string, n *snapshot.Node) (bool, string, error) {
	if n.Type != snapshot.Symlink {
		return false, fmt.Sprintf("a zip cannot hold a %s", n.Type), nil
	}
	w, err := z.w.CreateHeader(z.header(name, n, zip.Store))
	if err == nil {
		_, err = io.WriteString(w, n.Target)
	}
	return true, "", err
}

func (z *zipWriter) close() error { return z.w.Close() }
