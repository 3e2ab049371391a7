package sigma

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"slices"
	"sort"
	"strings"

	"github.com/ecscorr/ecscorr/pipeline"
)

// A screen is a necessary condition of a detection on the record's raw JSON
// bytes: literals every match must contain, a conjunction of groups of
// alternatives. A literal a field's test requires lies in the raw value of
// the top-level member the field starts at (a keyword's anywhere), so a
// record whose members hold none of some group's literals (compared ASCII
// case-insensitively) cannot match, and a dispatcher drops it without
// decoding a single field.
//
// A search is exact only on bytes that are ASCII and hold no \u escape
// (screenable): then every decoded string is its raw bytes with the escapes
// \" \\ \/ \b \f \n \r \t, none of which can make a needle character, and
// no non-ASCII rune can lower (unicode.ToLower, as Lower does) to an ASCII
// one (U+212A to k, U+0130 to i). Bytes that are not screenable pass.
//
// An alternative is a string: the top-level keys it may lie under, joined
// by keySep, then altSep, then the lower-case literal; no keys means the
// whole record. Strings sort, compact and compare as the sets need.
type screen [][]string

const (
	altSep = "\x00"
	keySep = "\x01"
)

func alt(keys []string, lit string) string { return strings.Join(keys, keySep) + altSep + lit }

func splitAlt(a string) (keys []string, lit string) {
	k, lit, _ := strings.Cut(a, altSep)
	if k != "" {
		keys = strings.Split(k, keySep)
	}
	return keys, lit
}

// maxAlternatives bounds a group: past it, scanning for every alternative
// costs more than decoding.
const maxAlternatives = 8

// minNeedle is the shortest literal worth searching for.
const minNeedle = 3

// needleOf is the literal a string value's pattern guarantees in any
// string it matches, lower-cased, or "" when none is usable. It is the
// longest piece of a literal run that is ASCII without a character JSON
// may escape ('"', '\\', '/', controls), at least minNeedle long and not
// made only of characters a number's text has (a number field compares by
// its reformatted text, which the raw bytes need not hold). When the
// piece starts the value and the value must start there (quoteStart),
// the JSON string's opening quote is part of it, and likewise its closing
// quote (quoteEnd): `"root"` rejects the records where root is only part
// of an ARN. A value true or false is never quoted, as a boolean field
// matches it with a bare literal.
func needleOf(p pattern, quoteStart, quoteEnd bool) string {
	best, bestLen := "", 0
	for si, s := range p {
		if s.kind != 'l' {
			continue
		}
		for i := 0; i < len(s.lit); {
			if unsafeInJSON(rune(s.lit[i])) {
				i++
				continue
			}
			j := i
			for j < len(s.lit) && !unsafeInJSON(rune(s.lit[j])) {
				j++
			}
			piece := s.lit[i:j]
			if len(piece) >= minNeedle && !numeric(piece) {
				n := strings.ToLower(piece)
				if quoteStart && si == 0 && i == 0 {
					n = `"` + n
				}
				if quoteEnd && si == len(p)-1 && j == len(s.lit) {
					n += `"`
				}
				if len(n) > bestLen {
					best, bestLen = n, len(n)
				}
			}
			i = j
		}
	}
	return best
}

func unsafeInJSON(r rune) bool { return r < 0x20 || r >= 0x80 || r == '"' || r == '\\' || r == '/' }

func numeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789+-.eE", rune(s[i])) {
			return false
		}
	}
	return true
}

// andS: both hold, so both sets of groups do.
func andS(a, b screen) screen {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return append(slices.Clip(a), b...)
}

// orS: one holds, so a record holds a literal of the best group of one
// side or the other: the union of the two best groups is necessary.
func orS(a, b screen) screen {
	if a == nil || b == nil {
		return nil
	}
	g := union(best(a), best(b))
	if len(g) > maxAlternatives {
		return nil
	}
	return screen{g}
}

// best is the most selective group: fewest alternatives, then longest
// shortest literal.
func best(s screen) []string {
	var b []string
	shortest := func(g []string) int {
		n := 1 << 30
		for _, x := range g {
			_, lit := splitAlt(x)
			n = min(n, len(lit))
		}
		return n
	}
	for _, g := range s {
		if b == nil || len(g) < len(b) || len(g) == len(b) && shortest(g) > shortest(b) {
			b = g
		}
	}
	return b
}

func union(a, b []string) []string {
	u := append(slices.Clone(a), b...)
	sort.Strings(u)
	return slices.Compact(u)
}

