package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// dup returns a second delivery of ev (a distinct *Event, same source+id).
func dup(e *pipeline.Event) *pipeline.Event {
	c := *e
	c.Raw = append([]byte(nil), e.Raw...)
	return &c
}

func TestDuplicateDeliveriesCountOnce(t *testing.T) {
	a := sig(t, "a", ct, "")
	b := sig(t, "b", ct, "")
	set := newSet([]*rule.Signal{a, b},
		&rule.Rule{ID: "m", Severity: pipeline.SeverityLow, Kind: rule.KindMatch, DedupWindow: time.Hour,
			Match: &rule.Step{As: "x", Signals: []*rule.Signal{a}}},
		&rule.Rule{ID: "th", Severity: pipeline.SeverityLow, Kind: rule.KindThreshold,
			Threshold: &rule.Threshold{Step: rule.Step{As: "e", Signals: []*rule.Signal{a}}, Window: 10 * time.Minute,
				Agg: rule.AggCount, Cmp: rule.Cmp{GTE: f64(3)}, ResetAfterFire: true}},
		&rule.Rule{ID: "sq", Severity: pipeline.SeverityLow, Kind: rule.KindSequence,
			Sequence: &rule.Sequence{MaxSpan: time.Hour, Steps: []rule.Step{
				{As: "a", Signals: []*rule.Signal{a}}, {As: "b", Signals: []*rule.Signal{b}, MinCount: 2}}}},
		&rule.Rule{ID: "tp", Severity: pipeline.SeverityLow, Kind: rule.KindTemporal,
			Temporal: &rule.Temporal{Window: time.Hour, Signals: []rule.Step{
				{As: "a", Signals: []*rule.Signal{a}, MinCount: 2}, {As: "b", Signals: []*rule.Signal{b}}}}},
	)
	a1 := ev("a1", ct, "a", 0, taskA, "")
	b1 := ev("b1", ct, "b", time.Minute, taskA, "")
	a2 := ev("a2", ct, "a", 3*time.Minute, taskA, "")
	b2 := ev("b2", ct, "b", 4*time.Minute, taskA, "")
	evs := []*pipeline.Event{a1, dup(a1), b1, dup(b1), dup(a1), a2, dup(b1), b2}
	r := newRunner(t, set, nil).feed(evs, true)
	wantBrief(t, r.list(),
		"m open low n=2 0s [x:a1 x:a2]",
		// 3 deliveries of a1 and 1 of a2 are 2 events: no threshold.
		// b1 delivered three times is one run of b: b2 completes it.
		"sq open low n=1 0s [a:a1 b:b1 b:b2]",
		// a needs 2 events: a1's repeats do not count, a2 does.
		"tp open low n=1 0s [a:a1 b:b1 a:a2]",
	)
	s := r.e.Stats()
	if s.Duplicates["m"] != 2 || s.Duplicates["th"] != 2 || s.Duplicates["sq"] != 4 || s.Duplicates["tp"] != 4 {
		t.Errorf("duplicates %v", s.Duplicates)
	}
	// The same deliveries without the repeats give the same incidents.
	r2 := newRunner(t, set, nil).feed([]*pipeline.Event{a1, b1, a2, b2}, true)
	if fmt.Sprint(brief(r2.list())) != fmt.Sprint(brief(r.list())) {
		t.Errorf("with duplicates %q, without %q", brief(r.list()), brief(r2.list()))
	}
	// A third distinct event does fire the threshold, with 3 evidence events.
	a3 := ev("a3", ct, "a", 5*time.Minute, taskA, "")
	r.feed([]*pipeline.Event{dup(a2), a3}, true)
	got := ""
	for _, in := range r.list() {
		if in.Rule == "th" {
			got = brief([]pipeline.Incident{in})[0]
		}
	}
	if got != "th open low n=1 0s [e:a1 e:a2 e:a3]" {
		t.Errorf("threshold %q", got)
	}
}

