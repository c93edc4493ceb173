package fs

// Xattrs returns no extended attributes on Windows: NTFS extended
// attributes and alternate data streams are not read yet (a later issue),
// so a backup records none rather than failing every entry.
func (d *Dir) Xattrs(name string) ([]Xattr, error) { return nil, nil }

// Lsetxattr fails with ErrNotSupported on Windows.
func (d *Dir) Lsetxattr(name string, x Xattr) error {
	return notSupported("set xattr "+x.Name, joinPath(d.path, name))
}

// SetXattr fails with ErrNotSupported on Windows.
func (d *Dir) SetXattr(x Xattr) error { return notSupported("set xattr "+x.Name, d.path) }

// SetXattr fails with ErrNotSupported on Windows.
func (f *File) SetXattr(x Xattr) error { return notSupported("set xattr "+x.Name, f.path) }
