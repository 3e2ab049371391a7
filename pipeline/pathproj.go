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
	// keys and nodes list children in a slice too: comparing a few keys
	// beats hashing each member's name.
	keys  []string
	nodes []*projNode
}

// child returns the child for key, or nil.
func (n *projNode) child(key string) *projNode {
	if n.keys == nil {
		return n.children[key]
	}
	for i, k := range n.keys {
		if k == key {
			return n.nodes[i]
		}
	}
	return nil
}

// seal fills keys and nodes where there are few children, below n too.
func (n *projNode) seal() {
	if len(n.children) <= 8 {
		n.keys, n.nodes = make([]string, 0, len(n.children)), make([]*projNode, 0, len(n.children))
		for k, c := range n.children {
			n.keys = append(n.keys, k)
			n.nodes = append(n.nodes, c)
		}
	}
	for _, c := range n.children {
		c.seal()
	}
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
	root.seal()
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
			key, c = k, pp.root.child(k)
		} else if c = pp.root.child(string(mb.Key)); c != nil {
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
	// ScanObject's walk, inlined: this runs for every member of every
	// record a Sigma rule without event types is offered.
	var m map[string]any
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	i++
	for first := true; ; first = false {
		i = skipWS(data, i)
		if i >= len(data) {
			return nil, false
		}
		if data[i] == '}' && first {
			break
		}
		if data[i] != '"' {
			return nil, false
		}
		kEnd, escaped := scanString(data, i)
		if kEnd < 0 {
			return nil, false
		}
		rawKey := data[i+1 : kEnd-1]
		i = skipWS(data, kEnd)
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		i = skipWS(data, i+1)
		vEnd := skipValue(data, i)
		if vEnd < 0 {
			return nil, false
		}
		var c *projNode
		key := ""
		if escaped {
			k, ok := unquoteKey(rawKey)
			if !ok {
				return nil, false
			}
			key, c = k, n.child(k)
		} else if c = n.child(string(rawKey)); c != nil {
			key = p.str(rawKey)
		}
		if c != nil {
			v, ok := p.value(data[i:vEnd], c)
			if !ok {
				return nil, false
			}
			if m == nil {
				m = p.newMap()
			}
			m[key] = v
		}
		i = skipWS(data, vEnd)
		if i < len(data) && data[i] == ',' {
			i++
			continue
		}
		if i < len(data) && data[i] == '}' {
			break
		}
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
	if err := UnmarshalRecord(val, &v); err != nil {
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
