package engine

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// TestSweepPrunesOpenLists: a key-less rule keeps every open hit in one
// key's list; the sweep forgets expired incidents (from the expiry heap)
// and prunes the list once. After every sweep the lists hold exactly the
// incidents still kept, in the order they opened, and the newest survive;
// a sweep part-way forgets exactly those whose Expire has passed.
func TestSweepPrunesOpenLists(t *testing.T) {
	a := sig(t, "a", ct, "")
	set := newSet([]*rule.Signal{a},
		&rule.Rule{ID: "every", Severity: pipeline.SeverityLow, Kind: rule.KindMatch, By: []rule.KeyField{},
			Match: &rule.Step{As: "x", Signals: []*rule.Signal{a}}},
		// Dedup windows of 90 s on keys of 7 events: incidents expire at
		// staggered times within one list.
		&rule.Rule{ID: "grouped", Severity: pipeline.SeverityLow, Kind: rule.KindMatch, By: []rule.KeyField{},
			DedupWindow: 90 * time.Second, DedupKey: tmpl(t, `{{ .event.raw.g }}`),
			Match: &rule.Step{As: "x", Signals: []*rule.Signal{a}}},
		// One incident hit by every even event, opened first and kept to
		// the end, and one per odd event expiring 90 s later: incidents
		// expire out of the order they opened (behind the long one).
		&rule.Rule{ID: "uneven", Severity: pipeline.SeverityLow, Kind: rule.KindMatch, By: []rule.KeyField{},
			DedupWindow: 90 * time.Second, DedupKey: tmpl(t, `{{ .event.raw.h }}`),
			Match: &rule.Step{As: "x", Signals: []*rule.Signal{a}}},
	)
	r := newRunner(t, set, nil)
	const n = 600
	for i := range n {
		at := time.Duration(i) * time.Second
		h := "long"
		if i%2 == 1 {
			h = fmt.Sprint("s", i)
		}
		r.feed([]*pipeline.Event{ev(fmt.Sprint("e", i), ct, "a", at, taskA, fmt.Sprintf(`{"g":"g%d","h":%q}`, i%7, h))}, true)
		checkOpenLists(t, r.e)
	}
	// every: n; grouped: 7; uneven: the long one and n/2 short ones.
	if got, want := len(r.incs), n+7+1+n/2; got != want {
		t.Fatalf("%d incidents, want %d", got, want)
	}
	// Past the last sweep by a minute, so that one runs: the hits have
	// expired (no dedup window); the 7 grouped incidents, the long one
	// and the 15 short ones whose 90 s run to 661 s or later (odd events
	// 571..599) have not.
	mid := n*time.Second + 61*time.Second
	want := 0
	for _, oi := range r.e.incidents {
		if !t0.Add(mid).After(oi.Expire) {
			want++
		}
	}
	if want != 7+1+15 {
		t.Fatalf("%d incidents unexpired at %v, want 23", want, mid)
	}
	r.advance(mid)
	checkOpenLists(t, r.e)
	if len(r.e.incidents) != want {
		t.Fatalf("after a sweep at %v: %d incidents kept, want the %d not expired", mid, len(r.e.incidents), want)
	}
	r.advance(n*time.Second + 5*time.Minute)
	checkOpenLists(t, r.e)
	if len(r.e.incidents) != 0 {
		t.Errorf("%d incidents kept after they all expired", len(r.e.incidents))
	}
}

