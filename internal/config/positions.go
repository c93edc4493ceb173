package config

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// positions maps each key of a TOML document (tables, keys, and the
// elements of arrays as "key[i]") to the line it is written on, so that
// validation errors found after decoding can name the line.
type positions map[string]int

// keyPath joins key parts into a positions key.
func keyPath(parts ...string) string { return strings.Join(parts, "\x00") }

// scanPositions reads the lines of every key of data. A document that does
// not parse yields what was read before the error; the decoder reports the
// error itself.
func scanPositions(data []byte) positions {
	pos := positions{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			parts, line := keyParts(&p, e)
			table = parts
			if _, ok := pos[keyPath(parts...)]; !ok && line > 0 {
				pos[keyPath(parts...)] = line
			}
		case unstable.KeyValue:
			recordKeyValue(&p, pos, table, e)
		}
	}
	return pos
}

// keyParts returns the parts of a node's key and the line of its first
// part.
func keyParts(p *unstable.Parser, n *unstable.Node) ([]string, int) {
	var parts []string
	line := 0
	it := n.Key()
	for it.Next() {
		k := it.Node()
		parts = append(parts, string(k.Data))
		if line == 0 {
			line = p.Shape(k.Raw).Start.Line
		}
	}
	return parts, line
}

// recordKeyValue records a key = value line below table, and the keys of
// inline tables and the elements of arrays in its value.
func recordKeyValue(p *unstable.Parser, pos positions, table []string, kv *unstable.Node) {
	parts, line := keyParts(p, kv)
	full := append(append([]string(nil), table...), parts...)
	// Dotted keys define their intermediate tables where they stand.
	for i := len(table) + 1; i <= len(full); i++ {
		if _, ok := pos[keyPath(full[:i]...)]; !ok {
			pos[keyPath(full[:i]...)] = line
		}
	}
	recordValue(p, pos, full, kv.Value())
}

func recordValue(p *unstable.Parser, pos positions, key []string, v *unstable.Node) {
	if v == nil {
		return
	}
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				recordKeyValue(p, pos, key, c)
			}
		}
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			c := it.Node()
			elem := append(append([]string(nil), key[:len(key)-1]...), key[len(key)-1]+"["+strconv.Itoa(i)+"]")
			if line := p.Shape(c.Raw).Start.Line; line > 0 {
				pos[keyPath(elem...)] = line
			}
			recordValue(p, pos, elem, c)
		}
	}
}

// line returns the line of key, else of its nearest ancestor that has one
// (a missing key is reported at its table), else 0.
func (p positions) line(key ...string) int {
	for n := len(key); n > 0; n-- {
		if l, ok := p[keyPath(key[:n]...)]; ok {
			return l
		}
	}
	return 0
}
