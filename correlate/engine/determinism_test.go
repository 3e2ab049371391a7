package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/expr-lang/expr"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// mixedSet has one rule of every kind over shared signals.
func mixedSet(t testing.TB) *rule.Set {
	exec := sig(t, "exec", ct, "")
	shell := sig(t, "shell", fa, "")
	c2 := sig(t, "c2", gd, "")
	stop := sig(t, "stop", pipeline.SourceECS, "")
	conn := sig(t, "conn", fa, "")
	conn.Fields = []rule.NamedExpr{{Name: "dest", Prog: compileAny(t, `raw.dest ?? ""`)}}
	conn.NeedsRaw = true
	cpu := sig(t, "cpu", ci, "")
	cpu.Fields = []rule.NamedExpr{{Name: "value", Prog: compileAny(t, `raw.v`)}}
	cpu.NeedsRaw = true
	pool := sig(t, "pool", fa, "")
	cc := sig(t, "cc", ct, "")
	mexpr, err := expr.Compile(`value > max(80, baseline * 1.5)`, expr.Env(rule.MetricEnv{}), expr.AsBool())
	if err != nil {
		t.Fatal(err)
	}
	cond, err := expr.Compile(`c2 && conn && !cc`, expr.Env(map[string]any{"c2": false, "conn": false, "cc": false, "count_fired": 0}), expr.AsBool())
	if err != nil {
		t.Fatal(err)
	}
	met := &rule.Metric{Series: cpu, ValueField: "value", Expr: mexpr, For: 10 * time.Minute, ResetOnGap: true, Gap: 3 * time.Minute,
		Join: &rule.Step{As: "corr", Signals: []*rule.Signal{pool}, Within: 15 * time.Minute}}
	met.Baseline.Stat, met.Baseline.Over, met.Baseline.MinSamples = rule.BaselineP95, 24*time.Hour, 5
	m := time.Minute
	rules := []*rule.Rule{
		{ID: "m", Severity: pipeline.SeverityLow, Kind: rule.KindMatch, Match: &rule.Step{As: "x", Signals: []*rule.Signal{exec}}, DedupWindow: 30 * m,
			Title: tmpl(t, `exec {{ .steps.x.id }} on {{ .key.task_arn }}`)},
		{ID: "th", Severity: pipeline.SeverityMedium, Kind: rule.KindThreshold, DedupWindow: 20 * m, MaxEvents: 4,
			Threshold: &rule.Threshold{Step: rule.Step{As: "c", Signals: []*rule.Signal{conn}}, Window: 10 * m, Agg: rule.AggCount, Cmp: rule.Cmp{GTE: f64(3)}, ResetAfterFire: true}},
		{ID: "seq", Severity: pipeline.SeverityCritical, Kind: rule.KindSequence, DedupWindow: time.Hour, Sequence: &rule.Sequence{MaxSpan: 30 * m, Steps: []rule.Step{
			{As: "exec", Signals: []*rule.Signal{exec}}, {As: "shell", Signals: []*rule.Signal{shell}, Within: 15 * m}, {As: "c2", Signals: []*rule.Signal{c2}, Within: 20 * m}},
			Until: []*rule.Signal{stop}}},
		{ID: "abs", Severity: pipeline.SeverityHigh, Kind: rule.KindSequence, Sequence: &rule.Sequence{MaxSpan: 20 * m, Steps: []rule.Step{
			{As: "exec", Signals: []*rule.Signal{exec}}, {As: "shell", Signals: []*rule.Signal{shell}, Within: 10 * m},
			{As: "noc2", Signals: []*rule.Signal{c2}, Absent: true, For: 7 * m}}}},
		{ID: "tmp", Severity: pipeline.SeverityHigh, Kind: rule.KindTemporal, DedupWindow: 15 * m, Temporal: &rule.Temporal{Window: 10 * m, Condition: cond, Signals: []rule.Step{
			{As: "c2", Signals: []*rule.Signal{c2}}, {As: "conn", Signals: []*rule.Signal{conn}}, {As: "cc", Signals: []*rule.Signal{cc}}}}},
		{ID: "met", Severity: pipeline.SeverityHigh, Kind: rule.KindMetric, Metric: met,
			Resolve: &rule.Resolve{MetricClears: true, KeepFiringFor: 3 * m}},
		{ID: "res", Severity: pipeline.SeverityMedium, Kind: rule.KindMatch, Match: &rule.Step{As: "c", Signals: []*rule.Signal{cc}}, DedupWindow: 2 * time.Hour,
			Resolve: &rule.Resolve{Signals: []*rule.Signal{stop}}},
	}
	return newSet([]*rule.Signal{exec, shell, c2, stop, conn, cpu, pool, cc}, rules...)
}