// checkOpenLists asserts that each rule's open lists name exactly its kept
// incidents, by key, in the order they opened.
func checkOpenLists(t *testing.T, e *Engine) {
	t.Helper()
	// The expiry heap holds exactly the kept incidents, each where its
	// index says, in heap order.
	if len(e.incExp) != len(e.incidents) {
		t.Fatalf("expiry heap holds %d incidents, the engine keeps %d", len(e.incExp), len(e.incidents))
	}
	for i, oi := range e.incExp {
		if e.incidents[oi.Inc.ID] != oi || oi.hidx != i+1 {
			t.Fatalf("expiry heap entry %d (%s, index %d) is not the kept incident", i, oi.Inc.ID, oi.hidx)
		}
		if i > 0 && e.incExp.Less(i, (i-1)/2) {
			t.Fatalf("expiry heap out of order at %d", i)
		}
	}
	for _, rt := range e.rules {
		want := map[string][]*openInc{}
		for _, oi := range e.incidents {
			if oi.Rule == rt.r.ID {
				want[oi.GroupKey] = append(want[oi.GroupKey], oi)
			}
		}
		for key, ois := range want {
			slices.SortFunc(ois, func(a, b *openInc) int { return int(a.Seq) - int(b.Seq) })
			var ids []string
			for _, oi := range ois {
				ids = append(ids, oi.Inc.ID)
			}
			if !slices.Equal(rt.open[key], ids) {
				t.Fatalf("rule %s key %q: open list %d ids, want %d (%v vs %v)", rt.r.ID, key, len(rt.open[key]), len(ids), rt.open[key], ids)
			}
		}
		for key, ids := range rt.open {
			if len(want[key]) == 0 && len(ids) > 0 {
				t.Fatalf("rule %s key %q: open list names %d forgotten incidents", rt.r.ID, key, len(ids))
			}
		}
	}
}

// BenchmarkSweepKeyless: a key-less rule hit by every event, its
// incidents expiring a minute's worth per sweep (a noisy Sigma rule over
// a busy account). Forgetting them one by one out of the key's open list
// was quadratic in the hits per minute.
func BenchmarkSweepKeyless(b *testing.B) {
	a := sig(b, "a", ct, "")
	set := newSet([]*rule.Signal{a},
		&rule.Rule{ID: "every", Severity: pipeline.SeverityLow, Kind: rule.KindMatch, By: []rule.KeyField{},
			Match: &rule.Step{As: "x", Signals: []*rule.Signal{a}}})
	hitsByTheMinute(b, newRunner(b, set, nil), 20000)
}

// hitsByTheMinute feeds r perMinute CloudTrail events of type a a minute,
// spread over it, and advances the clock to the minute's end, until b is
// done; it reports the time per hit.
func hitsByTheMinute(b *testing.B, r *runner, perMinute int) {
	evs := make([]*pipeline.Event, perMinute)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		base := time.Duration(i) * time.Minute
		for j := range evs {
			evs[j] = ev(fmt.Sprint("e", i, "-", j), ct, "a", base+time.Duration(j)*time.Minute/time.Duration(perMinute), taskA, "")
		}
		r.feed(evs, false)
		r.advance(base + time.Minute)
		clear(r.incs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perMinute), "ns/hit")
}

// BenchmarkSweepManyOpen: incidents that stay open an hour (a dedup
// window) while the clock advances by the minute, 1,000 new ones a
// minute: some 60,000 open at each sweep, a thousand of them expiring;
// each its own key (keyed) or all in a key-less rule's one open list
// (keyless). Walking every open incident at each sweep, or a key's whole
// open list, made a hit cost in proportion to how many were open.
func BenchmarkSweepManyOpen(b *testing.B) {
	a := sig(b, "a", ct, "")
	for _, mode := range []string{"keyed", "keyless"} {
		b.Run(mode, func(b *testing.B) {
			r := &rule.Rule{ID: "hour", Severity: pipeline.SeverityLow, Kind: rule.KindMatch, DedupWindow: time.Hour,
				Match: &rule.Step{As: "x", Signals: []*rule.Signal{a}}}
			if mode == "keyed" {
				r.By = []rule.KeyField{{Name: "id", Expr: compileAny(b, `event.id`)}}
			} else {
				r.By, r.DedupKey = []rule.KeyField{}, tmpl(b, `{{ .event.id }}`)
			}
			hitsByTheMinute(b, newRunner(b, newSet([]*rule.Signal{a}, r), nil), 1000)
		})
	}
}
