package pipeline

import (
	"fmt"
	"testing"
	"time"
)

// The applied-event set recognises repeats and conflicts, forgets by
// event time at the horizon, and past its bound forgets the oldest first,
// counting them.
func TestSeenSet(t *testing.T) {
	s := newSeenSet(true)
	s.max = 3
	ev := func(i int, raw string) *Event {
		return &Event{ID: fmt.Sprint("id", i), Source: SourceCloudTrail, Type: "t", Time: t0.Add(time.Duration(i) * time.Minute), Raw: []byte(raw),
			Pos: Position{File: "f.json", Line: i + 1}}
	}
	for i := range 5 {
		if first, _ := s.check(ev(i, "a")); first != nil {
			t.Fatalf("event %d seen before it came", i)
		}
	}
	if s.evicted != 2 || len(s.m) != 3 {
		t.Fatalf("evicted %d, %d kept; want 2 and 3", s.evicted, len(s.m))
	}
	if first, conflict := s.check(ev(4, "a")); first == nil || conflict || first.Line != 5 || first.File != "f.json" {
		t.Fatalf("repeat of 4: %+v %v", first, conflict)
	}
	if first, conflict := s.check(ev(3, "b")); first == nil || !conflict {
		t.Fatalf("conflict on 3: %+v %v", first, conflict)
	}
	if first, _ := s.check(ev(0, "a")); first != nil {
		t.Fatal("event 0 was evicted and must not be recognised")
	}
	// Event 0 came back (it had been forgotten) and 2 was evicted for it.
	// Pruning at 4m walks application order: 3 goes; the late 0, applied
	// after 4, stays until 4 goes.
	if s.evicted != 3 {
		t.Fatalf("evicted %d, want 3", s.evicted)
	}
	s.prune(t0.Add(4 * time.Minute))
	if len(s.m) != 2 {
		t.Fatalf("%d left after pruning, want 2", len(s.m))
	}
	s.prune(t0.Add(5 * time.Minute))
	if len(s.m) != 0 {
		t.Fatalf("%d left after pruning at 5m, want 0", len(s.m))
	}
	s.check(ev(4, "a"))
	// The store round trip keeps time, position and content digest.
	w := memWriter{}
	s.checkpoint(w)
	s2 := newSeenSet(true)
	if err := s2.load(w); err != nil {
		t.Fatal(err)
	}
	if first, conflict := s2.check(ev(4, "a")); first == nil || conflict || first.Line != 5 {
		t.Fatalf("after reload: %+v %v", first, conflict)
	}
}

// memWriter is a StateWriter and a read-only StateStore over a map.
type memWriter map[string][]byte

func (m memWriter) Set(k, v []byte, _ time.Duration) { m[string(k)] = v }
func (m memWriter) Delete(k []byte)                  { delete(m, string(k)) }
func (m memWriter) Begin() StateTxn                  { panic("read only") }
func (m memWriter) Get(k []byte) ([]byte, bool, error) {
	v, ok := m[string(k)]
	return v, ok, nil
}
func (m memWriter) Iterate(prefix []byte, fn func(k, v []byte) error) error {
	for k, v := range m {
		if len(k) >= len(prefix) && k[:len(prefix)] == string(prefix) {
			if err := fn([]byte(k), v); err != nil {
				return err
			}
		}
	}
	return nil
}
