// Package sftp stores a repository in a directory on an SSH server, over
// SFTP, with the same layout as the local backend:
//
//	config
//	keys/<name>
//	data/<first 2 chars>/<name>    (shard directories made on first use)
//	trees/<first 2 chars>/<name>
//	index/<name>
//	snapshots/<name>
//	locks/<name>
//
// so a repository can be copied between a disk and a server with rsync or
// scp and opened by either backend.
//
// Saves are atomic: data goes to a temporary file named ".tmp-<random>"
// in the object's own directory (listings skip dot files), is fsynced when
// the server offers fsync@openssh.com, and is then hard-linked to its
// final name with hardlink@openssh.com. A link never replaces an existing
// file, so two writers of one name cannot both win and the loser gets
// backend.ErrExists; the temporary file is then removed. Servers without
// hard links get a check followed by posix-rename@openssh.com (or plain
// rename), which has a small race between the check and the rename. A
// reader therefore never sees a partial object under its final name; a
// crash or lost connection leaves at most a stray ".tmp-" file.
//
// Connections are made with golang.org/x/crypto/ssh, honouring the user's
// ~/.ssh/config (HostName, Port, User, IdentityFile, UserKnownHostsFile),
// ssh-agent and known_hosts; unknown host keys are refused unless
// Config.InsecureIgnoreHostKey is set. A Backend is safe for concurrent
// use and redials once per call when the connection drops.
package sftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/tidemark/tidemark/internal/backend"
)

// ioChunk is how much one read or write request batch covers: pkg/sftp
// splits it into concurrent 32 KiB packets, and ctx is checked between
// batches, so a cancelled 16 MiB upload stops within a few MiB.
const ioChunk = 4 << 20

// Backend is a repository directory on an SFTP server.
type Backend struct {
	cfg  Config
	ep   endpoint
	root string

	// lock guards cur and closed. It is a channel rather than a
	// sync.Mutex so that callers waiting while another goroutine redials
	// can give up when their context ends.
	lock   chan struct{}
	cur    *conn
	closed bool
}

func newBackend(cfg Config) (*Backend, error) {
	if cfg.Path == "" {
		return nil, permanent(errors.New("no repository path given"))
	}
	ep, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	root := cfg.Path
	// Relative paths are relative to the login directory on the server
	// already; "~/" is accepted as a spelling of that.
	if root == "~" {
		root = "."
	}
	root = path.Clean(strings.TrimPrefix(root, "~/"))
	return &Backend{cfg: cfg, ep: ep, root: root, lock: make(chan struct{}, 1)}, nil
}

