package engine

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

const (
	ct = pipeline.SourceCloudTrail
	fa = pipeline.SourceFalco
	gd = pipeline.SourceGuardDuty
	ci = pipeline.SourceContainerInsights
)

func f64(v float64) *float64 { return &v }

func TestMatchDedupAndExceptions(t *testing.T) {
	m := sig(t, "exec", ct, `raw.ok == true`)
	other := sig(t, "other", ct, "")
	mk := func(window time.Duration) *rule.Set {
		r := &rule.Rule{ID: "m", Severity: pipeline.SeverityHigh, Kind: rule.KindMatch,
			Match: &rule.Step{As: "x", Signals: []*rule.Signal{m}}, DedupWindow: window,
			Title:     tmpl(t, `exec on {{ .entity.task_arn }} by {{ .steps.x.raw.who }}`),
			Overrides: []rule.SeverityOverride{{When: compileOut(t, `count >= 1 && steps.x.raw.who == "root"`), Severity: pipeline.SeverityCritical}},
			Exceptions: []rule.Exception{
				{Name: "ci", Fields: []*vm.Program{compileAny(t, `raw.who`)}, Comps: []string{"startsWith"}, Values: [][]any{{"ci-"}}, Expires: t0.Add(time.Hour)},
			}}
		return newSet([]*rule.Signal{m, other}, r)
	}
	evs := []*pipeline.Event{
		ev("e1", ct, "exec", 0, taskA, `{"ok":true,"who":"alice"}`),
		ev("e2", ct, "exec", time.Minute, taskA, `{"ok":false}`),                 // signal false
		ev("e3", ct, "exec", 2*time.Minute, taskA, `{"ok":true,"who":"root"}`),   // dedup update, severity up
		ev("e4", ct, "exec", 3*time.Minute, "", `{"ok":true}`),                   // no task: not keyed
		ev("e5", ct, "exec", 4*time.Minute, taskA, `{"ok":true,"who":"ci-bot"}`), // exception active
		ev("e6", ct, "exec", 2*time.Hour, taskA, `{"ok":true,"who":"ci-bot"}`),   // exception expired; after window → new
		ev("e7", ct, "other", 2*time.Hour, taskA, `{"ok":true}`),
	}
	r := newRunner(t, mk(30*time.Minute), nil).feed(evs, false)
	wantBrief(t, r.list(),
		"m open critical n=2 0s [x:e1 x:e3]",
		"m open high n=1 2h0m0s [x:e6]",
	)
	inc := r.list()[0]
	if inc.ID != incidentID("m", "m/"+taskA, "e1") || len(inc.ID) != 32 {
		t.Errorf("id %s", inc.ID)
	}
	if inc.Title != "exec on "+taskA+" by alice" || inc.LastSeen != t0.Add(2*time.Minute) {
		t.Errorf("title %q last %v", inc.Title, inc.LastSeen)
	}
	s := r.e.Stats()
	if s.Suppressed["m"] != 1 || s.NoKey["m"] != 1 || s.SignalHits["exec"] != 5 || s.Incidents["m"] != 2 || s.Updated["m"] != 1 {
		t.Errorf("stats %+v", s)
	}

	// Without a dedup window every hit is its own incident.
	r = newRunner(t, mk(0), nil).feed(evs, false)
	wantBrief(t, r.list(),
		"m open high n=1 0s [x:e1]",
		"m open critical n=1 2m0s [x:e3]",
		"m open high n=1 2h0m0s [x:e6]",
	)
}

func TestSampleFindingsSkipped(t *testing.T) {
	s1 := sig(t, "gdf", gd, "")
	s2 := sig(t, "gdf2", gd, "")
	s2.Types = []string{"gdf"}
	s2.Sample = true
	set := newSet([]*rule.Signal{s1, s2},
		&rule.Rule{ID: "a", Severity: pipeline.SeverityLow, Kind: rule.KindMatch, Match: &rule.Step{Signals: []*rule.Signal{s1}}},
		&rule.Rule{ID: "b", Severity: pipeline.SeverityLow, Kind: rule.KindMatch, Match: &rule.Step{Signals: []*rule.Signal{s2}}})
	e := ev("g1", gd, "gdf", 0, taskA, "")
	e.Sample = true
	r := newRunner(t, set, nil).feed([]*pipeline.Event{e}, false)
	wantBrief(t, r.list(), "b open low n=1 0s [gdf2:g1]")
}

