package fs

// Xattr is an extended attribute: a name and its value.
type Xattr struct {
	Name  string
	Value []byte
}