func TestDuplicateHorizonIsTheWindow(t *testing.T) {
	a := sig(t, "a", ct, "")
	set := newSet([]*rule.Signal{a},
		&rule.Rule{ID: "th", Severity: pipeline.SeverityLow, Kind: rule.KindThreshold,
			Threshold: &rule.Threshold{Step: rule.Step{As: "e", Signals: []*rule.Signal{a}}, Window: 10 * time.Minute,
				Agg: rule.AggCount, Cmp: rule.Cmp{GTE: f64(2)}, ResetAfterFire: true}})
	x := ev("x", ct, "a", 0, taskA, "")
	late := dup(x)
	late.Time = t0.Add(11 * time.Minute) // redelivered after the window: a new event for the rule
	y := ev("y", ct, "a", 12*time.Minute, taskA, "")
	r := newRunner(t, set, nil).feed([]*pipeline.Event{x, late, y}, true)
	wantBrief(t, r.list(), "th open low n=1 11m0s [e:x e:y]")
	var keys int
	for _, rt := range r.e.rules {
		for _, ks := range rt.keys {
			keys++
			if len(ks.Seen) != 2 {
				t.Errorf("seen %v (the 0s entry must be evicted)", ks.Seen)
			}
		}
	}
	if keys != 1 {
		t.Errorf("keys %d", keys)
	}
}

// fieldSig is a signal of type name extracting field k from raw[from].
func fieldSig(t *testing.T, name, from string) *rule.Signal {
	s := sig(t, name, ct, "")
	s.Fields = []rule.NamedExpr{{Name: "k", Prog: compileAny(t, `raw.`+from+` ?? nil`)}}
	s.NeedsRaw = true
	return s
}

func TestByFieldsPerSignal(t *testing.T) {
	stop := fieldSig(t, "stop", "instances")
	mod := fieldSig(t, "mod", "instance")
	other := sig(t, "other", ct, "") // no field k: never keyed
	set := newSet([]*rule.Signal{stop, mod, other},
		&rule.Rule{ID: "tp", Severity: pipeline.SeverityHigh, Kind: rule.KindTemporal,
			By: []rule.KeyField{{Name: "instance", Expr: compileAny(t, `fields.k`), ReadsFields: true}},
			Temporal: &rule.Temporal{Window: time.Hour, Signals: []rule.Step{
				{As: "stop", Signals: []*rule.Signal{stop}}, {As: "mod", Signals: []*rule.Signal{mod, other}}}}})
	evs := []*pipeline.Event{
		ev("s1", ct, "stop", 0, "", `{"instances":["i-1","i-2","i-1",""]}`),
		ev("o1", ct, "other", time.Minute, "", `{"instance":"i-1"}`),
		ev("m2", ct, "mod", 2*time.Minute, "", `{"instance":"i-2"}`),
		ev("m3", ct, "mod", 3*time.Minute, "", `{"instance":"i-3"}`),
		ev("m1", ct, "mod", 4*time.Minute, "", `{"instance":"i-1"}`),
	}
	r := newRunner(t, set, nil).feed(evs, true)
	incs := r.list()
	wantBrief(t, incs,
		"tp open high n=1 0s [stop:s1 mod:m2]",
		"tp open high n=1 0s [stop:s1 mod:m1]",
	)
	var keys []string
	for _, in := range incs {
		keys = append(keys, in.Key["instance"])
	}
	if strings.Join(keys, ",") != "i-2,i-1" && strings.Join(keys, ",") != "i-1,i-2" {
		t.Errorf("keys %v", keys)
	}
	if s := r.e.Stats(); s.NoKey["tp"] != 1 {
		t.Errorf("no key %v (the 'other' event has no field k)", s.NoKey)
	}
}

func TestListKeysFanOut(t *testing.T) {
	a := sig(t, "a", ct, "")
	b := sig(t, "b", ct, "")
	set := newSet([]*rule.Signal{a, b},
		&rule.Rule{ID: "sq", Severity: pipeline.SeverityHigh, Kind: rule.KindSequence,
			By: []rule.KeyField{{Name: "id", Expr: compileAny(t, `raw.ids ?? raw.id`)}},
			Sequence: &rule.Sequence{MaxSpan: time.Hour, Steps: []rule.Step{
				{As: "a", Signals: []*rule.Signal{a}}, {As: "b", Signals: []*rule.Signal{b}}}}})
	ids := make([]string, 70)
	for i := range ids {
		ids[i] = fmt.Sprintf(`"x%02d"`, i)
	}
	evs := []*pipeline.Event{
		ev("a1", ct, "a", 0, "", `{"ids":[`+strings.Join(ids, ",")+`]}`),
		ev("b63", ct, "b", time.Minute, "", `{"id":"x63"}`),   // the 64th element joins
		ev("b64", ct, "b", 2*time.Minute, "", `{"id":"x64"}`), // the 65th was cut
		ev("b00", ct, "b", 3*time.Minute, "", `{"ids":["x00","x01"]}`),
	}
	r := newRunner(t, set, nil).feed(evs, true)
	wantBrief(t, r.list(),
		"sq open high n=1 0s [a:a1 b:b63]",
		"sq open high n=1 0s [a:a1 b:b00]",
		"sq open high n=1 0s [a:a1 b:b00]",
	)
	s := r.e.Stats()
	if s.KeyFanoutOverflows["sq"] != 1 || s.Keys != 64 {
		t.Errorf("fanout %v keys %d", s.KeyFanoutOverflows, s.Keys)
	}
}

