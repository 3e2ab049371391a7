package pipeline

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
)

// seenSet remembers the events the Runner has applied, by source and ID,
// for the correlator's horizon behind the watermark. A second delivery of
// an applied event (SQS and Kafka are at least once; a rerun over kept
// state reads the same archive again) is recognised and skipped, and a
// second event with the same ID but other content is reported as a
// conflict. It commits with the engine state, so "applied" survives a
// crash exactly as the state does.
//
// Entries hold no pointers (a 128-bit digest of source and id, the time,
// a content digest and the position with its file interned), so that a
// set of millions costs the garbage collector nothing to scan.
type seenSet struct {
	m     map[seenID]seenRec
	order []seenID // keys in application order (≈ event time), for pruning
	head  int
	files []string          // interned file names of positions
	fidx  map[string]uint32 // file name → index in files
	// persist is set when a store keeps the set: then the changes since
	// the last checkpoint are tracked.
	persist bool
	added   []seenID
	gone    []seenID
	// max bounds the set (0: unbounded); past it the oldest are forgotten
	// before the horizon, counted in evicted.
	max     int
	evicted uint64
	d       xxhash.Digest // reused: digests must not allocate per event
}

// seenID is two independent 64-bit digests of source and id: a false
// match needs both to collide (about 1 in 2^128 per pair).
type seenID [2]uint64

type seenRec struct {
	sec    int64 // event time, lossless for any year
	nsec   int32
	file   uint32
	line   int32
	record int32
	hash   uint64 // content digest
}

func newSeenSet(persist bool) *seenSet {
	return &seenSet{m: make(map[seenID]seenRec), fidx: make(map[string]uint32), persist: persist}
}

var zero = []byte{0}

func (s *seenSet) idOf(ev *Event) seenID {
	if ev.seenKeyed {
		return ev.seenKey
	}
	return seenIDOf(&s.d, ev)
}

// seenIDOf is ev's key in the applied-event set, digested with d.
func seenIDOf(d *xxhash.Digest, ev *Event) seenID {
	var k seenID
	for i := range k {
		d.ResetWithSeed(uint64(i) + 0x9e3779b97f4a7c15)
		d.WriteString(string(ev.Source))
		d.Write(zero)
		d.WriteString(ev.ID)
		if ev.Family != "" {
			// A scale-out ingest publishes an event once per key family:
			// each copy is applied once.
			d.Write(zero)
			d.WriteString(ev.Family)
		}
		k[i] = d.Sum64()
	}
	return k
}

// contentHash identifies what an event says, to tell a redelivery from a
// conflicting event that reuses an ID; worked out ahead when the event was
// hashed (hashContent).
func (s *seenSet) contentHash(ev *Event) uint64 {
	if ev.hashed {
		return ev.contentHash
	}
	return contentHash(&s.d, ev, ev.Raw)
}

// hashContent works out ev's content digest ahead, with d.
func hashContent(d *xxhash.Digest, ev *Event) {
	ev.contentHash, ev.hashed = contentHash(d, ev, ev.Raw), true
}

// contentHash digests ev's type and time and raw, its record.
func contentHash(d *xxhash.Digest, ev *Event, raw []byte) uint64 {
	d.Reset()
	d.WriteString(ev.Type)
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(ev.Time.Unix()))
	binary.BigEndian.PutUint32(b[8:], uint32(ev.Time.Nanosecond()))
	d.Write(b[:])
	d.Write(raw)
	return d.Sum64()
}

func (s *seenSet) pos(r *seenRec) Position {
	p := Position{Line: int(r.line), Record: int(r.record)}
	if int(r.file) < len(s.files) {
		p.File = s.files[r.file]
	}
	return p
}

func (s *seenSet) intern(file string) uint32 {
	if i, ok := s.fidx[file]; ok {
		return i
	}
	i := uint32(len(s.files))
	s.files = append(s.files, file)
	s.fidx[file] = i
	return i
}

