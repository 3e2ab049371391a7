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
// key's list; the sweep forgets expired incidents in map order and prunes
// the list once. After every sweep the lists hold exactly the incidents
// still kept, in the order they opened, and the newest survive.
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
	)
	r := newRunner(t, set, nil)
	const n = 600
	for i := range n {
		at := time.Duration(i) * time.Second
		r.feed([]*pipeline.Event{ev(fmt.Sprint("e", i), ct, "a", at, taskA, fmt.Sprintf(`{"g":"g%d"}`, i%7))}, true)
		checkOpenLists(t, r.e)
	}
	if got := len(r.incs); got != n+7 {
		t.Fatalf("%d incidents, want %d", got, n+7)
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
	r := newRunner(b, set, nil)
	const perMinute = 20000
	evs := make([]*pipeline.Event, perMinute)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		base := time.Duration(i) * time.Minute
		for j := range evs {
			evs[j] = ev(fmt.Sprint("e", i, "-", j), ct, "a", base+time.Duration(j)*time.Minute/perMinute, taskA, "")
		}
		r.feed(evs, false)
		r.advance(base + time.Minute)
		clear(r.incs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perMinute), "ns/hit")
}
