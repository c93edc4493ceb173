package scan

import (
	"reflect"
	"testing"
)

var seedStatRecords = [][]StatRecord{
	nil,
	{{Name: "a", Ino: 1, Dev: 2, CTime: 3}},
	{
		{Name: "", Ino: 0, Dev: 0, CTime: 0},
		{Name: "file.txt", Ino: 1 << 40, Dev: 0xfd01, CTime: 1700000000123456789},
		{Name: "zzz\x00ü", Ino: 1<<64 - 1, Dev: 1<<64 - 1, CTime: -1 << 63},
	},
}

func FuzzDecodeStatRecords(f *testing.F) {
	for _, recs := range seedStatRecords {
		f.Add(EncodeStatRecords(recs))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := DecodeStatRecords(data)
		if err != nil {
			if err != errBadRecords {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		again, err := DecodeStatRecords(EncodeStatRecords(recs))
		if err != nil {
			t.Fatalf("re-encoded records do not decode: %v", err)
		}
		if !reflect.DeepEqual(recs, again) {
			t.Fatalf("round trip changed the records:\n%+v\n%+v", recs, again)
		}
	})
}