// Open connects to an existing repository directory.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := newBackend(cfg)
	if err != nil {
		return nil, fmt.Errorf("sftp open %s: %w", cfg, err)
	}
	err = b.do(ctx, func(c *conn) error {
		fi, err := c.sftp.Stat(b.root)
		if err != nil {
			return fmt.Errorf("repository directory %s: %w", b.root, err)
		}
		if !fi.IsDir() {
			return permanent(fmt.Errorf("%s is not a directory", b.root))
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("sftp open %s: %w", cfg, err)
	}
	return b, nil
}

// Create makes the directory layout of a new repository. The directory
// may exist but must be empty.
func Create(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := newBackend(cfg)
	if err != nil {
		return nil, fmt.Errorf("sftp create %s: %w", cfg, err)
	}
	err = b.do(ctx, func(c *conn) error {
		_, statErr := c.sftp.Stat(b.root)
		if err := c.sftp.MkdirAll(b.root); err != nil {
			return err
		}
		if errors.Is(statErr, fs.ErrNotExist) {
			// Only a directory we made is narrowed to the owner, like
			// the local backend; an existing one keeps its mode.
			_ = c.sftp.Chmod(b.root, 0o700)
		}
		ents, err := c.sftp.ReadDirContext(ctx, b.root)
		if err != nil {
			return err
		}
		if len(ents) > 0 {
			return permanent(fmt.Errorf("directory %s is not empty", b.root))
		}
		return nil
	})
	if err == nil {
		for _, t := range backend.AllTypes {
			if t == backend.Config {
				continue
			}
			dir := path.Join(b.root, string(t))
			if err = b.do(ctx, func(c *conn) error { return c.mkdir(dir) }); err != nil {
				break
			}
		}
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("sftp create %s: %w", cfg, err)
	}
	return b, nil
}

// mkdir makes dir (mode 0700), succeeding if it already exists, as when
// two savers make the same shard directory at once.
func (c *conn) mkdir(dir string) error {
	err := c.sftp.Mkdir(dir)
	if err != nil {
		// Servers report an existing directory as a generic failure.
		if fi, serr := c.sftp.Stat(dir); serr == nil && fi.IsDir() {
			return nil
		}
		return err
	}
	_ = c.sftp.Chmod(dir, 0o700)
	return nil
}

// Location implements backend.Backend.
func (b *Backend) Location() string { return b.cfg.String() }

// path maps a handle to its remote path: the layout every backend shares.
func (b *Backend) path(h backend.Handle) (string, error) {
	p, err := backend.ObjectPath(h)
	if err != nil {
		return "", err
	}
	return path.Join(b.root, p), nil
}

// connect returns the current connection, dialling if there is none or it
// has died.
func (b *Backend) connect(ctx context.Context) (*conn, error) {
	select {
	case b.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-b.lock }()
	if b.closed {
		return nil, permanent(errClosed)
	}
	if b.cur != nil {
		if !b.cur.dead() {
			return b.cur, nil
		}
		b.cur.close()
		b.cur = nil
	}
	c, err := dial(ctx, b.ep)
	if err != nil {
		return nil, err
	}
	b.cur = c
	return c, nil
}

// do runs op on a connection. If the connection turns out to be lost, it
// is dropped and op runs once more on a fresh one, so a server restart or
// network blip costs one redial rather than a failed backup. op must be
// safe to repeat.
func (b *Backend) do(ctx context.Context, op func(*conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := b.connect(ctx)
	if err != nil {
		return err
	}
	err = op(c)
	if err == nil || !(c.dead() || connLost(err)) {
		return err
	}
	c.close()
	if ctx.Err() != nil {
		return err
	}
	c, rerr := b.connect(ctx)
	if rerr != nil {
		return fmt.Errorf("connection lost (%v), reconnecting: %w", err, rerr)
	}
	return op(c)
}

// tmpName returns a fresh temporary file name; the leading dot keeps it
// out of listings and out of the space of valid object names.
func tmpName() string {
	var r [8]byte
	rand.Read(r[:])
	return ".tmp-" + hex.EncodeToString(r[:])
}

// Save implements backend.Backend.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sftp save %s: %w", h, err)
	}
	p, err := b.path(h)
	if err != nil {
		return fmt.Errorf("sftp save %s: %w", h, err)
	}
	attempt := 0
	err = b.do(ctx, func(c *conn) error {
		attempt++
		err := c.save(ctx, p, backend.Sharded(h.Type), data)
		if attempt > 1 && errors.Is(err, backend.ErrExists) && c.holds(p, data) {
			// The first attempt's link went through but its reply was
			// lost with the connection: the object is ours.
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sftp save %s: %w", h, err)
	}
	return nil
}

func (c *conn) save(ctx context.Context, p string, shard bool, data []byte) error {
	dir := path.Dir(p)
	tmp := path.Join(dir, tmpName())
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	f, err := c.sftp.OpenFile(tmp, flags)
	if errors.Is(err, fs.ErrNotExist) && shard {
		// Shard directories are made when first used.
		if err = c.mkdir(dir); err == nil {
			f, err = c.sftp.OpenFile(tmp, flags)
		}
	}
	if err != nil {
		return err
	}
	open, published := true, false
	defer func() {
		if open {
			f.Close()
		}
		if !published {
			// Best effort: on a dead connection the dot file stays,
			// invisible to List.
			c.sftp.Remove(tmp)
		}
	}()
	for off := 0; off < len(data); {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(off+ioChunk, len(data))
		n, err := f.WriteAt(data[off:end], int64(off))
		if err != nil {
			return err
		}
		if n != end-off {
			return io.ErrShortWrite
		}
		off = end
	}
	// Objects are write-once; read-only files say so to anyone poking
	// around on the server. Not all servers allow it, which is harmless.
	_ = f.Chmod(0o400)
	if c.fsync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	open = false
	if err := f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.publish(tmp, p); err != nil {
		return err
	}
	published = true
	return nil
}

// publish gives the finished temporary file tmp its final name p without
// ever replacing an existing p.
func (c *conn) publish(tmp, p string) error {
	if c.hardlink {
		err := c.sftp.Link(tmp, p)
		if err == nil {
			// The object is in place; a failure to remove the temporary
			// name leaves only a stray dot file, so it is not an error
			// (and must not make do() repeat a save that succeeded).
			c.sftp.Remove(tmp)
			return nil
		}
		// OpenSSH reports EEXIST as a generic failure: look.
		if _, serr := c.sftp.Lstat(p); serr == nil {
			return backend.ErrExists
		}
		return err
	}
	// Without hard links there is a window between this check and the
	// rename in which another writer could slip in; names are content
	// hashes or random, so both writers hold the same bytes anyway.
	if _, err := c.sftp.Lstat(p); err == nil {
		return backend.ErrExists
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if c.posixRename {
		return c.sftp.PosixRename(tmp, p)
	}
	// Plain SFTP rename fails if p exists, which is what we want.
	return c.sftp.Rename(tmp, p)
}

// holds reports whether p exists with exactly data as its content.
func (c *conn) holds(p string, data []byte) bool {
	got, err := c.load(context.Background(), p, 0, 0)
	return err == nil && bytes.Equal(got, data)
}

// Load implements backend.Backend.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sftp load %s: %w", h, err)
	}
	p, err := b.path(h)
	if err != nil {
		return nil, fmt.Errorf("sftp load %s: %w", h, err)
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("sftp load %s: %w", h, permanent(fmt.Errorf("invalid range %d+%d", offset, length)))
	}
	var buf []byte
	err = b.do(ctx, func(c *conn) error {
		var err error
		buf, err = c.load(ctx, p, offset, length)
		return err
	})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("sftp load %s: %w", h, backend.ErrNotFound)
		}
		return nil, fmt.Errorf("sftp load %s: %w", h, err)
	}
	return buf, nil
}

