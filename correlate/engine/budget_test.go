package engine

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// runSteps feeds a golden case through an engine made by mk and returns
// the incidents and the emission log. restartAt > 0 closes the engine
// before that step and carries on with a new one on the same store.
func runSteps(t *testing.T, set *rule.Set, steps []step, st *state.Store, opts Options, restartAt int) ([]string, []string, Stats) {
	t.Helper()
	ctx := context.Background()
	opts.Logger = slog.New(slog.DiscardHandler)
	e, err := New(ctx, set, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{t: t, e: e, incs: map[string]pipeline.Incident{}}
	for i, s := range steps {
		if i == restartAt && restartAt > 0 {
			if err := r.e.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if r.e, err = New(ctx, set, st, opts); err != nil {
				t.Fatal(err)
			}
		}
		if s.ev != nil {
			r.take(r.e.Process(ctx, s.ev))
		} else {
			r.advance(s.advance)
		}
	}
	stats := r.e.Stats()
	return incJSON(t, r.list()), r.seq, stats
}

// TestMemoryBudgetDoesNotChangeIncidents: with a budget so small that
// every key state is evicted after every event (and read back on the next
// event or timer), every golden case gives the same incidents, emitted in
// the same order, as with no budget: durable, ephemeral with a scratch
// store, and across restarts.
func TestMemoryBudgetDoesNotChangeIncidents(t *testing.T) {
	dirs, err := filepath.Glob("testdata/cases/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			set, diags := rule.LoadFiles([]string{filepath.Join(dir, "rules.yaml")}, rule.LoadOptions{Now: t0})
			if diags.HasErrors() {
				t.Fatalf("rules: %v", diags.Errors())
			}
			steps := readCase(t, filepath.Join(dir, "events.jsonl"))
			want, wantSeq, ws := runSteps(t, set, steps, memStore(t), Options{}, 0)
			if ws.EvictedKeys != 0 {
				t.Fatalf("no budget, %d evicted", ws.EvictedKeys)
			}
			for _, v := range []struct {
				name string
				opts Options
			}{
				{"durable", Options{MemoryBudget: 1}},
				{"ephemeral", Options{MemoryBudget: 1, Ephemeral: true}},
			} {
				got, seq, gs := runSteps(t, set, steps, memStore(t), v.opts, 0)
				if !slices.Equal(got, want) || !slices.Equal(seq, wantSeq) {
					t.Errorf("%s: incidents differ with a tiny budget:\n got %s\nwant %s\n got %v\nwant %v", v.name, got, want, seq, wantSeq)
				}
				if gs.Keys != ws.Keys || gs.EvictedKeys != gs.Keys || gs.StateErrors != 0 {
					t.Errorf("%s: keys %d evicted %d errors %d; want keys %d all evicted", v.name, gs.Keys, gs.EvictedKeys, gs.StateErrors, ws.Keys)
				}
			}
			for cut := 1; cut < len(steps); cut += cutStride(len(steps), 25) {
				got, seq, _ := runSteps(t, set, steps, memStore(t), Options{MemoryBudget: 1}, cut)
				if !slices.Equal(got, want) || !slices.Equal(seq, wantSeq) {
					t.Errorf("restart before step %d: incidents differ with a tiny budget:\n got %s\nwant %s", cut, got, want)
				}
			}
		})
	}
}

func TestMemoryBudgetNeedsAStore(t *testing.T) {
	_, err := New(context.Background(), capSet(t, 0), nil, Options{Ephemeral: true, MemoryBudget: 1 << 20})
	if err == nil {
		t.Fatal("a budget without a store was accepted")
	}
}

