package pipeline

import (
	"unsafe"

	json "github.com/goccy/go-json"
)

// PathProjection decodes only the parts of a JSON object that given key
// paths reach: the value at the end of a path whole, the objects on the
// way only for the keys some path names (through arrays: each element is
// projected alike). Reading a 1.5 KB CloudTrail record for a matcher that
// tests userIdentity.type then costs one scan and two small maps instead
// of decoding userIdentity's every member.
type PathProjection struct {
	root *projNode
}

type projNode struct {
	whole    bool // the value is read whole
	children map[string]*projNode
}

// NewPathProjection returns the projection onto paths (each a sequence of
// object keys from the top level down).
func NewPathProjection(paths [][]string) *PathProjection {
	root := &projNode{}
	for _, p := range paths {
		n := root
		for _, k := range p {
			if n.whole {
				break
			}
			c := n.children[k]
			if c == nil {
				if n.children == nil {
					n.children = map[string]*projNode{}
				}
				c = &projNode{}
				n.children[k] = c
			}
			n = c
		}
		if n != root {
			n.whole, n.children = true, nil
		}
	}
	return &PathProjection{root: root}
}

// Project decodes the projection of the object in data. It reports false
// if data is not a well-formed object, in which case the caller falls
// back to a full decode.
func (pp *PathProjection) Project(data []byte) (map[string]any, bool) {
	return (&projector{}).node(data, pp.root)
}

// ProjScratch holds what ProjectBorrowed reuses between calls; one per
// goroutine.
type ProjScratch struct {
	maps []map[string]any
	n    int
}

// ProjectBorrowed is Project without the copies: the maps come from sc and
// the strings point into data, so the result is valid only until the next
// call with sc and while data is unchanged. A filter that decides on the
// record and forgets it (MayMatch) pays no allocation for them.
func (pp *PathProjection) ProjectBorrowed(data []byte, sc *ProjScratch) (map[string]any, bool) {
	for i := range sc.n {
		clear(sc.maps[i])
	}
	sc.n = 0
	return (&projector{sc: sc}).node(data, pp.root)
}

// ProjectMembers is ProjectBorrowed over an object already indexed
// (IndexObject): the top level is not scanned again.
func (pp *PathProjection) ProjectMembers(members []Member, sc *ProjScratch) (map[string]any, bool) {
	for i := range sc.n {
		clear(sc.maps[i])
	}
	sc.n = 0
	p := &projector{sc: sc}
	m := p.newMap()
	for _, mb := range members {
		key := ""
		var c *projNode
		if mb.Escaped {
			k, ok := unquoteKey(mb.Key)
			if !ok {
				return nil, false
			}
			key, c = k, pp.root.children[k]
		} else if c = pp.root.children[string(mb.Key)]; c != nil {
			key = p.str(mb.Key)
		}
		if c == nil {
			continue
		}
		v, ok := p.value(mb.Value, c)
		if !ok {
			return nil, false
		}
		m[key] = v
	}
	return m, true
}

type projector struct {
	sc *ProjScratch // nil: allocate and copy
}

func (p *projector) newMap() map[string]any {
	sc := p.sc
	if sc == nil {
		return make(map[string]any, 4)
	}
	if sc.n == len(sc.maps) {
		sc.maps = append(sc.maps, make(map[string]any, 8))
	}
	m := sc.maps[sc.n]
	sc.n++
	return m
}

func (p *projector) str(b []byte) string {
	if p.sc == nil {
		return string(b)
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (p *projector) node(data []byte, n *projNode) (map[string]any, bool) {
	var m map[string]any
	failed := false
	ok := ScanObject(data, func(rawKey []byte, escaped bool, val []byte) bool {
		var c *projNode
		if escaped {
			k, ok := unquoteKey(rawKey)
			if !ok {
				failed = true
				return false
			}
			c = n.children[k]
		} else {
			c = n.children[string(rawKey)] // no allocation for the lookup
		}
		if c == nil {
			return true
		}
		v, ok := p.value(val, c)
		if !ok {
			failed = true
			return false
		}
		if m == nil {
			m = p.newMap()
		}
		if escaped {
			k, _ := unquoteKey(rawKey)
			m[k] = v
		} else {
			m[p.str(rawKey)] = v
		}
		return true
	})
	if !ok || failed {
		return nil, false
	}
	if m == nil {
		m = p.newMap()
	}
	return m, true
}

// unquoteKey decodes a key with escape sequences.
func unquoteKey(raw []byte) (string, bool) {
	var k string
	if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &k); err != nil {
		return "", false
	}
	return k, true
}

func (p *projector) value(val []byte, n *projNode) (any, bool) {
	if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
		if inner := val[1 : len(val)-1]; plainString(inner) {
			return p.str(inner), true
		}
	} else if v, ok := scalar(val); ok {
		return v, true
	}
	if !n.whole && len(val) > 0 {
		switch val[0] {
		case '{':
			return p.node(val, n)
		case '[':
			var elems []json.RawMessage
			if err := json.Unmarshal(val, &elems); err != nil {
				return nil, false
			}
			out := make([]any, len(elems))
			for i, e := range elems {
				v, ok := p.value(e, n)
				if !ok {
					return nil, false
				}
				out[i] = v
			}
			return out, true
		}
	}
	var v any
	if err := json.Unmarshal(val, &v); err != nil {
		return nil, false
	}
	return v, true
}

// plainString reports whether a JSON string's contents hold no escape
// sequence or control character, so that they are the string itself.
func plainString(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c < 0x20 {
			return false
		}
	}
	return true
}