// compileScreen turns the groups into searchers, each group's literals
// subsumed: "abc" is found wherever "xabcx" is (in the same place or a
// wider one), so only "abc" is searched.
func compileScreen(s screen) [][]needle {
	var out [][]needle
	for _, g := range s {
		var ns []needle
		for _, a := range g {
			keys, lit := splitAlt(a)
			redundant := false
			for _, b := range g {
				okeys, other := splitAlt(b)
				if b != a && strings.Contains(lit, other) && (okeys == nil || slices.Equal(okeys, keys)) {
					redundant = true
					break
				}
			}
			if !redundant {
				n := newNeedle(lit)
				n.keys = keys
				n.keyHashes = 1 << escapedHash
				for _, k := range keys {
					n.keyHashes |= 1 << keyHash(k)
				}
				ns = append(ns, n)
			}
		}
		out = append(out, ns)
	}
	// The most selective groups first: the first group a record fails
	// ends the search.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) < len(out[j]) })
	return out
}

// rarity ranks lower-cased bytes by how often they occur in CloudTrail
// records (measured on the Invictus corpus), rarest first; a byte not
// listed is rarer still.
const rarity = "@=_+jxkzq56 yg4h9wbf8vl7p.03um12d-oci:nrstae\""

// needle searches for one lower-case ASCII literal case-insensitively,
// anchored on its rarest byte.
type needle struct {
	keys      []string // the top-level members it lies in; nil: anywhere
	keyHashes uint64   // bit keyHash(k) for each of keys, and escapedHash
	lit       string
	at        int  // index of the anchor byte in lit
	lo, up    byte // the anchor's two cases (equal when not a letter)
	hasUpper  bool
}

func newNeedle(lit string) needle {
	at, rank := 0, len(rarity)+1
	for i := 0; i < len(lit); i++ {
		r := strings.IndexByte(rarity, lit[i])
		if r < rank {
			at, rank = i, r
		}
	}
	lo := lit[at]
	up := lo
	if 'a' <= lo && lo <= 'z' {
		up = lo - 'a' + 'A'
	}
	return needle{lit: lit, at: at, lo: lo, up: up, hasUpper: up != lo}
}

// in reports whether b holds the literal, ASCII case-insensitively.
func (n *needle) in(b []byte) bool {
	last := len(b) - len(n.lit) + n.at // the last place the anchor can be
	nextLo, nextUp := -2, -2           // -2: not searched yet; -1: none left
	from := n.at
	for from <= last {
		if nextLo != -1 && nextLo < from {
			nextLo = indexFrom(b, n.lo, from)
		}
		if n.hasUpper && nextUp != -1 && nextUp < from {
			nextUp = indexFrom(b, n.up, from)
		}
		c := nextLo
		if n.hasUpper && (c == -1 || nextUp != -1 && nextUp < c) {
			c = nextUp
		}
		if c == -1 || c > last {
			return false
		}
		if start := c - n.at; equalFoldASCII(b[start:start+len(n.lit)], n.lit) {
			return true
		}
		from = c + 1
	}
	return false
}

func indexFrom(b []byte, c byte, from int) int {
	i := bytes.IndexByte(b[from:], c)
	if i < 0 {
		return -1
	}
	return from + i
}

// equalFoldASCII compares b with the lower-case ASCII lit.
func equalFoldASCII(b []byte, lit string) bool {
	for i := 0; i < len(lit); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lit[i] {
			return false
		}
	}
	return true
}

// screenable reports whether b is ASCII and holds no \u escape, the bytes a
// search is exact on.
func screenable(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
			return false
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= 0x80 {
			return false
		}
	}
	return !bytes.Contains(b, []byte(`\u`))
}

// Raw is a record's JSON as screens read it: its bytes, its top-level
// members when the reader indexed them, and what is known of which are
// screenable, shared by the screens of every rule that reads the record.
type Raw struct {
	data    []byte
	members []pipeline.Member
	known   uint64 // bit i: members[i] (bit 63: the whole record) checked
	ok      uint64 // bit i: ... and screenable
	// buckets[h] has bit i set when keyHash of members[i]'s key is h
	// (escaped: escapedHash), and present bit h when some member hashes
	// to h, once hashed: a needle visits only the members in its keys'
	// buckets instead of testing every member.
	buckets [64]uint64
	present uint64
	hashed  bool
	// memo, when set, remembers findings on long member values across
	// records (ScreenSet); slot[i] is members[i]'s slot once looked up
	// (bit i of slotted).
	memo    *Memo
	slot    [wholeBit]*memoSlot
	slotted uint64
}