// TestMemoryBudgetCrashSeesLastCheckpoint: evictions between checkpoints
// never reach the records a restart reads. An engine checkpoints before
// step cut, runs to the end without another checkpoint (evicting all the
// while) and is abandoned, as a kill -9 would; a new engine on the same
// store then replays from step cut. Its incidents are those of the same
// crash without a budget.
func TestMemoryBudgetCrashSeesLastCheckpoint(t *testing.T) {
	dirs, err := filepath.Glob("testdata/cases/*")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			set, diags := rule.LoadFiles([]string{filepath.Join(dir, "rules.yaml")}, rule.LoadOptions{Now: t0})
			if diags.HasErrors() {
				t.Fatalf("rules: %v", diags.Errors())
			}
			steps := readCase(t, filepath.Join(dir, "events.jsonl"))
			crash := func(budget int64, cut int) ([]string, []string) {
				st := memStore(t)
				opts := Options{MemoryBudget: budget, Logger: slog.New(slog.DiscardHandler)}
				e, err := New(ctx, set, st, opts)
				if err != nil {
					t.Fatal(err)
				}
				r := &runner{t: t, e: e, incs: map[string]pipeline.Incident{}}
				feed := func(from int) {
					for _, s := range steps[from:] {
						if s.ev != nil {
							r.take(r.e.Process(ctx, s.ev))
						} else {
							r.advance(s.advance)
						}
					}
				}
				for _, s := range steps[:cut] {
					if s.ev != nil {
						r.take(r.e.Process(ctx, s.ev))
					} else {
						r.advance(s.advance)
					}
				}
				if err := r.e.Checkpoint(ctx); err != nil {
					t.Fatal(err)
				}
				feed(cut) // then the crash: no Close
				if r.e, err = New(ctx, set, st, opts); err != nil {
					t.Fatal(err)
				}
				r.incs, r.seq = map[string]pipeline.Incident{}, nil
				feed(cut)
				return incJSON(t, r.list()), r.seq
			}
			for cut := 1; cut < len(steps); cut += cutStride(len(steps), 12) {
				want, wantSeq := crash(0, cut)
				got, seq := crash(1, cut)
				if !slices.Equal(got, want) || !slices.Equal(seq, wantSeq) {
					t.Errorf("checkpoint before step %d, crash at the end: incidents after restart differ with a tiny budget:\n got %s\nwant %s", cut, got, want)
				}
			}
		})
	}
}

// cpuRuleSet is one Container Insights CPU rule keyed by task, with a
// baseline per task (the state that made replay of 90,000 tasks × 40
// samples use over 1 GiB).
func cpuRuleSet(t testing.TB) *rule.Set {
	src := `apiVersion: ecscorr/v1
kind: RuleFile
signals:
  - name: cpu
    source: container_insights
    types: ["metrics/Task"]
    where: 'raw.Type == "Task" && raw.CpuReserved > 0'
    fields: {value: "raw.CpuUtilized / raw.CpuReserved * 100"}
rules:
  - id: cpu
    severity: high
    detect:
      metric:
        series: cpu
        expr: 'value > max(80, baseline * 1.5)'
        for: 10m
        baseline: {stat: p95, over: 1d, min_samples: 10}
`
	set, diags := rule.Load([]rule.NamedSource{{Name: "cpu.yaml", Data: []byte(src)}}, rule.LoadOptions{Now: t0})
	if diags.HasErrors() {
		t.Fatalf("%v", diags.Errors())
	}
	return set
}

func cpuEvents(tasks, samples int) []*pipeline.Event {
	out := make([]*pipeline.Event, 0, tasks*samples)
	for s := 0; s < samples; s++ {
		for i := 0; i < tasks; i++ {
			task := fmt.Sprintf("arn:aws:ecs:eu-west-1:111122223333:task/prod/%08d", i)
			v := 10 + (i*7+s*13)%30
			if i%97 == 0 && s >= 15 {
				v = 99 // a few tasks breach for long enough to fire
			}
			raw := fmt.Sprintf(`{"Type":"Task","CpuReserved":100,"CpuUtilized":%d}`, v)
			out = append(out, ev(fmt.Sprintf("ci-%d-%d", i, s), ci, "metrics/Task", time.Duration(s)*time.Minute, task, raw))
		}
	}
	return out
}

