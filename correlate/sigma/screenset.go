package sigma

import (
	"fmt"
	"math/bits"
)

// A ScreenSet screens the detections a dispatcher offers every record of
// a type (those that constrain no event type: userIdentity, userAgent,
// sourceIPAddress tests) together, in one pass over the record's members:
// each member whose key some needle lies under is searched once for all
// of that key's needles, and each detection passes when every group of its
// screen has a needle found. Screened one by one, each detection looked
// its members up and searched their values again (the 57 SigmaHQ rules
// spent a microsecond a record so). With a Memo, a member value met before
// is not searched at all. A set answers exactly as its matchers'
// MayMatchRaw do.
type ScreenSet struct {
	ms   []*Matcher
	keys []setKey // the distinct top-level keys needles lie under
	// byLen[n] is 1 + the index of the first key n bytes long (keys of
	// longKey bytes or more share the last), 0 for none, and keys[k].next
	// 1 + the next one's: a member's key is compared with the keys of its
	// length only. A length is one load; a hash of the key's ends cost an
	// eighth of the screen, for members that are almost never screened.
	byLen [longKey + 1]uint16
	// groups[i] are matcher i's screen groups as masks of needle bits; nil
	// for a matcher screened alone (a needle anywhere in the record, or
	// more needles than bits).
	groups [][]uint64
}

// longKey is the key length from which keys share one chain of byLen.
const longKey = 31

// setKey is a screen key as one set reads it: the bit in the set of each
// of the key's needles.
type setKey struct {
	*screenKey
	bits []uint64
	next uint16
}

// screenKey is one top-level key and needles that lie under it, shared by
// the sets that search the same (ScreenKeys): what a memo remembers of a
// value it remembers per screenKey, as bits in needles' order, so that the
// sets of every event type use what one of them found.
type screenKey struct {
	key     string
	needles []*needle
}

// ScreenKeys interns screen keys across the sets of one rule set. Not safe
// for concurrent use.
type ScreenKeys struct{ m map[string]*screenKey }

// NewScreenKeys returns an empty registry.
func NewScreenKeys() *ScreenKeys { return &ScreenKeys{m: map[string]*screenKey{}} }

func (r *ScreenKeys) intern(key string, needles []*needle) *screenKey {
	sig := key
	for _, n := range needles {
		sig += fmt.Sprintf("\x00%p", n)
	}
	if sk, ok := r.m[sig]; ok {
		return sk
	}
	sk := &screenKey{key: key, needles: needles}
	r.m[sig] = sk
	return sk
}

// NewScreenSet returns the set of ms (each with a screen: HasScreen),
// its keys interned in reg.
func NewScreenSet(ms []*Matcher, reg *ScreenKeys) *ScreenSet {
	s := &ScreenSet{ms: ms, groups: make([][]uint64, len(ms))}
	bitOf := map[*needle]uint64{}
	var keys []string
	under := map[string][]*needle{}
	for mi, m := range ms {
		indexable, fresh := len(m.screen) > 0, map[*needle]bool{}
		for _, g := range m.screen {
			for i := range g {
				if g[i].keys == nil {
					indexable = false
				}
				if _, ok := bitOf[&g[i]]; !ok {
					fresh[&g[i]] = true
				}
			}
		}
		if !indexable || len(bitOf)+len(fresh) > 64 {
			continue
		}
		gs := make([]uint64, len(m.screen))
		for gi, g := range m.screen {
			for i := range g {
				n := &g[i]
				bit, ok := bitOf[n]
				if !ok {
					bit = 1 << len(bitOf)
					bitOf[n] = bit
					for _, k := range n.keys {
						if _, ok := under[k]; !ok {
							keys = append(keys, k)
						}
						under[k] = append(under[k], n)
					}
				}
				gs[gi] |= bit
			}
		}
		s.groups[mi] = gs
	}
	for _, k := range keys {
		sk := reg.intern(k, under[k])
		bits := make([]uint64, len(sk.needles))
		for j, n := range sk.needles {
			bits[j] = bitOf[n]
		}
		s.keys = append(s.keys, setKey{screenKey: sk, bits: bits})
	}
	// Chains of the keys of each length.
	for k := len(s.keys) - 1; k >= 0; k-- {
		l := min(len(s.keys[k].key), longKey)
		s.keys[k].next = s.byLen[l]
		s.byLen[l] = uint16(k + 1)
	}
	return s
}

// Pass sets pass[i] to whether matcher i may match the record: false only
// when it cannot (its MayMatchRaw). pass has one entry per matcher.
func (s *ScreenSet) Pass(r *Raw, pass []bool) {
	var found uint64
	if r.members != nil && len(r.members) <= wholeBit {
		for i := range r.members {
			m := &r.members[i]
			if m.Escaped {
				// An escaped key may name any key.
				for k := range s.keys {
					found |= s.find(r, i, &s.keys[k])
				}
				continue
			}
			for k := s.byLen[min(len(m.Key), longKey)]; k != 0; {
				sk := &s.keys[k-1]
				// The first byte first: most members of a key's length
				// differ there (eventName, eventTime from userAgent), and
				// a comparison of strings is a call.
				if (len(m.Key) == 0 || sk.key[0] == m.Key[0]) && sk.key == string(m.Key) {
					found |= s.find(r, i, sk)
				}
				k = sk.next
			}
		}
	}
	for i, gs := range s.groups {
		if gs == nil || r.members == nil || len(r.members) > wholeBit {
			pass[i] = s.ms[i].MayMatchRaw(r)
			continue
		}
		pass[i] = true
		for _, g := range gs {
			if found&g == 0 {
				pass[i] = false
				break
			}
		}
	}
}

// find returns the set's bits of the needles of k that member i's value
// may hold (all of them when it cannot be screened), from the memo when it
// has the value.
func (s *ScreenSet) find(r *Raw, i int, k *setKey) uint64 {
	local := k.findLocal(r, i)
	var f uint64
	for ; local != 0; local &= local - 1 {
		f |= k.bits[bits.TrailingZeros64(local)]
	}
	return f
}

// findLocal returns the needles of sk found in member i's value, bit j for
// needles[j].
func (sk *screenKey) findLocal(r *Raw, i int) uint64 {
	v := r.members[i].Value
	if r.memo == nil || len(v) < memoMin || len(v) > memoMax {
		return sk.search(r, i, v)
	}
	slot := r.memoSlot(i, v)
	for k, o := range slot.owners {
		if o == sk {
			return slot.found[k]
		}
	}
	f := sk.search(r, i, v)
	k := slot.next
	slot.owners[k], slot.found[k] = sk, f
	slot.next = (k + 1) % memoVerdicts
	return f
}

func (sk *screenKey) search(r *Raw, i int, v []byte) uint64 {
	if !r.screenable(i, v) {
		return 1<<len(sk.needles) - 1
	}
	var f uint64
	for j, n := range sk.needles {
		if n.in(v) {
			f |= 1 << j
		}
	}
	return f
}