// Memo remembers what a ScreenSet found in the long member values it has
// met, so that a value met again is looked up rather than searched. A
// record's userIdentity and userAgent are the same in every call a
// principal's session makes (hundreds of records an hour from one ECS task
// role), and searching several literals in 500 bytes costs far more than
// hashing them. Direct-mapped and bounded: a slot holds one value and the
// findings of up to memoVerdicts screen keys on it; a colliding value
// replaces it. A finding is a pure function of the needles and the value's
// bytes (compared in full, never trusted to the hash), so a memo changes
// no answer. Not safe for concurrent use: one per reader.
type Memo struct {
	seed  maphash.Seed
	slots []memoSlot
	// recent are the slots last looked up, most recent first: a record's
	// userIdentity and userAgent are most often its predecessor's (three
	// records in four in the Invictus corpus), and comparing costs a
	// third of hashing.
	recent [2]*memoSlot
}

type memoSlot struct {
	value  []byte
	owners [memoVerdicts]*screenKey
	found  [memoVerdicts]uint64 // the needle bits owners[k] found
	next   uint8                // the entry to overwrite when all are taken
}

const (
	memoVerdicts = 4
	memoSlots    = 4096
	// Values shorter than memoMin are searched (hashing them costs about
	// as much); longer than memoMax are searched too, so that a memo
	// holds at most memoSlots × memoMax bytes.
	memoMin = 64
	memoMax = 2048
)

// NewMemo returns an empty memo.
func NewMemo() *Memo {
	return &Memo{seed: maphash.MakeSeed(), slots: make([]memoSlot, memoSlots)}
}

// UseMemo makes r remember findings in m (nil: none).
func (r *Raw) UseMemo(m *Memo) { r.memo = m }

// memoSlot returns the slot of member i's value, claiming it (and
// forgetting what it held) when it holds another value.
func (r *Raw) memoSlot(i int, v []byte) *memoSlot {
	if r.slotted&(1<<i) != 0 {
		return r.slot[i]
	}
	m := r.memo
	var s *memoSlot
	for _, c := range m.recent {
		if c != nil && bytes.Equal(c.value, v) {
			s = c
			break
		}
	}
	if s == nil {
		s = &m.slots[maphash.Bytes(m.seed, v)%uint64(len(m.slots))]
		if !bytes.Equal(s.value, v) {
			s.value = append(s.value[:0], v...)
			s.owners, s.found, s.next = [memoVerdicts]*screenKey{}, [memoVerdicts]uint64{}, 0
		}
	}
	if m.recent[0] != s {
		m.recent[1], m.recent[0] = m.recent[0], s
	}
	r.slot[i], r.slotted = s, r.slotted|1<<i
	return s
}

// keyHash buckets keys for a quick reject (bucket escapedHash is kept for
// the members whose key is escaped, which every needle reads).
func keyHash[S ~string | ~[]byte](k S) uint8 {
	if len(k) == 0 {
		return 0
	}
	return uint8((len(k)*7+int(k[0])*3+int(k[len(k)-1]))%63) + 1
}

const escapedHash = 0

// Reset makes r read rec.
func (r *Raw) Reset(rec pipeline.RawRecord) {
	// Field by field: buckets is rebuilt when hashed, not cleared here.
	r.data, r.members = rec.Data, rec.Members
	r.known, r.ok, r.present, r.hashed, r.slotted = 0, 0, 0, false, 0
}

// wholeBit is the bit of the whole record in known and ok; members past
// it are checked each time.
const wholeBit = 63

// screenable reports whether member i's value b (i < 0: the whole record)
// is screenable, checking it once per record.
func (r *Raw) screenable(i int, b []byte) bool {
	if i < 0 {
		i = wholeBit
	} else if i >= wholeBit {
		return screenable(b)
	}
	bit := uint64(1) << i
	if r.known&bit == 0 {
		r.known |= bit
		if screenable(b) {
			r.ok |= bit
		}
	}
	return r.ok&bit != 0
}