func thresholdSet(t *testing.T, agg rule.AggKind, field string, cmp rule.Cmp, reset bool) *rule.Set {
	s := sig(t, "conn", fa, "")
	s.Fields = []rule.NamedExpr{{Name: "dest", Prog: compileAny(t, `raw.dest`)}}
	s.NeedsRaw = true
	th := &rule.Threshold{Step: rule.Step{As: "c", Signals: []*rule.Signal{s}}, Window: 10 * time.Minute, Agg: agg, Cmp: cmp, ResetAfterFire: reset}
	if field != "" {
		th.Field = compileAny(t, field)
	}
	return newSet([]*rule.Signal{s}, &rule.Rule{ID: "th", Severity: pipeline.SeverityMedium, Kind: rule.KindThreshold, Threshold: th})
}

func TestThreshold(t *testing.T) {
	conn := func(id string, at time.Duration, task, dest string) *pipeline.Event {
		return ev(id, fa, "conn", at, task, `{"dest":"`+dest+`","n":2}`)
	}
	tests := []struct {
		name string
		set  *rule.Set
		evs  []*pipeline.Event
		want []string
	}{
		{"count fires at 3 in sliding window", thresholdSet(t, rule.AggCount, "", rule.Cmp{GTE: f64(3)}, true),
			[]*pipeline.Event{conn("a", 0, taskA, "x"), conn("b", 8*time.Minute, taskA, "x"), conn("c", 12*time.Minute, taskA, "x"),
				conn("d", 15*time.Minute, taskA, "x"), conn("z", 15*time.Minute, taskB, "x")},
			// a slides out before c (window (2m,12m]); b,c,d fire; buckets would have missed it.
			[]string{"th open medium n=1 8m0s [c:b c:c c:d]"}},
		{"just below", thresholdSet(t, rule.AggCount, "", rule.Cmp{GTE: f64(3)}, true),
			[]*pipeline.Event{conn("a", 0, taskA, "x"), conn("b", 5*time.Minute, taskA, "x"), conn("c", 10*time.Minute, taskA, "x")},
			nil},
		{"distinct", thresholdSet(t, rule.AggDistinct, `fields.dest`, rule.Cmp{GTE: f64(2)}, true),
			[]*pipeline.Event{conn("a", 0, taskA, "x"), conn("b", time.Minute, taskA, "x"), conn("c", 2*time.Minute, taskA, "y"),
				conn("d", 3*time.Minute, taskA, "y")},
			[]string{"th open medium n=1 0s [c:a c:b c:c]"}},
		{"keep fires again, no dedup → new incidents", thresholdSet(t, rule.AggSum, `raw.n`, rule.Cmp{GT: f64(3)}, false),
			[]*pipeline.Event{conn("a", 0, taskA, "x"), conn("b", time.Minute, taskA, "x"), conn("c", 2*time.Minute, taskA, "x")},
			[]string{"th open medium n=2 0s [c:a c:b c:c]"}}, // same first event → same id, updated
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRunner(t, tc.set, nil).feed(tc.evs, false)
			wantBrief(t, r.list(), tc.want...)
		})
	}
}

func seqSet(t *testing.T, mod func(*rule.Sequence)) *rule.Set {
	exec := sig(t, "exec", ct, "")
	shell := sig(t, "shell", fa, "")
	c2 := sig(t, "c2", gd, "")
	stop := sig(t, "stop", pipeline.SourceECS, "")
	seq := &rule.Sequence{MaxSpan: 30 * time.Minute, Steps: []rule.Step{
		{As: "exec", Signals: []*rule.Signal{exec}},
		{As: "shell", Signals: []*rule.Signal{shell}, Within: 15 * time.Minute},
		{As: "c2", Signals: []*rule.Signal{c2}, Within: 20 * time.Minute},
	}, Until: []*rule.Signal{stop}}
	if mod != nil {
		mod(seq)
	}
	return newSet([]*rule.Signal{exec, shell, c2, stop},
		&rule.Rule{ID: "seq", Severity: pipeline.SeverityCritical, Kind: rule.KindSequence, Sequence: seq})
}

