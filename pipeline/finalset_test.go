package pipeline

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// SortIncidents orders by first seen, then rule, then id, whatever the
// input order (it permutes the incidents in place after sorting keys: a
// wrong cycle would lose or double one); the final set keeps the latest
// state of each incident and finds it again after sorting.
func TestSortIncidentsAndFinalSet(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var want []Incident
	for i := range 3000 {
		// Many share a first-seen time and a rule: the later keys decide.
		want = append(want, Incident{
			ID:        fmt.Sprintf("id-%d-%04d", i%7, 2999-i),
			Rule:      fmt.Sprintf("rule-%d", i%3),
			FirstSeen: t0.Add(time.Duration(i/21) * time.Second),
			Count:     i,
		})
	}
	slices.SortFunc(want, func(a, b Incident) int {
		if c := a.FirstSeen.Compare(b.FirstSeen); c != 0 {
			return c
		}
		if a.Rule != b.Rule {
			if a.Rule < b.Rule {
				return -1
			}
			return 1
		}
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 5 {
		got := slices.Clone(want)
		rng.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		SortIncidents(got)
		for i := range got {
			if got[i].ID != want[i].ID || got[i].Count != want[i].Count {
				t.Fatalf("round %d: position %d holds %s (count %d), want %s", round, i, got[i].ID, got[i].Count, want[i].ID)
			}
		}
	}

	f := newFinalSet()
	shuffled := slices.Clone(want)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, inc := range shuffled {
		f.put(inc)
	}
	if all := f.all(); len(all) != len(want) || all[0].ID != want[0].ID || all[len(all)-1].ID != want[len(want)-1].ID {
		t.Fatalf("final set: %d incidents", len(all))
	}
	// Updated after a sort: the update lands on the incident, not on the
	// slot it had before.
	upd := want[1234]
	upd.Count = -1
	f.put(upd)
	all := f.all()
	if len(all) != len(want) {
		t.Fatalf("an update added an incident: %d", len(all))
	}
	for i := range all {
		c := want[i].Count
		if i == 1234 {
			c = -1
		}
		if all[i].ID != want[i].ID || all[i].Count != c {
			t.Fatalf("position %d: %s count %d, want %s count %d", i, all[i].ID, all[i].Count, want[i].ID, c)
		}
	}
}