// holds reports whether the record may hold n's literal where n says: in
// the value of a member it names (or one whose key is escaped, which may
// name it), or anywhere.
func (r *Raw) holds(n *needle) bool {
	if n.keys == nil || r.members == nil {
		return !r.screenable(-1, r.data) || n.in(r.data)
	}
	if !r.hashed && len(r.members) <= wholeBit {
		for h := range r.buckets {
			r.buckets[h] = 0
		}
		for i := range r.members {
			h := uint8(escapedHash)
			if !r.members[i].Escaped {
				h = keyHash(r.members[i].Key)
			}
			r.buckets[h] |= 1 << i
			r.present |= 1 << h
		}
		r.hashed = true
	}
	if !r.hashed {
		for i := range r.members {
			if r.holdsAt(n, i) {
				return true
			}
		}
		return false
	}
	var at uint64 // the members whose key hashes as one of n's keys
	for hs := n.keyHashes & r.present; hs != 0; hs &= hs - 1 {
		at |= r.buckets[bits.TrailingZeros64(hs)]
	}
	for ; at != 0; at &= at - 1 {
		if r.holdsAt(n, bits.TrailingZeros64(at)) {
			return true
		}
	}
	return false
}

// holdsAt reports whether member i may hold n's literal: its key is one of
// n's (or escaped) and its value holds the literal or cannot be screened.
func (r *Raw) holdsAt(n *needle, i int) bool {
	m := &r.members[i]
	if !m.Escaped && !slices.Contains(n.keys, string(m.Key)) {
		return false
	}
	return !r.screenable(i, m.Value) || n.in(m.Value)
}

// HasScreen reports whether the detection has a screen: literals every
// match holds, so that MayMatchRaw can reject records on their bytes.
func (m *Matcher) HasScreen() bool { return len(m.screen) > 0 }

// MayMatchRaw reports whether the record may match: false only when it
// cannot. A matcher without a screen always answers true.
func (m *Matcher) MayMatchRaw(r *Raw) bool {
	for gi := range m.screen {
		g := m.screen[gi]
		found := false
		for i := range g {
			if r.holds(&g[i]) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Screen returns the groups of the detection's screen (every group must
// have one of its literals in a matching record), each literal written
// lit@key,key (where it lies) or lit (anywhere), for tests and lint.
func (m *Matcher) Screen() [][]string {
	var out [][]string
	for _, g := range m.screen {
		var lits []string
		for _, n := range g {
			if n.keys == nil {
				lits = append(lits, n.lit)
			} else {
				lits = append(lits, n.lit+"@"+strings.Join(n.keys, ","))
			}
		}
		out = append(out, lits)
	}
	return out
}

// itemScreen is what one item requires of the raw bytes: a literal of one
// of its values (each of them, with |all). Plain string comparisons, the
// contains/startswith/endswith wildcards and regular expressions (the
// literal their top level requires) qualify; encodings, numbers, null,
// exists and fieldref require nothing.
func itemScreen(it *Item) screen {
	all, re, flags, anchor := false, false, "", ""
	for i, mod := range it.Modifiers {
		switch {
		case mod == "contains" || mod == "startswith" || mod == "endswith":
			anchor = mod
		case mod == "cased":
		case mod == "all":
			all = true
		case mod == "re" && i == 0:
			re = true
		case re && (mod == "i" || mod == "m" || mod == "s"):
			flags += mod
		default:
			return nil
		}
	}
	var keys []string // a keyword lies anywhere
	if it.Field != "" {
		keys = slices.Sorted(slices.Values(newPath(it.Field).keys[0]))
	}
	var s screen
	var alts []string
	for _, v := range it.Values {
		if v.Kind != KindString {
			return nil
		}
		p := parsePattern(v.Text)
		// A plain value is the whole string, startswith its start,
		// endswith its end (a keyword is found inside a value).
		quoteStart := it.Field != "" && !re && (anchor == "" || anchor == "startswith")
		quoteEnd := it.Field != "" && !re && (anchor == "" || anchor == "endswith")
		if l := strings.ToLower(v.Text); l == "true" || l == "false" {
			quoteStart, quoteEnd = false, false
		}
		if re {
			// The literal every match of the expression holds; a
			// case-folded one is found as well, the search folding too.
			x, err := compileRegexp(v.Text, flags)
			if err != nil {
				return nil
			}
			lit, _ := requiredLiteral(x)
			p = pattern{{kind: 'l', lit: lit}}
		}
		lit := needleOf(p, quoteStart, quoteEnd)
		switch {
		case all && lit != "":
			s = append(s, []string{alt(keys, lit)})
		case !all && lit == "":
			return nil // this value needs no literal: neither does the item
		case !all:
			alts = append(alts, alt(keys, lit))
		}
	}
	if all {
		return s
	}
	if len(alts) == 0 {
		return nil
	}
	alts = union(alts, nil)
	if len(alts) > maxAlternatives {
		return nil
	}
	return screen{alts}
}