// TestMemoryBudgetBoundsHeap: 1,000 tasks × 30 samples through a metric
// rule. Without a budget, the size estimate of the key states is within a
// factor of two of the heap they really take. With a budget of 256 KiB (and
// a store on disk) the estimate stays under the budget after every event,
// most keys live in the store, and the incidents are the same.
func TestMemoryBudgetBoundsHeap(t *testing.T) {
	set := cpuRuleSet(t)
	tasks, budget := 1000, int64(256<<10)
	if raceEnabled {
		tasks, budget = 200, 48<<10
	}
	evs := cpuEvents(tasks, 30)
	ctx := context.Background()
	heap := func() uint64 {
		// Twice: the first collection only moves sync.Pool contents
		// (the JSON codec's buffers) to their victim cache.
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	run := func(budget int64) ([]string, *Engine) {
		opts := Options{MemoryBudget: budget, Ephemeral: true, Logger: slog.New(slog.DiscardHandler)}
		var st *state.Store
		if budget > 0 {
			var err error
			if st, err = state.Open(t.TempDir(), state.Options{Logger: opts.Logger}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
		}
		e, err := New(ctx, set, st, opts)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range evs {
			incs, err := e.Process(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range incs {
				out = append(out, in.ID+"/"+string(in.Status))
			}
			if budget > 0 && e.memUsed > budget {
				t.Fatalf("estimate %d over the budget %d", e.memUsed, budget)
			}
		}
		return out, e
	}
	want, eAll := run(0)
	var est int64
	for _, ks := range eAll.rules[0].keys {
		est += ks.memSize()
	}
	// What the engine holds: the heap with it, less the heap without it.
	with := heap()
	runtime.KeepAlive(eAll)
	grown := int64(with) - int64(heap())
	t.Logf("no budget: %d incident changes, key state estimate %d KB, engine heap %d KB", len(want), est>>10, grown>>10)
	if !raceEnabled && (est < grown/2 || est > grown*2) {
		t.Errorf("estimate %d bytes for a heap of %d", est, grown)
	}
	got, eb := run(budget)
	if !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("%d incident changes with the budget, %d without", len(got), len(want))
	}
	s := eb.Stats()
	if s.EvictedKeys < tasks*8/10 || s.Keys != tasks || s.StateErrors != 0 {
		t.Errorf("keys %d evicted %d errors %d", s.Keys, s.EvictedKeys, s.StateErrors)
	}
}

// cutStride spreads about n restart points over steps (fewer under the
// race detector).
func cutStride(steps, n int) int {
	if raceEnabled {
		n /= 3
	}
	return max(1, steps/n)
}

// TestEvictedStateLostIsCounted: a checkpointed key evicted without a
// scratch copy whose record then disappears from the store (a TTL, which
// runs on the wall clock) is counted and logged when read back, not
// silently restarted.
func TestEvictedStateLostIsCounted(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	set := capSet(t, 0)
	e, err := New(ctx, set, st, Options{MemoryBudget: 1 << 30, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range []*pipeline.Event{capEvent(1, 0), capEvent(2, time.Second)} {
		if _, err := e.Process(ctx, x); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := e.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			e.opts.MemoryBudget = e.memUsed // room for this key only
		}
	}
	ks := e.rules[0].keys[capEvent(1, 0).Entity.TaskARN]
	if ks == nil || !ks.evicted || ks.spilled {
		t.Fatalf("key 1 should be evicted without a scratch copy: %+v", ks)
	}
	b := st.NewBatch()
	b.Delete(keyStoreKey(e.rules[0], ks.key))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Process(ctx, capEvent(1, 2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.StateErrors != 1 || s.Keys != 2 {
		t.Errorf("state errors %d keys %d, want 1 and 2", s.StateErrors, s.Keys)
	}
}
