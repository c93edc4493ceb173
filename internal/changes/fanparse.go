package changes

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// fanotify ABI constants (linux/fanotify.h), repeated here so the parser
// builds and is tested on every platform.
const (
	fanMetadataVersion = 3
	fanMetadataLen     = 24

	fanInfoFID         = 1
	fanInfoDFIDName    = 2
	fanInfoDFID        = 3
	fanInfoOldDFIDName = 10
	fanInfoNewDFIDName = 12

	fanModify     = 0x2
	fanAttrib     = 0x4
	fanCloseWrite = 0x8
	fanMovedFrom  = 0x40
	fanMovedTo    = 0x80
	fanCreate     = 0x100
	fanDelete     = 0x200
	fanDeleteSelf = 0x400
	fanMoveSelf   = 0x800
	fanQOverflow  = 0x4000
	fanOnDir      = 0x40000000
)

// fanFID is a filesystem ID and a file handle from an event's info record.
type fanFID struct {
	fsid   uint64
	htype  int32
	handle []byte // aliases the read buffer
}

// key identifies the object for caches; it copies the handle.
func (f fanFID) key() string {
	b := make([]byte, 12, 12+len(f.handle))
	binary.LittleEndian.PutUint64(b, f.fsid)
	binary.LittleEndian.PutUint32(b[8:], uint32(f.htype))
	return string(append(b, f.handle...))
}

// fanEvent is one parsed fanotify event (FID reporting mode).
type fanEvent struct {
	mask uint64
	fd   int32
	pid  int32
	// dir is the parent directory (DFID_NAME or DFID info); name is the
	// entry's name in it ("" with DFID only: an event on dir itself).
	dir  *fanFID
	name string
	// obj is the object itself (FID info: FAN_REPORT_FID/TARGET_FID).
	obj *fanFID
	// For FAN_RENAME events (not requested, parsed for completeness).
	oldDir, newDir   *fanFID
	oldName, newName string
}

var errFanParse = errors.New("malformed fanotify event")

// parseFanEvents decodes the events in buf (what one read of a fanotify
// descriptor returned) and calls fn for each in order. Malformed data
// stops it with an error wrapping errFanParse; it never panics.
func parseFanEvents(buf []byte, fn func(fanEvent)) error {
	for len(buf) > 0 {
		if len(buf) < fanMetadataLen {
			return fmt.Errorf("%w: %d trailing bytes", errFanParse, len(buf))
		}
		evLen := binary.LittleEndian.Uint32(buf[0:])
		vers := buf[4]
		metaLen := binary.LittleEndian.Uint16(buf[6:])
		if vers != fanMetadataVersion {
			return fmt.Errorf("%w: metadata version %d, want %d", errFanParse, vers, fanMetadataVersion)
		}
		if metaLen < fanMetadataLen || uint32(metaLen) > evLen || uint64(evLen) > uint64(len(buf)) {
			return fmt.Errorf("%w: lengths event %d metadata %d buffer %d", errFanParse, evLen, metaLen, len(buf))
		}
		ev := fanEvent{
			mask: binary.LittleEndian.Uint64(buf[8:]),
			fd:   int32(binary.LittleEndian.Uint32(buf[16:])),
			pid:  int32(binary.LittleEndian.Uint32(buf[20:])),
		}
		info := buf[metaLen:evLen]
		for len(info) > 0 {
			if len(info) < 4 {
				return fmt.Errorf("%w: short info header", errFanParse)
			}
			typ := info[0]
			l := int(binary.LittleEndian.Uint16(info[2:]))
			if l < 4 || l > len(info) {
				return fmt.Errorf("%w: info length %d of %d", errFanParse, l, len(info))
			}
			body := info[4:l]
			info = info[l:]
			switch typ {
			case fanInfoFID, fanInfoDFID, fanInfoDFIDName, fanInfoOldDFIDName, fanInfoNewDFIDName:
			default:
				continue // pidfd, error, range...: not used
			}
			fid, rest, err := parseFID(body)
			if err != nil {
				return err
			}
			name := ""
			if typ != fanInfoFID && typ != fanInfoDFID {
				name = cString(rest)
				if name == "" || name == "." {
					// DFID_NAME of an object without a name in its
					// parent (a filesystem root) is reported as ".".
					name = ""
				}
			}
			switch typ {
			case fanInfoFID:
				ev.obj = &fid
			case fanInfoDFID:
				ev.dir = &fid
			case fanInfoDFIDName:
				ev.dir, ev.name = &fid, name
			case fanInfoOldDFIDName:
				ev.oldDir, ev.oldName = &fid, name
			case fanInfoNewDFIDName:
				ev.newDir, ev.newName = &fid, name
			}
		}
		fn(ev)
		buf = buf[evLen:]
	}
	return nil
}

// parseFID decodes __kernel_fsid_t followed by struct file_handle and
// returns what follows the handle.
func parseFID(b []byte) (fanFID, []byte, error) {
	if len(b) < 16 {
		return fanFID{}, nil, fmt.Errorf("%w: short fid", errFanParse)
	}
	fsid := uint64(binary.LittleEndian.Uint32(b[0:]))<<32 | uint64(binary.LittleEndian.Uint32(b[4:]))
	n := binary.LittleEndian.Uint32(b[8:])
	htype := int32(binary.LittleEndian.Uint32(b[12:]))
	if n == 0 || uint64(n) > uint64(len(b)-16) || n > 128 {
		return fanFID{}, nil, fmt.Errorf("%w: handle length %d", errFanParse, n)
	}
	return fanFID{fsid: fsid, htype: htype, handle: b[16 : 16+n]}, b[16+n:], nil
}

// fsidKey makes the key parseFID uses from statfs's f_fsid.
func fsidKey(v0, v1 int32) uint64 { return uint64(uint32(v0))<<32 | uint64(uint32(v1)) }

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// fanOps translates an event mask.
func fanOps(mask uint64) op {
	var o op
	if mask&(fanCreate|fanMovedTo) != 0 {
		o |= opCreate
	}
	if mask&(fanDelete|fanMovedFrom) != 0 {
		o |= opRemove
	}
	if mask&fanAttrib != 0 {
		o |= opMeta
	}
	if mask&(fanModify|fanCloseWrite) != 0 {
		o |= opContent
	}
	return o
}