func TestTemporalMinCountAnyOrder(t *testing.T) {
	cp := sig(t, "cp", ct, "")
	del := sig(t, "del", ct, "")
	set := newSet([]*rule.Signal{cp, del},
		&rule.Rule{ID: "tp", Severity: pipeline.SeverityHigh, Kind: rule.KindTemporal,
			Temporal: &rule.Temporal{Window: time.Hour, Signals: []rule.Step{
				{As: "cp", Signals: []*rule.Signal{cp}, MinCount: 3}, {As: "del", Signals: []*rule.Signal{del}, MinCount: 2}}}})
	mk := func(order string) []*pipeline.Event {
		var evs []*pipeline.Event
		for i, c := range order {
			typ := map[rune]string{'c': "cp", 'd': "del"}[c]
			evs = append(evs, ev(fmt.Sprintf("%s%d", typ, i), ct, typ, time.Duration(i)*time.Minute, taskA, ""))
		}
		return evs
	}
	for _, tc := range []struct {
		order string
		want  []string
	}{
		{"ddccc", []string{"tp open high n=1 0s [del:del0 del:del1 cp:cp2 cp:cp3 cp:cp4]"}},
		{"cdcdc", []string{"tp open high n=1 0s [cp:cp0 del:del1 cp:cp2 del:del3 cp:cp4]"}},
		{"cccd", nil},  // one deletion short
		{"ccddd", nil}, // one copy short
	} {
		r := newRunner(t, set, nil).feed(mk(tc.order), true).advance(3 * time.Hour)
		b := brief(r.list())
		if fmt.Sprint(b) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %q, want %q", tc.order, b, tc.want)
		}
	}
}

func TestLeakyBucket(t *testing.T) {
	a := sig(t, "a", ct, "")
	set := newSet([]*rule.Signal{a},
		&rule.Rule{ID: "lk", Severity: pipeline.SeverityMedium, Kind: rule.KindThreshold,
			Threshold: &rule.Threshold{Step: rule.Step{As: "e", Signals: []*rule.Signal{a}}, Agg: rule.AggCount,
				Leaky: &rule.Leaky{Capacity: 5, LeakSpeed: 30 * time.Second}, Window: 150 * time.Second, ResetAfterFire: true}})
	series := func(n int, at ...time.Duration) []*pipeline.Event {
		var evs []*pipeline.Event
		for i := 0; i < n; i++ {
			evs = append(evs, ev(fmt.Sprintf("e%d", i), ct, "a", at[i], taskA, ""))
		}
		return evs
	}
	every := func(n int, d time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i) * d
		}
		return out
	}
	for _, tc := range []struct {
		name string
		evs  []*pipeline.Event
		want []string
	}{
		{"6 at once overflow", series(6, every(6, 0)...), []string{"lk open medium n=1 0s [e:e0 e:e1 e:e2 e:e3 e:e4 e:e5]"}},
		{"5 at once fit", series(5, every(5, 0)...), nil},
		{"6 every 5s overflow", series(6, every(6, 5*time.Second)...), []string{"lk open medium n=1 0s [e:e0 e:e1 e:e2 e:e3 e:e4 e:e5]"}},
		// By the 6th event (30s) exactly one event has leaked: it fits.
		{"6 every 6s fit", series(6, every(6, 6*time.Second)...), nil},
		// A sliding 2m30s window would hold all 6 (and fire); the bucket
		// drained 1.25 events before the 6th.
		{"6 every 7.5s fit", series(6, every(6, 7500*time.Millisecond)...), nil},
		// 7 events every 6s: at 36s the bucket holds 6 - 1.2 = 4.8 events; the
		// 7th makes 5.8 > 5.
		{"7 every 6s overflow", series(7, every(7, 6*time.Second)...), []string{"lk open medium n=1 0s [e:e0 e:e1 e:e2 e:e3 e:e4 e:e5 e:e6]"}},
		// The bucket empties after 2m30s: what was poured before is gone.
		{"empty bucket forgets", series(7, 0, 0, 0, 0, 0, 150*time.Second, 150*time.Second), nil},
		{"after empty, evidence restarts", series(11, 0, 0, 0, 0, 0, 150*time.Second, 150*time.Second, 150*time.Second, 150*time.Second, 150*time.Second, 150*time.Second),
			[]string{"lk open medium n=1 2m30s [e:e5 e:e6 e:e7 e:e8 e:e9 e:e10]"}},
	} {
		r := newRunner(t, set, nil).feed(tc.evs, true).advance(time.Hour)
		if b := brief(r.list()); fmt.Sprint(b) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, b, tc.want)
		}
	}
}

