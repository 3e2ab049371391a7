package main

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/rules"
	"github.com/ecscorr/ecscorr/sources/archive"
)

// TestMemoryBudgetDemo: the demo through the built-in pack gives the same
// incidents, emitted in the same order, whether key state stays in memory
// or a budget of one byte evicts all of it after every event (to a
// scratch store, as replay without --state would, or to a durable one).
func TestMemoryBudgetDemo(t *testing.T) {
	ctx := context.Background()
	set, diags := rule.LoadFS(rules.Builtin, rule.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var evs []*pipeline.Event
	if err := archive.NewReader(archive.Options{}).Read(ctx, []string{"../../testdata/demo"}, func(ev *pipeline.Event) error {
		evs = append(evs, ev)
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(evs, func(x, y *pipeline.Event) int { return x.Time.Compare(y.Time) })
	res := pipeline.NewResolver(nil, 0)
	for _, ev := range evs {
		if err := res.Resolve(ctx, ev, ev.Containers...); err != nil {
			t.Fatal(err)
		}
	}
	// run returns the incident changes and the most keys evicted at once.
	run := func(opts engine.Options, st *state.Store) ([]string, int) {
		eng, err := engine.New(ctx, set, st, opts)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		peak := 0
		take := func(incs []pipeline.Incident, err error) {
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range incs {
				b, _ := json.Marshal(in)
				out = append(out, string(b))
			}
		}
		for i, ev := range evs {
			take(eng.Process(ctx, ev))
			if i%100 == 99 {
				take(eng.Advance(ctx, ev.Time.Add(-time.Minute)))
				s := eng.Stats()
				if s.StateErrors != 0 || (opts.MemoryBudget > 0 && s.EvictedKeys != s.Keys) {
					t.Fatalf("after %d events: keys %d evicted %d errors %d", i+1, s.Keys, s.EvictedKeys, s.StateErrors)
				}
				peak = max(peak, s.EvictedKeys)
			}
		}
		take(eng.Advance(ctx, evs[len(evs)-1].Time.Add(30*24*time.Hour)))
		return out, peak
	}
	store := func() *state.Store {
		st, err := state.OpenInMemory()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	want, _ := run(engine.Options{Ephemeral: true}, nil)
	if len(want) < 10 {
		t.Fatalf("only %d incident changes", len(want))
	}
	for name, v := range map[string]struct {
		opts engine.Options
	}{
		"scratch": {engine.Options{Ephemeral: true, MemoryBudget: 1}},
		"durable": {engine.Options{MemoryBudget: 1}},
	} {
		got, peak := run(v.opts, store())
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d incident changes, want %d identical ones", name, len(got), len(want))
		}
		if peak < 10 { // the demo holds up to 14 keys at once
			t.Errorf("%s: at most %d keys evicted at once", name, peak)
		}
	}
}