// genEvents makes a reproducible mixed stream over a few tasks: per-minute
// CPU samples with hot phases, and random security events.
func genEvents(seed uint64, dur time.Duration) []*pipeline.Event {
	rng := rand.New(rand.NewPCG(seed, 7))
	tasks := []string{taskA, taskB, "arn:aws:ecs:eu-west-1:111122223333:task/prod/cccc"}
	var out []*pipeline.Event
	n := 0
	id := func() string { n++; return fmt.Sprintf("e%05d", n) }
	for ti, task := range tasks {
		hot := false
		for at := time.Duration(0); at < dur; at += time.Minute {
			if rng.IntN(20) == 0 {
				hot = !hot
			}
			if rng.IntN(30) == 0 {
				continue // a gap
			}
			v := 20 + rng.Float64()*30
			if hot {
				v = 95 + rng.Float64()*5
			}
			out = append(out, ev(id(), ci, "cpu", at+time.Duration(ti)*time.Second, task, fmt.Sprintf(`{"v":%.2f}`, v)))
		}
	}
	types := []struct {
		src pipeline.Source
		typ string
		w   int
	}{{ct, "exec", 4}, {fa, "shell", 4}, {gd, "c2", 3}, {pipeline.SourceECS, "stop", 1}, {fa, "conn", 8}, {fa, "pool", 2}, {ct, "cc", 2}, {ct, "noise", 6}}
	total := 0
	for _, x := range types {
		total += x.w
	}
	for at := time.Duration(0); at < dur; at += time.Duration(5+rng.IntN(50)) * time.Second {
		k := rng.IntN(total)
		for _, x := range types {
			if k < x.w {
				raw := fmt.Sprintf(`{"dest":"10.0.0.%d"}`, rng.IntN(4))
				out = append(out, ev(id(), x.src, x.typ, at, tasks[rng.IntN(len(tasks))], raw))
				break
			}
			k -= x.w
		}
	}
	sortEvents(out)
	return out
}

func sortEvents(evs []*pipeline.Event) {
	slices.SortStableFunc(evs, func(a, b *pipeline.Event) int {
		if pipeline.Less(a, b) {
			return -1
		}
		if pipeline.Less(b, a) {
			return 1
		}
		return 0
	})
}