func TestDistinctEvidenceOnePerValue(t *testing.T) {
	conn := sig(t, "conn", fa, "")
	mk := func(distinct bool) *rule.Set {
		return newSet([]*rule.Signal{conn},
			&rule.Rule{ID: "d", Severity: pipeline.SeverityMedium, Kind: rule.KindThreshold,
				Threshold: &rule.Threshold{Step: rule.Step{As: "c", Signals: []*rule.Signal{conn}}, Window: 10 * time.Minute,
					Agg: rule.AggDistinct, Field: compileAny(t, `raw.ip`), Cmp: rule.Cmp{GTE: f64(3)},
					ResetAfterFire: true, DistinctEvidence: distinct}})
	}
	evs := []*pipeline.Event{
		ev("c1", fa, "conn", 0, taskA, `{"ip":"a"}`),
		ev("c2", fa, "conn", time.Minute, taskA, `{"ip":"b"}`),
		ev("c3", fa, "conn", 2*time.Minute, taskA, `{"ip":"a"}`),
		ev("c4", fa, "conn", 3*time.Minute, taskA, `{"ip":"c"}`),
	}
	r := newRunner(t, mk(true), nil).feed(evs, true)
	wantBrief(t, r.list(), "d open medium n=1 0s [c:c1 c:c2 c:c4]")
	r = newRunner(t, mk(false), nil).feed(evs, true)
	wantBrief(t, r.list(), "d open medium n=1 0s [c:c1 c:c2 c:c3 c:c4]")
}

// TestGapStateSurvivesRestart: the remembered ids and a leaky bucket's
// level are persisted with the key state.
func TestGapStateSurvivesRestart(t *testing.T) {
	a := sig(t, "a", ct, "")
	set := newSet([]*rule.Signal{a},
		&rule.Rule{ID: "lk", Severity: pipeline.SeverityMedium, Kind: rule.KindThreshold,
			Threshold: &rule.Threshold{Step: rule.Step{As: "e", Signals: []*rule.Signal{a}}, Agg: rule.AggCount,
				Leaky: &rule.Leaky{Capacity: 2, LeakSpeed: time.Minute}, Window: 2 * time.Minute, ResetAfterFire: true}})
	st := memStore(t)
	ctx := context.Background()
	e1 := ev("e1", ct, "a", 0, taskA, "")
	r := newRunner(t, set, st).feed([]*pipeline.Event{e1, ev("e2", ct, "a", 30*time.Second, taskA, "")}, true)
	if err := r.e.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// Restarted: e1 again is a duplicate; e3 at 60s finds 2 - 1 = 1 event
	// in the bucket, e4 at 60s makes 3 > 2.
	r2 := newRunner(t, set, st).feed([]*pipeline.Event{dup(e1)}, true)
	if len(r2.list()) != 0 || r2.e.Stats().Duplicates["lk"] != 1 {
		t.Fatalf("after restart: %q %v", brief(r2.list()), r2.e.Stats().Duplicates)
	}
	r2.feed([]*pipeline.Event{ev("e3", ct, "a", time.Minute, taskA, "")}, true)
	if len(r2.list()) != 0 {
		t.Fatalf("e3 overflowed: %q", brief(r2.list()))
	}
	r2.feed([]*pipeline.Event{ev("e4", ct, "a", time.Minute, taskA, "")}, true)
	wantBrief(t, r2.list(), "lk open medium n=1 0s [e:e1 e:e2 e:e3 e:e4]")
}