func TestSequence(t *testing.T) {
	m := time.Minute
	exec := func(id string, at time.Duration) *pipeline.Event { return ev(id, ct, "exec", at, taskA, "") }
	shell := func(id string, at time.Duration) *pipeline.Event { return ev(id, fa, "shell", at, taskA, "") }
	c2 := func(id string, at time.Duration) *pipeline.Event { return ev(id, gd, "c2", at, taskA, "") }
	stop := func(id string, at time.Duration) *pipeline.Event {
		return ev(id, pipeline.SourceECS, "stop", at, taskA, "")
	}
	absentLast := func(s *rule.Sequence) {
		s.Steps[2] = rule.Step{As: "noc2", Signals: s.Steps[2].Signals, Absent: true, For: 10 * m}
	}
	absentMid := func(s *rule.Sequence) {
		s.Steps[1] = rule.Step{As: "noshell", Signals: s.Steps[1].Signals, Absent: true}
	}
	tests := []struct {
		name string
		mod  func(*rule.Sequence)
		evs  []*pipeline.Event
		end  time.Duration
		want []string
	}{
		{"fires", nil, []*pipeline.Event{exec("e", 0), shell("s", 4*m), c2("c", 9*m)}, time.Hour,
			[]string{"seq open critical n=1 0s [exec:e shell:s c2:c]"}},
		{"latest exec wins", nil, []*pipeline.Event{exec("e1", 0), exec("e2", 2*m), shell("s", 4*m), c2("c", 9*m)}, time.Hour,
			[]string{"seq open critical n=1 2m0s [exec:e2 shell:s c2:c]"}},
		{"out of order does not fire", nil, []*pipeline.Event{shell("s", 0), exec("e", m), c2("c", 9*m)}, time.Hour, nil},
		{"too slow (within)", nil, []*pipeline.Event{exec("e", 0), shell("s", 16*m), c2("c", 20*m)}, time.Hour, nil},
		{"too slow (maxspan)", nil, []*pipeline.Event{exec("e", 0), shell("s", 14*m), c2("c", 31*m)}, time.Hour, nil},
		{"until cancels", nil, []*pipeline.Event{exec("e", 0), shell("s", 4*m), stop("x", 5*m), c2("c", 9*m)}, time.Hour, nil},
		{"absent last violated", absentLast, []*pipeline.Event{exec("e", 0), shell("s", 4*m), c2("c", 14*m)}, time.Hour, nil},
		{"absent last satisfied", absentLast, []*pipeline.Event{exec("e", 0), shell("s", 4*m), c2("c", 15*m)}, time.Hour,
			[]string{"seq open critical n=1 0s [exec:e shell:s]"}},
		{"absent last undecided before deadline", absentLast, []*pipeline.Event{exec("e", 0), shell("s", 4*m)}, 14 * m, nil},
		{"absent middle satisfied", absentMid, []*pipeline.Event{exec("e", 0), c2("c", 9*m)}, time.Hour,
			[]string{"seq open critical n=1 0s [exec:e c2:c]"}},
		{"absent middle violated", absentMid, []*pipeline.Event{exec("e", 0), shell("s", 4*m), c2("c", 9*m)}, time.Hour, nil},
		{"min_count", func(s *rule.Sequence) { s.Steps[1].MinCount = 2 }, []*pipeline.Event{exec("e", 0), shell("s1", 4*m), c2("c0", 5*m), shell("s2", 6*m), c2("c", 9*m)}, time.Hour,
			[]string{"seq open critical n=1 0s [exec:e shell:s1 shell:s2 c2:c]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, each := range []bool{false, true} {
				r := newRunner(t, seqSet(t, tc.mod), nil).feed(tc.evs, each).advance(tc.end)
				wantBrief(t, r.list(), tc.want...)
			}
		})
	}
	// The absent-last incident is timed at the deadline.
	r := newRunner(t, seqSet(t, absentLast), nil).feed([]*pipeline.Event{exec("e", 0), shell("s", 4*m)}, false).advance(time.Hour)
	if l := r.list(); len(l) != 1 || !l[0].LastSeen.Equal(t0.Add(14*m)) {
		t.Fatalf("absent incident %+v", l)
	}
}