func incJSON(t testing.TB, incs []pipeline.Incident) []string {
	var out []string
	for _, in := range incs {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func sameIncidents(t *testing.T, what string, got, want []pipeline.Incident) {
	t.Helper()
	g, w := incJSON(t, got), incJSON(t, want)
	if !slices.Equal(g, w) {
		t.Errorf("%s: %d vs %d incidents", what, len(got), len(want))
		for i := 0; i < max(len(g), len(w)); i++ {
			var a, b string
			if i < len(g) {
				a = g[i]
			}
			if i < len(w) {
				b = w[i]
			}
			if a != b {
				t.Errorf("first difference at %d:\n got %s\nwant %s", i, a, b)
				return
			}
		}
	}
}

func TestAdvanceFrequencyDoesNotMatter(t *testing.T) {
	evs := genEvents(1, 4*time.Hour)
	end := 5 * time.Hour
	a := newRunner(t, mixedSet(t), nil).feed(evs, false).advance(end)
	b := newRunner(t, mixedSet(t), nil).feed(evs, true).advance(end)
	if len(a.list()) < 10 {
		t.Fatalf("scenario too quiet: %d incidents", len(a.list()))
	}
	kinds := map[string]int{}
	for _, in := range a.list() {
		kinds[in.Rule]++
	}
	for _, r := range []string{"m", "th", "seq", "abs", "tmp", "met", "res"} {
		if kinds[r] == 0 {
			t.Errorf("rule %s never fired in the scenario: %v", r, kinds)
		}
	}
	t.Logf("incidents per rule: %v (total %d)", kinds, len(a.list()))
	sameIncidents(t, "advance each vs at end", b.list(), a.list())
}

// TestShuffledWithinLateness: arrival order within the allowed lateness,
// sorted back by a reorder buffer, gives exactly the same incidents.
func TestShuffledWithinLateness(t *testing.T) {
	evs := genEvents(2, 3*time.Hour)
	end := 4 * time.Hour
	want := newRunner(t, mixedSet(t), nil).feed(evs, true).advance(end).list()
	const lateness = 2 * time.Minute
	for seed := uint64(1); seed <= 3; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		// Arrival time = event time + random delay ≤ lateness.
		type arr struct {
			ev *pipeline.Event
			at time.Time
		}
		var arrivals []arr
		for _, e := range evs {
			cp := *e
			arrivals = append(arrivals, arr{&cp, e.Time.Add(time.Duration(rng.Int64N(int64(lateness))))})
		}
		slices.SortStableFunc(arrivals, func(a, b arr) int { return a.at.Compare(b.at) })
		r := newRunner(t, mixedSet(t), nil)
		var rb pipeline.ReorderBuffer
		ctx := context.Background()
		process := func(ev *pipeline.Event) error {
			r.take(r.e.Process(ctx, ev))
			return nil
		}
		for i, a := range arrivals {
			a.ev.Seq = uint64(i)
			if !rb.Push(a.ev) {
				t.Fatalf("late event %s", a.ev.ID)
			}
			wm := a.at.Add(-lateness)
			if err := rb.Release(wm, process); err != nil {
				t.Fatal(err)
			}
			r.take(r.e.Advance(ctx, wm))
		}
		if err := rb.Release(t0.Add(end), process); err != nil {
			t.Fatal(err)
		}
		r.advance(end)
		sameIncidents(t, fmt.Sprintf("shuffle seed %d", seed), r.list(), want)
	}
}

// TestRestartCarriesOn: checkpoint and close half way, reopen the same
// directory, and get exactly the incidents of an uninterrupted run.
func TestRestartCarriesOn(t *testing.T) {
	evs := genEvents(3, 4*time.Hour)
	end := 5 * time.Hour
	want := newRunner(t, mixedSet(t), nil).feed(evs, true).advance(end)
	ctx := context.Background()
	for _, cut := range []int{len(evs) / 3, len(evs) / 2, len(evs) - 40} {
		dir := t.TempDir()
		st, err := state.Open(dir, state.Options{GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		r := newRunner(t, mixedSet(t), st).feed(evs[:cut], true)
		emitted1 := len(r.seq)
		if err := r.e.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		st, err = state.Open(dir, state.Options{GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		r2 := newRunner(t, mixedSet(t), st)
		r2.incs = r.incs
		r2.feed(evs[cut:], true).advance(end)
		sameIncidents(t, fmt.Sprintf("restart at %d", cut), r2.list(), want.list())
		// Nothing emitted twice: the emission log is the same.
		all := append(r.seq[:emitted1:emitted1], r2.seq...)
		if !slices.Equal(all, want.seq) {
			t.Errorf("restart at %d: emission log differs (%d vs %d)", cut, len(all), len(want.seq))
		}
		st.Close()
	}
}
