package scan

import (
	"encoding/binary"
	"errors"
	"sort"
)

// StatRecord is what the local stat cache remembers of one entry: the
// values that reveal a change but do not belong in the content-addressed
// tree.
type StatRecord struct {
	Name  string
	Ino   uint64
	Dev   uint64
	CTime int64 // 0 means "do not trust": read the file next time
}

// EncodeStatRecords serializes records sorted by name.
func EncodeStatRecords(recs []StatRecord) []byte {
	buf := binary.AppendUvarint(nil, uint64(len(recs)))
	for _, r := range recs {
		buf = binary.AppendUvarint(buf, uint64(len(r.Name)))
		buf = append(buf, r.Name...)
		buf = binary.AppendUvarint(buf, r.Ino)
		buf = binary.AppendUvarint(buf, r.Dev)
		buf = binary.AppendVarint(buf, r.CTime)
	}
	return buf
}

var errBadRecords = errors.New("invalid stat records")

// DecodeStatRecords parses EncodeStatRecords output.
func DecodeStatRecords(b []byte) ([]StatRecord, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errBadRecords
	}
	b = b[k:]
	out := make([]StatRecord, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, errBadRecords
		}
		r := StatRecord{Name: string(b[k : k+int(l)])}
		b = b[k+int(l):]
		if r.Ino, k = binary.Uvarint(b); k <= 0 {
			return nil, errBadRecords
		}
		b = b[k:]
		if r.Dev, k = binary.Uvarint(b); k <= 0 {
			return nil, errBadRecords
		}
		b = b[k:]
		if r.CTime, k = binary.Varint(b); k <= 0 {
			return nil, errBadRecords
		}
		b = b[k:]
		out = append(out, r)
	}
	if len(b) != 0 {
		return nil, errBadRecords
	}
	return out, nil
}

// FindStatRecord looks a name up in records sorted by name.
func FindStatRecord(recs []StatRecord, name string) *StatRecord {
	i := sort.Search(len(recs), func(i int) bool { return recs[i].Name >= name })
	if i < len(recs) && recs[i].Name == name {
		return &recs[i]
	}
	return nil
}