func temporalSet(t *testing.T, cond string) *rule.Set {
	a := sig(t, "ga", gd, "")
	b := sig(t, "fb", fa, "")
	c := sig(t, "cc", ct, "")
	tp := &rule.Temporal{Window: 10 * time.Minute, Signals: []rule.Step{
		{As: "a", Signals: []*rule.Signal{a}}, {As: "b", Signals: []*rule.Signal{b}}, {As: "c", Signals: []*rule.Signal{c}}}}
	if cond != "" {
		p, err := expr.Compile(cond, expr.Env(map[string]any{"a": false, "b": false, "c": false, "count_fired": 0}), expr.AsBool())
		if err != nil {
			t.Fatal(err)
		}
		tp.Condition = p
	}
	return newSet([]*rule.Signal{a, b, c}, &rule.Rule{ID: "tmp", Severity: pipeline.SeverityHigh, Kind: rule.KindTemporal, Temporal: tp})
}

func TestTemporal(t *testing.T) {
	m := time.Minute
	a := func(id string, at time.Duration) *pipeline.Event { return ev(id, gd, "ga", at, taskA, "") }
	b := func(id string, at time.Duration) *pipeline.Event { return ev(id, fa, "fb", at, taskA, "") }
	c := func(id string, at time.Duration) *pipeline.Event { return ev(id, ct, "cc", at, taskA, "") }
	tests := []struct {
		name, cond string
		evs        []*pipeline.Event
		want       []string
	}{
		{"all, any order", "", []*pipeline.Event{c("c", 0), a("a", 3*m), b("b", 9*m)}, []string{"tmp open high n=1 0s [c:c a:a b:b]"}},
		{"all, too far apart", "", []*pipeline.Event{c("c", 0), a("a", 3*m), b("b", 11*m)}, nil},
		{"positive fires at once", "a && b", []*pipeline.Event{b("b", 0), a("a", 2*m)}, []string{"tmp open high n=1 0s [b:b a:a]"}},
		{"negation holds at close", "a && b && !c", []*pipeline.Event{a("a", 0), b("b", 2*m), c("c", 11*m)}, []string{"tmp open high n=1 0s [a:a b:b]"}},
		{"negation violated", "a && b && !c", []*pipeline.Event{a("a", 0), b("b", 2*m), c("c", 9*m)}, nil},
		{"count_fired", "count_fired >= 2", []*pipeline.Event{a("a", 0), c("c", 5*m)}, []string{"tmp open high n=1 0s [a:a c:c]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, each := range []bool{false, true} {
				r := newRunner(t, temporalSet(t, tc.cond), nil).feed(tc.evs, each).advance(time.Hour)
				wantBrief(t, r.list(), tc.want...)
			}
		})
	}
	// The negated decision is timed at the window's close.
	r := newRunner(t, temporalSet(t, "a && b && !c"), nil).feed([]*pipeline.Event{a("a", 0), b("b", 2*m)}, false)
	if len(r.list()) != 0 {
		t.Fatal("decided before the window closed")
	}
	r.advance(10 * m)
	if len(r.list()) != 0 {
		t.Fatal("decided at (not after) the close")
	}
	r.advance(11 * m)
	if l := r.list(); len(l) != 1 || !l[0].LastSeen.Equal(t0.Add(10*m)) {
		t.Fatalf("got %+v", l)
	}
}

