package pipeline

import (
	"bytes"
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
type seenSet struct {
	m     map[seenID]seenRec
	order []seenID // keys in application order (≈ event time), for pruning
	head  int
	added []seenID // applied since the last checkpoint
	gone  []seenID // pruned since the last checkpoint
}

type seenID struct {
	src Source
	id  string
}

func (k seenID) storeKey() []byte { return FamilyKey(FamilySeen, string(k.src), k.id) }

type seenRec struct {
	T    time.Time
	Hash uint64
	Pos  Position
}

func newSeenSet() *seenSet { return &seenSet{m: make(map[seenID]seenRec)} }

// contentHash identifies what an event says, to tell a redelivery from a
// conflicting event that reuses an ID.
func contentHash(ev *Event) uint64 {
	d := xxhash.New()
	d.WriteString(ev.Type)
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(ev.Time.Unix()))
	binary.BigEndian.PutUint32(b[8:], uint32(ev.Time.Nanosecond()))
	d.Write(b[:])
	d.Write(ev.Raw)
	return d.Sum64()
}

// check reports whether ev was applied before; when it was, first is the
// record of the applied copy and conflict says whether the content differs.
func (s *seenSet) check(ev *Event) (first *seenRec, conflict bool) {
	if ev.ID == "" {
		return nil, false
	}
	r, ok := s.m[seenID{ev.Source, ev.ID}]
	if !ok {
		return nil, false
	}
	return &r, r.Hash != contentHash(ev)
}

// add records ev as applied.
func (s *seenSet) add(ev *Event) {
	if ev.ID == "" {
		return
	}
	k := seenID{ev.Source, ev.ID}
	s.m[k] = seenRec{T: ev.Time, Hash: contentHash(ev), Pos: ev.Pos}
	s.order = append(s.order, k)
	s.added = append(s.added, k)
}

// prune forgets events older than cut.
func (s *seenSet) prune(cut time.Time) {
	for s.head < len(s.order) {
		k := s.order[s.head]
		r, ok := s.m[k]
		if ok && !r.T.Before(cut) {
			break
		}
		if ok {
			delete(s.m, k)
			s.gone = append(s.gone, k)
		}
		s.order[s.head] = seenID{}
		s.head++
	}
	if s.head > 4096 && s.head*2 > len(s.order) {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
}

func (s *seenSet) len() int { return len(s.m) }

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
		w.Set(k.storeKey(), encodeSeen(&r), 0)
	}
	s.added = s.added[:0]
}

// load restores the set from the store.
func (s *seenSet) load(st StateStore) error {
	prefix := []byte{FamilySeen}
	type kr struct {
		k seenID
		r *seenRec
	}
	var all []kr
	err := st.Iterate(prefix, func(k, v []byte) error {
		r, err := decodeSeen(v)
		if err != nil {
			return err
		}
		src, id, ok := bytes.Cut(k[1:], []byte{0})
		if !ok {
			return errSeen
		}
		all = append(all, kr{seenID{Source(src), string(id)}, r})
		return nil
	})
	if err != nil {
		return err
	}
	// Prune in time order.
	slices.SortStableFunc(all, func(a, b kr) int { return a.r.T.Compare(b.r.T) })
	for _, e := range all {
		s.m[e.k] = *e.r
		s.order = append(s.order, e.k)
	}
	return nil
}

// Times are stored as seconds and nanoseconds: lossless for any year.
func encodeSeen(r *seenRec) []byte {
	b := make([]byte, 0, 32+len(r.Pos.File))
	b = binary.AppendVarint(b, r.T.Unix())
	b = binary.AppendUvarint(b, uint64(r.T.Nanosecond()))
	b = binary.BigEndian.AppendUint64(b, r.Hash)
	b = binary.AppendUvarint(b, uint64(r.Pos.Line))
	b = binary.AppendUvarint(b, uint64(r.Pos.Record))
	return append(b, r.Pos.File...)
}

var errSeen = errors.New("corrupt seen-event record")

func decodeSeen(b []byte) (*seenRec, error) {
	sec, n := binary.Varint(b)
	if n <= 0 {
		return nil, errSeen
	}
	b = b[n:]
	ns, n := binary.Uvarint(b)
	if n <= 0 || len(b[n:]) < 8 {
		return nil, errSeen
	}
	b = b[n:]
	r := &seenRec{T: time.Unix(sec, int64(ns)).UTC(), Hash: binary.BigEndian.Uint64(b)}
	b = b[8:]
	line, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, errSeen
	}
	b = b[n:]
	rec, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, errSeen
	}
	r.Pos = Position{File: string(b[n:]), Line: int(line), Record: int(rec)}
	return r, nil
}
