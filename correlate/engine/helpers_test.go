package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	taskA = "arn:aws:ecs:eu-west-1:111122223333:task/prod/aaaa"
	taskB = "arn:aws:ecs:eu-west-1:111122223333:task/prod/bbbb"
)

func compile(t testing.TB, src string) *vm.Program {
	t.Helper()
	p, err := expr.Compile(src, expr.Env(rule.Env{}), expr.AsBool())
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return p
}

func compileAny(t testing.TB, src string) *vm.Program {
	t.Helper()
	p, err := expr.Compile(src, expr.Env(rule.Env{}))
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return p
}

func compileOut(t testing.TB, src string) *vm.Program {
	t.Helper()
	p, err := expr.Compile(src, expr.Env(map[string]any{"count": 0, "steps": map[string]any{}, "agg": map[string]any{}, "incident": map[string]any{}, "event": map[string]any{}}), expr.AsBool())
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return p
}

func tmpl(t testing.TB, s string) *template.Template {
	t.Helper()
	return template.Must(template.New("t").Option("missingkey=zero").Parse(s))
}

// sig makes a signal matching events of one type (the type doubles as the
// signal name), optionally narrowed by where.
func sig(t testing.TB, name string, src pipeline.Source, where string) *rule.Signal {
	s := &rule.Signal{Name: name, Source: src, Types: []string{name}}
	if where != "" {
		s.Where = compile(t, where)
		s.NeedsRaw = strings.Contains(where, "raw")
	}
	return s
}

func newSet(sigs []*rule.Signal, rules ...*rule.Rule) *rule.Set {
	set := &rule.Set{SignalsByName: map[string]*rule.Signal{}, Rules: rules, Lists: map[string][]any{}}
	for i, s := range sigs {
		s.Index = i
		set.Signals = append(set.Signals, s)
		set.SignalsByName[s.Name] = s
	}
	for _, r := range rules {
		if r.Hash == "" {
			r.Hash = "h-" + r.ID
		}
		if r.By == nil {
			r.By = []rule.KeyField{{Name: "task_arn", Entity: "task_arn"}}
		}
	}
	set.BuildIndex()
	return set
}

// ev makes an event whose type is the signal name.
func ev(id string, src pipeline.Source, typ string, at time.Duration, task string, raw string) *pipeline.Event {
	if raw == "" {
		raw = `{}`
	}
	e := &pipeline.Event{ID: id, Source: src, Type: typ, Time: t0.Add(at), Raw: []byte(raw),
		Entity: pipeline.Entity{TaskARN: task}}
	pipeline.CompleteEntity(&e.Entity)
	return e
}

func memStore(t testing.TB) *state.Store {
	t.Helper()
	st, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// runner feeds events and keeps the final state of every incident.
type runner struct {
	t    testing.TB
	e    *Engine
	incs map[string]pipeline.Incident
	seq  []string // emission log: id/status/count
}

func newRunner(t testing.TB, set *rule.Set, st *state.Store) *runner {
	t.Helper()
	if st == nil {
		st = memStore(t)
	}
	e, err := New(context.Background(), set, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &runner{t: t, e: e, incs: map[string]pipeline.Incident{}}
}

func (r *runner) take(incs []pipeline.Incident, err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, in := range incs {
		r.incs[in.ID] = in
		r.seq = append(r.seq, fmt.Sprintf("%s/%s/%d", in.ID[:8], in.Status, in.Count))
	}
}

func (r *runner) feed(evs []*pipeline.Event, advanceEach bool) *runner {
	ctx := context.Background()
	for _, ev := range evs {
		r.take(r.e.Process(ctx, ev))
		if advanceEach {
			r.take(r.e.Advance(ctx, ev.Time))
		}
	}
	return r
}

func (r *runner) advance(d time.Duration) *runner {
	r.take(r.e.Advance(context.Background(), t0.Add(d)))
	return r
}

func (r *runner) list() []pipeline.Incident {
	out := make([]pipeline.Incident, 0, len(r.incs))
	for _, in := range r.incs {
		out = append(out, in)
	}
	pipeline.SortIncidents(out)
	return out
}

// brief renders incidents compactly for exact comparisons.
func brief(incs []pipeline.Incident) []string {
	var out []string
	for _, in := range incs {
		var ids []string
		for _, ev := range in.Events {
			ids = append(ids, ev.Step+":"+ev.ID)
		}
		s := fmt.Sprintf("%s %s %s n=%d %s [%s]", in.Rule, in.Status, in.Severity, in.Count,
			in.FirstSeen.Sub(t0), strings.Join(ids, " "))
		if in.EventsDropped > 0 {
			s += fmt.Sprintf(" dropped=%d", in.EventsDropped)
		}
		if in.ResolvedBy != nil {
			s += " by=" + in.ResolvedBy.ID + "@" + in.ResolvedAt.Sub(t0).String()
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func wantBrief(t testing.TB, got []pipeline.Incident, want ...string) {
	t.Helper()
	b := brief(got)
	slices.Sort(want)
	if !slices.Equal(b, want) {
		t.Errorf("incidents:\n got %q\nwant %q", b, want)
	}
}
