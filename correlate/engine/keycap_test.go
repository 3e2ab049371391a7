package engine

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// capSet is one threshold rule keyed by task with the given key cap, that
// never fires on these inputs (so that the cost measured is the key's).
func capSet(t testing.TB, maxKeys int) *rule.Set {
	s := sig(t, "x", ci, "")
	r := &rule.Rule{ID: "cap", Severity: pipeline.SeverityLow, Kind: rule.KindThreshold, MaxKeys: maxKeys,
		Threshold: &rule.Threshold{Step: rule.Step{As: "x", Signals: []*rule.Signal{s}}, Window: time.Hour, Agg: rule.AggCount, Cmp: rule.Cmp{GTE: f64(1000)}}}
	return newSet([]*rule.Signal{s}, r)
}

func capEvent(i int, at time.Duration) *pipeline.Event {
	task := fmt.Sprintf("arn:aws:ecs:eu-west-1:111122223333:task/prod/%08d", i)
	return ev(fmt.Sprintf("e%08d", i), ci, "x", at, task, "")
}

// TestKeyCapCostIsNotQuadratic: past a rule's key cap every new key used
// to scan all keys for expired ones (getKey → sweepRule), so 110,000 live
// tasks never finished. 200,000 keys past the default cap of 100,000 must
// finish, and the number of expiry checks must stay linear in the events.
func TestKeyCapCostIsNotQuadratic(t *testing.T) {
	n := 200_000
	if raceEnabled {
		n = 110_000 // still 10,000 past the cap
	}
	e, err := New(context.Background(), capSet(t, 0), nil, Options{Ephemeral: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if _, err := e.Process(ctx, capEvent(i, time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if i%1_000 == 999 && e.stats.expiryChecks > 4*uint64(i+1) {
			t.Fatalf("after %d events: %d expiry checks (quadratic)", i+1, e.stats.expiryChecks)
		}
	}
	s := e.Stats()
	if s.KeyCapOverflows["cap"] != uint64(n-100_000) || s.Keys != 100_000 || s.Incidents["cap"] != 0 {
		t.Errorf("overflows %d keys %d incidents %d; want %d, 100000, 0", s.KeyCapOverflows["cap"], s.Keys, s.Incidents["cap"], n-100_000)
	}
}

// BenchmarkKeyCap: one rule holding keys=N live keys at its cap; every op
// is an event for a new key, which the cap refuses (and counts).
func BenchmarkKeyCap(b *testing.B) {
	for _, n := range []int{10_000, 50_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			e, err := New(context.Background(), capSet(b, n), nil, Options{Ephemeral: true, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for i := 0; i < n; i++ {
				if _, err := e.Process(ctx, capEvent(i, time.Duration(i)*time.Microsecond)); err != nil {
					b.Fatal(err)
				}
			}
			evs := make([]*pipeline.Event, 1000)
			for i := range evs {
				evs[i] = capEvent(n+i, time.Duration(n)*time.Microsecond)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := e.Process(ctx, evs[i%len(evs)]); err != nil {
					b.Fatal(err)
				}
			}
			if got := e.Stats().KeyCapOverflows["cap"]; got != uint64(b.N) {
				b.Fatalf("overflows %d, want %d", got, b.N)
			}
		})
	}
}

// TestKeyCapOverflowsExact: the cap refuses a new key only while max_keys
// keys are still live at the event's time, whatever changed their expiry
// since they were created (a later event extends it, a reset after firing
// ends it at once), and every refusal is counted.
func TestKeyCapOverflowsExact(t *testing.T) {
	s := sig(t, "x", ci, "")
	r := &rule.Rule{ID: "cap", Severity: pipeline.SeverityLow, Kind: rule.KindThreshold, MaxKeys: 2,
		Threshold: &rule.Threshold{Step: rule.Step{As: "x", Signals: []*rule.Signal{s}}, Window: 10 * time.Minute,
			Agg: rule.AggCount, Cmp: rule.Cmp{GTE: f64(3)}, ResetAfterFire: true}}
	set := newSet([]*rule.Signal{s}, r)
	task := func(n string) string { return "arn:aws:ecs:eu-west-1:111122223333:task/prod/" + n }
	// No event ids: nothing is remembered for duplicate deliveries, so a
	// reset leaves the key empty.
	at := func(n string, d time.Duration) *pipeline.Event { return ev("", ci, "x", d, task(n), "") }
	steps := []struct {
		ev       *pipeline.Event
		overflow uint64
	}{
		{at("a", 0), 0},
		{at("a", time.Second), 0},
		{at("b", 2*time.Second), 0},
		{at("c", 3*time.Second), 1},                // a and b live
		{at("a", 4*time.Second), 1},                // a fires and resets: a is empty
		{at("c", 5*time.Second), 1},                // a's place is free
		{at("d", 6*time.Second), 2},                // b and c live
		{at("b", 9*time.Minute), 2},                // b now lives until 19m
		{at("d", 10*time.Minute+5*time.Second), 2}, // c's last event is one window old: expired
		{at("e", 10*time.Minute+6*time.Second), 3}, // b and d live
		{at("e", 19*time.Minute), 3},               // b expired, d lives
		{at("f", 19*time.Minute), 4},
		{at("f", 40*time.Minute), 4}, // all expired
	}
	for _, e := range []*Engine{newRunner(t, set, nil).e, func() *Engine {
		e, err := New(context.Background(), set, nil, Options{Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}()} {
		for i, s := range steps {
			if _, err := e.Process(context.Background(), s.ev); err != nil {
				t.Fatal(err)
			}
			if got := e.Stats().KeyCapOverflows["cap"]; got != s.overflow {
				t.Fatalf("step %d (%s at %s): %d overflows, want %d", i, s.ev.Entity.TaskARN, s.ev.Time.Sub(t0), got, s.overflow)
			}
		}
		st := e.Stats()
		if st.Incidents["cap"] != 1 || st.Keys != 1 {
			t.Errorf("incidents %d keys %d, want 1 and 1", st.Incidents["cap"], st.Keys)
		}
	}
}

// TestExpiresAtIsExact: the heap order (expiresAt) agrees with expired()
// at every time, for random states of every kind: a key is found by the
// cap exactly when the old full scan would have dropped it.
func TestExpiresAtIsExact(t *testing.T) {
	s := sig(t, "x", ci, "")
	st := rule.Step{As: "x", Signals: []*rule.Signal{s}}
	rules := []*rule.Rule{
		{ID: "m", Kind: rule.KindMatch, Match: &st},
		{ID: "th", Kind: rule.KindThreshold, Threshold: &rule.Threshold{Step: st, Window: 10 * time.Minute, Agg: rule.AggCount, Cmp: rule.Cmp{GTE: f64(3)}}},
		{ID: "sq", Kind: rule.KindSequence, Sequence: &rule.Sequence{MaxSpan: 30 * time.Minute, Steps: []rule.Step{st, st}}},
		{ID: "tp", Kind: rule.KindTemporal, Temporal: &rule.Temporal{Window: 10 * time.Minute, Signals: []rule.Step{st, st}}},
		{ID: "mt", Kind: rule.KindMetric, Metric: &rule.Metric{Series: s, For: 5 * time.Minute}},
	}
	rules[len(rules)-1].Metric.Baseline.Over = time.Hour
	rng := rand.New(rand.NewPCG(3, 4))
	rt0 := func() time.Time { return t0.Add(time.Duration(rng.IntN(7200)) * time.Second) }
	for _, r := range rules {
		rt := newRuleRT(0, r, Options{})
		for i := 0; i < 2000; i++ {
			ks := &keyState{Touch: rt0()}
			for j := rng.IntN(3); j > 0; j-- {
				ks.Seen = append(ks.Seen, seenRef{T: rt0()})
				ks.Win = append(ks.Win, winEntry{T: rt0()})
			}
			slices.SortFunc(ks.Seen, func(a, b seenRef) int { return a.T.Compare(b.T) })
			slices.SortFunc(ks.Win, func(a, b winEntry) int { return a.T.Compare(b.T) })
			ks.Parts = make([]*partial, 2)
			for j := range ks.Parts {
				if rng.IntN(2) == 0 {
					p := &partial{First: rt0()}
					if rng.IntN(8) == 0 {
						p.Deadline = rt0()
					}
					ks.Parts[j] = p
				}
			}
			ks.Temp = make([][]tempEntry, 2)
			for j := range ks.Temp {
				for k := rng.IntN(3); k > 0; k-- {
					ks.Temp[j] = append(ks.Temp[j], tempEntry{T: rt0()})
				}
				slices.SortFunc(ks.Temp[j], func(a, b tempEntry) int { return a.T.Compare(b.T) })
			}
			if rng.IntN(8) == 0 {
				ks.Pending = rt0()
			}
			at := rt.expiresAt(ks)
			if !at.Equal(maxTime) && !rt.expired(ks, at) {
				t.Fatalf("%s: not expired at its expiry %v: %+v", r.ID, at, ks)
			}
			if !at.Equal(minTime) && rt.expired(ks, at.Add(-time.Nanosecond)) {
				t.Fatalf("%s: expired before its expiry %v: %+v", r.ID, at, ks)
			}
			for k := 0; k < 5; k++ {
				now := rt0().Add(time.Duration(rng.IntN(7200)) * time.Second)
				if rt.expired(ks, now) != !now.Before(at) {
					t.Fatalf("%s: expired(%v) = %v, expiry %v", r.ID, now, rt.expired(ks, now), at)
				}
			}
		}
	}
}