func metricSet(t *testing.T, join bool, mod func(*rule.Rule)) *rule.Set {
	cpu := sig(t, "cpu", ci, "")
	cpu.Fields = []rule.NamedExpr{{Name: "value", Prog: compileAny(t, `raw.v`)}}
	cpu.NeedsRaw = true
	pool := sig(t, "pool", fa, "")
	p, err := expr.Compile(`value > max(80, baseline * 1.5)`, expr.Env(rule.MetricEnv{}), expr.AsBool())
	if err != nil {
		t.Fatal(err)
	}
	mt := &rule.Metric{Series: cpu, ValueField: "value", Expr: p, For: 10 * time.Minute, ResetOnGap: true, Gap: 3 * time.Minute}
	mt.Baseline.Stat = rule.BaselineP95
	mt.Baseline.Over = 24 * time.Hour
	mt.Baseline.MinSamples = 3
	if join {
		mt.Join = &rule.Step{As: "corr", Signals: []*rule.Signal{pool}, Within: 15 * time.Minute}
	}
	r := &rule.Rule{ID: "met", Severity: pipeline.SeverityHigh, Kind: rule.KindMetric, Metric: mt,
		Resolve: &rule.Resolve{MetricClears: true, KeepFiringFor: 5 * time.Minute},
		Summary: tmpl(t, `cpu {{ printf "%.0f" .agg.value }} base {{ .agg.baseline }} for {{ .agg.for }}`)}
	if mod != nil {
		mod(r)
	}
	return newSet([]*rule.Signal{cpu, pool}, r)
}

// series renders one sample a minute from start, value per minute.
func series(task string, start time.Duration, vals ...float64) []*pipeline.Event {
	var out []*pipeline.Event
	for i, v := range vals {
		at := start + time.Duration(i)*time.Minute
		out = append(out, ev(fmt.Sprintf("m%d", int(at/time.Minute)), ci, "cpu", at, task, fmt.Sprintf(`{"v":%g}`, v)))
	}
	return out
}

