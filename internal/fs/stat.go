package fs

// File type bits of Stat.Mode. They are the traditional Unix S_IF* values,
// which Linux and macOS use as they are; on Windows they are synthesized.
const (
	TypeMask     uint32 = 0o170000
	TypeSocket   uint32 = 0o140000
	TypeSymlink  uint32 = 0o120000
	TypeRegular  uint32 = 0o100000
	TypeBlockDev uint32 = 0o060000
	TypeDir      uint32 = 0o040000
	TypeCharDev  uint32 = 0o020000
	TypeFifo     uint32 = 0o010000
)

// Stat is the subset of lstat results a backup uses.
//
// Mode holds the type bits (TypeMask) and the permission bits (0o7777).
// On Windows the type comes from the attributes and reparse tag, the
// permissions are 0o666 (0o444 when read-only) for files and 0o777 for
// directories and symlinks, and UID, GID and Rdev are 0.
type Stat struct {
	Mode  uint32
	Ino   uint64 // inode number; the file index on Windows
	Dev   uint64 // device; the volume serial number on Windows
	Nlink uint64
	UID   uint32
	GID   uint32
	Size  int64
	MTime int64 // ns since the epoch
	CTime int64 // ns since the epoch: inode change time (Windows: ChangeTime)
	Rdev  uint64
}

// Type returns the type bits of the mode.
func (s Stat) Type() uint32 { return s.Mode & TypeMask }

// IsDir reports whether the entry is a directory.
func (s Stat) IsDir() bool { return s.Mode&TypeMask == TypeDir }

// IsRegular reports whether the entry is a regular file.
func (s Stat) IsRegular() bool { return s.Mode&TypeMask == TypeRegular }

// IsSymlink reports whether the entry is a symlink (or, on Windows, a
// junction).
func (s Stat) IsSymlink() bool { return s.Mode&TypeMask == TypeSymlink }

// mknodOp names the creation of an entry of the type in mode.
func mknodOp(mode uint32) string {
	switch mode & TypeMask {
	case TypeFifo:
		return "create fifo"
	case TypeSocket:
		return "create socket"
	case TypeCharDev:
		return "create chardev"
	case TypeBlockDev:
		return "create blockdev"
	}
	return "mknod"
}