func (c *conn) load(ctx context.Context, p string, offset, length int64) ([]byte, error) {
	f, err := c.sftp.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if length == 0 {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		length = fi.Size() - offset
		if length < 0 {
			return nil, permanent(fmt.Errorf("%w: offset %d beyond size %d: %w", backend.ErrShortObject, offset, fi.Size(), io.ErrUnexpectedEOF))
		}
	}
	buf := make([]byte, length)
	for off := 0; off < len(buf); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(off+ioChunk, len(buf))
		n, err := f.ReadAt(buf[off:end], offset+int64(off))
		off += n
		if off < end {
			if err == nil || errors.Is(err, io.EOF) {
				return nil, permanent(fmt.Errorf("%w (%d of %d bytes at %d): %w", backend.ErrShortObject, off, length, offset, io.ErrUnexpectedEOF))
			}
			return nil, err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	return buf, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sftp stat %s: %w", h, err)
	}
	p, err := b.path(h)
	if err != nil {
		return 0, fmt.Errorf("sftp stat %s: %w", h, err)
	}
	var size int64
	err = b.do(ctx, func(c *conn) error {
		fi, err := c.sftp.Stat(p)
		if err != nil {
			return err
		}
		size = fi.Size()
		return nil
	})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("sftp stat %s: %w", h, backend.ErrNotFound)
		}
		return 0, fmt.Errorf("sftp stat %s: %w", h, err)
	}
	return size, nil
}

// List implements backend.Backend. Directories are read whole, with a
// redial if needed, before fn sees their entries, so a reconnect never
// makes fn see a name twice.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(string, int64) error) error {
	if _, err := backend.ObjectPath(backend.Handle{Type: t, Name: "xx"}); t == backend.Config || err != nil { // an unknown type
		return fmt.Errorf("sftp list %s: %w", t, permanent(errors.New("not a listable object type")))
	}
	dir := path.Join(b.root, string(t))
	ents, err := b.readDir(ctx, dir)
	if err != nil {
		return fmt.Errorf("sftp list %s: %w", t, err)
	}
	if !backend.Sharded(t) {
		return listFiles(ents, fn)
	}
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), ".") || !d.IsDir() {
			continue
		}
		sub, err := b.readDir(ctx, path.Join(dir, d.Name()))
		if err != nil {
			return fmt.Errorf("sftp list %s: %w", t, err)
		}
		if err := listFiles(sub, fn); err != nil {
			return err
		}
	}
	return nil
}

// readDir lists dir; a missing directory is empty, as an unused shard is.
func (b *Backend) readDir(ctx context.Context, dir string) ([]fs.FileInfo, error) {
	var ents []fs.FileInfo
	err := b.do(ctx, func(c *conn) error {
		var err error
		ents, err = c.sftp.ReadDirContext(ctx, dir)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return ents, err
}

func listFiles(ents []fs.FileInfo, fn func(string, int64) error) error {
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || !e.Mode().IsRegular() {
			continue
		}
		if err := fn(e.Name(), e.Size()); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements backend.Backend.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sftp remove %s: %w", h, err)
	}
	p, err := b.path(h)
	if err != nil {
		return fmt.Errorf("sftp remove %s: %w", h, err)
	}
	attempt := 0
	err = b.do(ctx, func(c *conn) error {
		attempt++
		err := c.sftp.Remove(p)
		if attempt > 1 && errors.Is(err, fs.ErrNotExist) {
			// The first attempt removed it but lost the reply.
			return nil
		}
		return err
	})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sftp remove %s: %w", h, backend.ErrNotFound)
		}
		return fmt.Errorf("sftp remove %s: %w", h, err)
	}
	return nil
}

// Close implements backend.Backend. It waits for a redial in progress.
func (b *Backend) Close() error {
	b.lock <- struct{}{}
	defer func() { <-b.lock }()
	b.closed = true
	if b.cur != nil {
		b.cur.close()
		b.cur = nil
	}
	return nil
}
