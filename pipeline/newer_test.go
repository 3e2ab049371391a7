package pipeline

import (
	"testing"
	"time"
)

func TestNewer(t *testing.T) {
	base := Incident{ID: "i", Count: 2, Events: make([]EventRef, 2), LastSeen: t0, Status: IncidentOpen}
	with := func(f func(*Incident)) Incident { c := base; f(&c); return c }
	for _, c := range []struct {
		name string
		a    Incident
		want bool
	}{
		{"more occurrences", with(func(i *Incident) { i.Count = 3 }), true},
		{"fewer occurrences", with(func(i *Incident) { i.Count = 1; i.Events = make([]EventRef, 5) }), false},
		{"more evidence", with(func(i *Incident) { i.Events = make([]EventRef, 3) }), true},
		{"later last seen", with(func(i *Incident) { i.LastSeen = t0.Add(time.Second) }), true},
		{"resolved over open", with(func(i *Incident) { i.Status = IncidentResolved }), true},
		{"the same", base, false},
	} {
		if got := Newer(c.a, base); got != c.want {
			t.Errorf("%s: Newer = %v, want %v", c.name, got, c.want)
		}
		if c.want && Newer(base, c.a) {
			t.Errorf("%s: both are newer than the other", c.name)
		}
	}
}