// check reports whether ev was applied before; when it was, first is the
// position of the applied copy and conflict says whether the content
// differs. Otherwise it records ev as applied.
func (s *seenSet) check(ev *Event) (first *Position, conflict bool) {
	if ev.ID == "" {
		return nil, false
	}
	k := s.idOf(ev)
	if r, ok := s.m[k]; ok {
		p := s.pos(&r)
		return &p, r.hash != s.contentHash(ev)
	}
	s.m[k] = seenRec{sec: ev.Time.Unix(), nsec: int32(ev.Time.Nanosecond()), hash: s.contentHash(ev),
		file: s.intern(ev.Pos.File), line: int32(ev.Pos.Line), record: int32(ev.Pos.Record)}
	s.order = append(s.order, k)
	if s.persist {
		s.added = append(s.added, k)
	}
	for s.max > 0 && len(s.m) > s.max && s.head < len(s.order) {
		old := s.order[s.head]
		s.head++
		if _, ok := s.m[old]; ok {
			delete(s.m, old)
			s.evicted++
			if s.persist {
				s.gone = append(s.gone, old)
			}
		}
	}
	return nil, false
}

// prune forgets events older than cut.
func (s *seenSet) prune(cut time.Time) {
	cs, cn := cut.Unix(), int32(cut.Nanosecond())
	for s.head < len(s.order) {
		k := s.order[s.head]
		r, ok := s.m[k]
		if ok && (r.sec > cs || (r.sec == cs && r.nsec >= cn)) {
			break
		}
		if ok {
			delete(s.m, k)
			if s.persist {
				s.gone = append(s.gone, k)
			}
		}
		s.head++
	}
	if s.head > 4096 && s.head*2 > len(s.order) {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
}

func (k seenID) storeKey() []byte {
	b := make([]byte, 0, 17)
	b = append(b, FamilySeen)
	b = binary.BigEndian.AppendUint64(b, k[0])
	return binary.BigEndian.AppendUint64(b, k[1])
}

// checkpoint writes what changed since the last call.
func (s *seenSet) checkpoint(w StateWriter) {
	for _, k := range s.gone {
		w.Delete(k.storeKey())
	}
	s.gone = s.gone[:0]
	for _, k := range s.added {
		r, ok := s.m[k]
		if !ok {
			continue // pruned before it was ever written; its deletion is harmless
		}
		w.Set(k.storeKey(), s.encode(&r), 0)
	}
	s.added = s.added[:0]
}

// load restores the set from the store.
func (s *seenSet) load(st StateStore) error {
	type kr struct {
		k seenID
		r seenRec
	}
	var all []kr
	err := st.Iterate([]byte{FamilySeen}, func(k, v []byte) error {
		if len(k) != 17 {
			return errSeen
		}
		r, err := s.decode(v)
		if err != nil {
			return err
		}
		all = append(all, kr{seenID{binary.BigEndian.Uint64(k[1:]), binary.BigEndian.Uint64(k[9:])}, r})
		return nil
	})
	if err != nil {
		return err
	}
	// Pruning walks the set in time order.
	slices.SortStableFunc(all, func(a, b kr) int {
		if a.r.sec != b.r.sec {
			return compare(a.r.sec, b.r.sec)
		}
		return compare(a.r.nsec, b.r.nsec)
	})
	for _, e := range all {
		s.m[e.k] = e.r
		s.order = append(s.order, e.k)
	}
	return nil
}

func compare[T int64 | int32](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *seenSet) encode(r *seenRec) []byte {
	file := s.files[r.file]
	b := make([]byte, 0, 40+len(file))
	b = binary.AppendVarint(b, r.sec)
	b = binary.AppendUvarint(b, uint64(r.nsec))
	b = binary.BigEndian.AppendUint64(b, r.hash)
	b = binary.AppendUvarint(b, uint64(r.line))
	b = binary.AppendUvarint(b, uint64(r.record))
	return append(b, file...)
}

var errSeen = errors.New("corrupt seen-event record")

func (s *seenSet) decode(b []byte) (seenRec, error) {
	var r seenRec
	var n int
	if r.sec, n = binary.Varint(b); n <= 0 {
		return r, errSeen
	}
	b = b[n:]
	ns, n := binary.Uvarint(b)
	if n <= 0 || len(b[n:]) < 8 {
		return r, errSeen
	}
	r.nsec = int32(ns)
	b = b[n:]
	r.hash = binary.BigEndian.Uint64(b)
	b = b[8:]
	line, n := binary.Uvarint(b)
	if n <= 0 {
		return r, errSeen
	}
	b = b[n:]
	rec, n := binary.Uvarint(b)
	if n <= 0 {
		return r, errSeen
	}
	r.line, r.record = int32(line), int32(rec)
	r.file = s.intern(string(b[n:]))
	return r, nil
}
