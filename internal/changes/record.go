package changes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// RecordKind says what a journal record means.
type RecordKind uint8

// Record kinds.
const (
	// RecStart opens an epoch (always seq 1); Text describes the sources.
	RecStart RecordKind = 1
	// RecDirty: the directory Path may have changed entries.
	RecDirty RecordKind = 2
	// RecTree: everything below directory Path must be rescanned.
	RecTree RecordKind = 3
	// RecInode: an inode changed in a way that concerns all its links; Path
	// is one of its links (may be empty), Text is "dev:ino" (may be empty).
	RecInode RecordKind = 4
	// RecFence: the watcher saw the fence marker named Path.
	RecFence RecordKind = 5
	// RecGap: changes below Path (every path when empty) may be missing;
	// Text is the reason.
	RecGap RecordKind = 6
	// RecLinkAdded: a hard link to the inode Text ("dev:ino") was made,
	// at Path (may be empty when it could not be verified). The inode's
	// link count rose, so a link elsewhere that was its only one until
	// now changed too: unlike RecInode, records of multiply-linked files
	// cannot rule it out.
	RecLinkAdded RecordKind = 7
)

func (k RecordKind) String() string {
	switch k {
	case RecStart:
		return "start"
	case RecDirty:
		return "dirty"
	case RecTree:
		return "tree"
	case RecInode:
		return "inode"
	case RecFence:
		return "fence"
	case RecGap:
		return "gap"
	case RecLinkAdded:
		return "link added"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Record is one journal entry.
type Record struct {
	Seq  uint64
	Kind RecordKind
	Time time.Time
	Path string
	Text string
}

// Frame layout: payload length (uint32 LE), CRC-32C of the payload (uint32
// LE), payload. Payload: uvarint seq, kind byte, varint unix nanoseconds,
// uvarint length + path bytes, uvarint length + text bytes.
const (
	frameHeader = 8
	// maxPayload bounds what the decoder accepts, so a damaged length
	// cannot make a reader allocate or wait for gigabytes.
	maxPayload = 3*4096 + 64
	maxText    = 4096
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var (
	// errShortRecord means the buffer ends inside a record: a record still
	// being written, or a torn write.
	errShortRecord = errors.New("incomplete record")
	// errCorruptRecord means the bytes are not a valid record.
	errCorruptRecord = errors.New("corrupt record")
)

// appendRecord appends the encoding of r to dst.
func appendRecord(dst []byte, r Record) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader)...)
	dst = binary.AppendUvarint(dst, r.Seq)
	dst = append(dst, byte(r.Kind))
	dst = binary.AppendVarint(dst, r.Time.UnixNano())
	dst = binary.AppendUvarint(dst, uint64(len(r.Path)))
	dst = append(dst, r.Path...)
	dst = binary.AppendUvarint(dst, uint64(len(r.Text)))
	dst = append(dst, r.Text...)
	payload := dst[start+frameHeader:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, crcTable))
	return dst
}

// decodeRecord decodes the record at the start of b and returns it with the
// number of bytes it used. It returns errShortRecord when b ends before the
// record does and an error wrapping errCorruptRecord when the bytes are not
// a valid record. It never panics, whatever b holds.
func decodeRecord(b []byte) (Record, int, error) {
	if len(b) < frameHeader {
		return Record{}, 0, errShortRecord
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > maxPayload {
		return Record{}, 0, fmt.Errorf("%w: payload length %d", errCorruptRecord, n)
	}
	if uint64(len(b)-frameHeader) < uint64(n) {
		return Record{}, 0, errShortRecord
	}
	payload := b[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return Record{}, 0, fmt.Errorf("%w: checksum mismatch", errCorruptRecord)
	}
	r, err := decodePayload(payload)
	if err != nil {
		return Record{}, 0, err
	}
	return r, frameHeader + int(n), nil
}

func decodePayload(p []byte) (Record, error) {
	var r Record
	bad := func(what string) (Record, error) {
		return Record{}, fmt.Errorf("%w: %s", errCorruptRecord, what)
	}
	seq, k := binary.Uvarint(p)
	if k <= 0 {
		return bad("seq")
	}
	p = p[k:]
	r.Seq = seq
	if len(p) < 1 {
		return bad("kind")
	}
	r.Kind = RecordKind(p[0])
	p = p[1:]
	ns, k := binary.Varint(p)
	if k <= 0 {
		return bad("time")
	}
	p = p[k:]
	r.Time = time.Unix(0, ns)
	var s [2]string
	for i := range s {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return bad("string length")
		}
		s[i] = string(p[k : k+int(l)])
		p = p[k+int(l):]
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	r.Path, r.Text = s[0], s[1]
	if err := r.validate(); err != nil {
		return Record{}, fmt.Errorf("%w: %v", errCorruptRecord, err)
	}
	return r, nil
}

// validate checks what a record of its kind must hold, so readers can rely
// on it: absolute clean paths, simple fence names, no NUL bytes.
func (r Record) validate() error {
	if r.Seq == 0 {
		return errors.New("seq 0")
	}
	if strings.IndexByte(r.Path, 0) >= 0 || strings.IndexByte(r.Text, 0) >= 0 {
		return errors.New("NUL byte")
	}
	if len(r.Text) > maxText || !utf8.ValidString(r.Text) {
		return errors.New("bad text")
	}
	absPath := func() error {
		if !isCleanAbs(r.Path) {
			return fmt.Errorf("%s record: path %q is not absolute and clean", r.Kind, r.Path)
		}
		return nil
	}
	switch r.Kind {
	case RecStart:
		if r.Path != "" {
			return errors.New("start record with a path")
		}
	case RecDirty, RecTree:
		return absPath()
	case RecInode:
		if r.Path == "" && r.Text == "" {
			return errors.New("inode record without path or number")
		}
		if r.Path != "" {
			if err := absPath(); err != nil {
				return err
			}
		}
		if r.Text != "" {
			if _, _, err := parseDevIno(r.Text); err != nil {
				return err
			}
		}
	case RecLinkAdded:
		if r.Path != "" {
			if err := absPath(); err != nil {
				return err
			}
		}
		if _, _, err := parseDevIno(r.Text); err != nil {
			return err
		}
	case RecFence:
		if !validFenceName(r.Path) {
			return fmt.Errorf("bad fence name %q", r.Path)
		}
	case RecGap:
		if r.Path != "" {
			if err := absPath(); err != nil {
				return err
			}
		}
		if r.Text == "" {
			return errors.New("gap without a reason")
		}
	default:
		return fmt.Errorf("unknown kind %d", uint8(r.Kind))
	}
	return nil
}

func isCleanAbs(p string) bool {
	return p != "" && p[0] == '/' && filepath.Clean(p) == p && strings.IndexByte(p, 0) < 0
}

// validFenceName accepts the names Fence creates: short, no separators.
func validFenceName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func formatDevIno(dev, ino uint64) string { return fmt.Sprintf("%d:%d", dev, ino) }

func parseDevIno(s string) (dev, ino uint64, err error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("bad inode number %q", s)
	}
	if dev, err = strconv.ParseUint(a, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("bad inode number %q", s)
	}
	if ino, err = strconv.ParseUint(b, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("bad inode number %q", s)
	}
	return dev, ino, nil
}