func rep(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func merge(lists ...[]*pipeline.Event) []*pipeline.Event {
	var out []*pipeline.Event
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortStableFunc(out, func(a, b *pipeline.Event) int {
		if pipeline.Less(a, b) {
			return -1
		}
		if pipeline.Less(b, a) {
			return 1
		}
		return 0
	})
	return out
}

func TestMetric(t *testing.T) {
	m := time.Minute
	vals := append(append(rep(35, 5), rep(97, 15)...), rep(30, 10)...) // hot at 5..19m
	pool := ev("p", fa, "pool", 9*m, taskA, "")
	t.Run("sustained without join", func(t *testing.T) {
		r := newRunner(t, metricSet(t, false, nil), nil).feed(series(taskA, 0, vals...), false)
		l := r.list()
		wantBrief(t, l, "met resolved high n=1 5m0s [cpu:m5 cpu:m6 cpu:m7 cpu:m8 cpu:m9 cpu:m10 cpu:m11 cpu:m12 cpu:m13 cpu:m14 cpu:m15] by=m25@25m0s")
		if l[0].LastSeen != t0.Add(15*m) || l[0].Summary != "cpu 97 base 35 for 10m0s" {
			t.Errorf("incident %v %q", l[0].LastSeen, l[0].Summary)
		}
	})
	t.Run("join before breach", func(t *testing.T) {
		r := newRunner(t, metricSet(t, true, nil), nil).feed(merge(series(taskA, 0, vals...), []*pipeline.Event{pool}), false)
		wantBrief(t, r.list(), "met resolved high n=1 5m0s [cpu:m5 cpu:m6 cpu:m7 cpu:m8 cpu:m9 corr:p cpu:m10 cpu:m11 cpu:m12 cpu:m13 cpu:m14 cpu:m15] by=m25@25m0s")
	})
	t.Run("join after sustained", func(t *testing.T) {
		late := ev("p", fa, "pool", 17*m+30*time.Second, taskA, "")
		r := newRunner(t, metricSet(t, true, nil), nil).feed(merge(series(taskA, 0, vals...), []*pipeline.Event{late}), false)
		l := r.list()
		if len(l) != 1 || l[0].FirstSeen != t0.Add(5*m) || l[0].LastSeen != t0.Add(17*m+30*time.Second) {
			t.Fatalf("got %v", brief(l))
		}
	})
	t.Run("join required but missing", func(t *testing.T) {
		r := newRunner(t, metricSet(t, true, nil), nil).feed(series(taskA, 0, vals...), false)
		wantBrief(t, r.list())
	})
	t.Run("join on other task", func(t *testing.T) {
		r := newRunner(t, metricSet(t, true, nil), nil).feed(merge(series(taskA, 0, vals...), []*pipeline.Event{ev("p", fa, "pool", 9*m, taskB, "")}), false)
		wantBrief(t, r.list())
	})
	t.Run("gap resets the for clock", func(t *testing.T) {
		evs := merge(series(taskA, 0, rep(35, 5)...), series(taskA, 5*m, rep(97, 6)...), series(taskA, 15*m, rep(97, 6)...))
		r := newRunner(t, metricSet(t, false, nil), nil).feed(evs, false)
		wantBrief(t, r.list()) // 5..10 hot, 4m gap, 15..20 hot: never 10m
		evs = merge(series(taskA, 0, rep(35, 5)...), series(taskA, 5*m, rep(97, 6)...), series(taskA, 13*m, rep(97, 6)...))
		r = newRunner(t, metricSet(t, false, nil), nil).feed(evs, false)
		if l := r.list(); len(l) != 1 || l[0].LastSeen != t0.Add(15*m) {
			t.Fatalf("3m gap must not reset: %v", brief(l))
		}
	})
	t.Run("baseline learned", func(t *testing.T) {
		// Baseline 70 → 100 is not > max(80, 105); without the baseline it would be.
		evs := series(taskA, 0, append(rep(70, 10), rep(100, 15)...)...)
		r := newRunner(t, metricSet(t, false, nil), nil).feed(evs, false)
		wantBrief(t, r.list())
		r = newRunner(t, metricSet(t, false, nil), nil).feed(series(taskA, 0, append(rep(70, 2), rep(100, 15)...)...), false)
		if len(r.list()) != 1 {
			t.Fatalf("below min_samples the baseline is 0: %v", brief(r.list()))
		}
	})
}

func TestResolveKeepFiringFor(t *testing.T) {
	bad := sig(t, "bad", ct, "")
	good := sig(t, "good", ct, "")
	set := newSet([]*rule.Signal{bad, good}, &rule.Rule{ID: "drift", Severity: pipeline.SeverityHigh, Kind: rule.KindMatch,
		By: []rule.KeyField{{Name: "account", Entity: "account"}}, DedupWindow: time.Hour,
		Match:   &rule.Step{As: "change", Signals: []*rule.Signal{bad}},
		Resolve: &rule.Resolve{Signals: []*rule.Signal{good}, KeepFiringFor: 5 * time.Minute}})
	m := time.Minute
	mk := func(id, typ string, at time.Duration) *pipeline.Event {
		return ev(id, ct, typ, at, "arn:aws:ecs:eu-west-1:111122223333:task/prod/x", "")
	}
	for _, each := range []bool{false, true} {
		r := newRunner(t, set, nil).feed([]*pipeline.Event{mk("b1", "bad", 0), mk("g1", "good", 10*m), mk("b2", "bad", 12*m), mk("g2", "good", 20*m), mk("g3", "good", 22*m)}, each).advance(time.Hour)
		wantBrief(t, r.list(), "drift resolved high n=2 0s [change:b1 change:b2] by=g2@25m0s")
		r = newRunner(t, set, nil).feed([]*pipeline.Event{mk("b1", "bad", 0), mk("g1", "good", 10*m)}, each).advance(15 * m)
		wantBrief(t, r.list(), "drift open high n=1 0s [change:b1]")
		r.advance(16 * m)
		wantBrief(t, r.list(), "drift resolved high n=1 0s [change:b1] by=g1@15m0s")
	}
}

func TestLateEventCountedAndProcessed(t *testing.T) {
	s := sig(t, "exec", ct, "")
	set := newSet([]*rule.Signal{s}, &rule.Rule{ID: "m", Severity: pipeline.SeverityLow, Kind: rule.KindMatch, Match: &rule.Step{Signals: []*rule.Signal{s}}})
	r := newRunner(t, set, nil).advance(10*time.Minute).feed([]*pipeline.Event{ev("late", ct, "exec", 5*time.Minute, taskA, "")}, false)
	wantBrief(t, r.list(), "m open low n=1 5m0s [exec:late]")
	if st := r.e.Stats(); st.LateEvents != 1 || st.Events != 1 || st.SignalHits["exec"] != 1 || st.IncidentsBySeverity["low"] != 1 {
		t.Fatalf("stats %+v", st)
	}
}
