package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/rules"
	"github.com/ecscorr/ecscorr/sources/archive"
)

// sliceInput is a live-style input: batches in a given arrival order,
// unordered, acknowledged after commit.
type sliceInput struct {
	evs   []*pipeline.Event
	batch int
	acked int
}

func (s *sliceInput) Name() string                       { return "live" }
func (s *sliceInput) Open(context.Context, []byte) error { return nil }
func (s *sliceInput) Close(context.Context) error        { return nil }
func (s *sliceInput) Read(context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	if len(s.evs) == 0 {
		return pipeline.Batch{}, nil, io.EOF
	}
	n := min(s.batch, len(s.evs))
	b := s.evs[:n]
	s.evs = s.evs[n:]
	return pipeline.Batch{Events: b}, func(context.Context, error) error { s.acked++; return nil }, nil
}

func demoEvents(t *testing.T) []*pipeline.Event {
	t.Helper()
	r := archive.NewReader(archive.Options{})
	var mu sync.Mutex
	var evs []*pipeline.Event
	err := readParallel(context.Background(), r, []string{"../../testdata/demo"}, nil, func(ev *pipeline.Event) error {
		mu.Lock()
		defer mu.Unlock()
		evs = append(evs, ev)
		return nil
	}, func(archive.RecordError) {})
	if err != nil {
		t.Fatal(err)
	}
	// A stable base order, whatever order the files were read in.
	slices.SortFunc(evs, func(a, b *pipeline.Event) int {
		if pipeline.Less(a, b) {
			return -1
		}
		return 1
	})
	return evs
}

func cloneEvents(evs []*pipeline.Event) []*pipeline.Event {
	out := make([]*pipeline.Event, len(evs))
	for i, ev := range evs {
		c := *ev
		out[i] = &c
	}
	return out
}

func incidentsJSON(t *testing.T, incs []pipeline.Incident) []string {
	t.Helper()
	out := make([]string, len(incs))
	for i, inc := range incs {
		b, err := json.Marshal(inc)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	return out
}

func newEngine(t *testing.T, set *rule.Set) *engine.Engine {
	t.Helper()
	eng, err := engine.New(context.Background(), set, nil, engine.Options{Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// replayEvents is replay's incidents for evs (cloned), the reference the
// live Runner is compared with.
func replayEvents(t *testing.T, set *rule.Set, evs []*pipeline.Event) []pipeline.Incident {
	t.Helper()
	replayed, _, _, err := pipeline.Replay(context.Background(), func(ctx context.Context, emit func(*pipeline.Event) error) error {
		for _, ev := range cloneEvents(evs) {
			if err := emit(ev); err != nil {
				return err
			}
		}
		return nil
	}, newEngine(t, set), pipeline.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return replayed
}

// The same input through replay (a sorted archive) and through the live
// Runner, arriving shuffled within the allowed lateness in batches of any
// size, gives identical incidents.
func TestReplayEqualsLiveWithinLateness(t *testing.T) {
	set, diags := rule.LoadFS(rules.Builtin, rule.LoadOptions{Now: time.Now()})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	base := demoEvents(t)
	replayed := replayEvents(t, set, base)
	want := incidentsJSON(t, replayed)
	if len(want) < 10 {
		t.Fatalf("only %d incidents replayed", len(want))
	}
	const lateness = 5 * time.Minute
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 6))
		evs := cloneEvents(base)
		// Arrival order: event time plus a delay under the lateness, so
		// that no event arrives after the watermark has passed it.
		delay := make(map[*pipeline.Event]time.Duration, len(evs))
		for _, ev := range evs {
			delay[ev] = time.Duration(rng.Int64N(int64(lateness)))
		}
		slices.SortStableFunc(evs, func(a, b *pipeline.Event) int {
			return a.Time.Add(delay[a]).Compare(b.Time.Add(delay[b]))
		})
		in := &sliceInput{evs: evs, batch: 1 + rng.IntN(200)}
		r, err := pipeline.NewRunner(pipeline.RunnerOptions{
			Inputs: []pipeline.Input{in}, Correlator: newEngine(t, set), KeepFinal: true,
			DefaultLateness: lateness, AdvanceEvery: time.Duration(1+rng.IntN(60)) * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		st, err := r.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Late != 0 {
			t.Fatalf("seed %d: %d events late though all arrived within the lateness", seed, st.Late)
		}
		got := incidentsJSON(t, r.Final())
		if !slices.Equal(got, want) {
			t.Errorf("seed %d (batch %d): live gives %d incidents, replay %d, or other content", seed, in.batch, len(got), len(want))
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Errorf("first difference:\n live   %s\n replay %s", got[i], want[i])
					break
				}
			}
		}
		if in.acked == 0 {
			t.Errorf("seed %d: no batch acknowledged", seed)
		}
	}
}

// holdInput is a sliceInput that, once empty, blocks instead of ending,
// as a live input does.
type holdInput struct{ sliceInput }

func (h *holdInput) Read(ctx context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	if len(h.evs) == 0 {
		<-ctx.Done()
		return pipeline.Batch{}, nil, ctx.Err()
	}
	return h.sliceInput.Read(ctx)
}

// TestEagerFiresBeforeTheWatermark: in live mode single-event matches fire
// on arrival while a slow source holds the watermark back (here: nothing
// is ever released), and they are exactly replay's incidents of those
// rules; run to the end, eager gives replay's incidents.
func TestEagerFiresBeforeTheWatermark(t *testing.T) {
	set, diags := rule.LoadFS(rules.Builtin, rule.LoadOptions{Now: time.Now()})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	base := demoEvents(t)
	replayed := replayEvents(t, set, base)
	eagerRule := map[string]bool{}
	for _, r := range set.Rules {
		eagerRule[r.ID] = r.Kind == rule.KindMatch && r.Resolve == nil
	}
	var wantEager []pipeline.Incident
	for _, inc := range replayed {
		if eagerRule[inc.Rule] {
			wantEager = append(wantEager, inc)
		}
	}
	if len(wantEager) < 2 || len(wantEager) == len(replayed) {
		t.Fatalf("the demo has %d single-event incidents of %d: not a test", len(wantEager), len(replayed))
	}
	ordered := func() []*pipeline.Event {
		evs := cloneEvents(base)
		slices.SortStableFunc(evs, func(a, b *pipeline.Event) int { return a.Time.Compare(b.Time) })
		return evs
	}
	for _, eager := range []bool{false, true} {
		in := &holdInput{sliceInput{evs: ordered(), batch: 7}}
		ctx, cancel := context.WithCancel(context.Background())
		r, err := pipeline.NewRunner(pipeline.RunnerOptions{
			Inputs: []pipeline.Input{in}, Correlator: newEngine(t, set), KeepFinal: true,
			DefaultLateness: 100000 * time.Hour, Eager: eager,
			Progress: func(st pipeline.RunStats) {
				if st.Received == int64(len(base)) {
					cancel()
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Run(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("eager=%v: run ended with %v", eager, err)
		}
		got := r.Final()
		switch {
		case !eager && len(got) != 0:
			t.Errorf("without eager, %d incidents fired before the watermark", len(got))
		case eager && !slices.Equal(incidentsJSON(t, got), incidentsJSON(t, wantEager)):
			t.Errorf("eager: %d incidents fired on arrival, want replay's %d single-event incidents", len(got), len(wantEager))
		}
	}
	in := &sliceInput{evs: ordered(), batch: 7}
	r, err := pipeline.NewRunner(pipeline.RunnerOptions{
		Inputs: []pipeline.Input{in}, Correlator: newEngine(t, set), KeepFinal: true,
		DefaultLateness: time.Hour, Eager: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := incidentsJSON(t, r.Final()), incidentsJSON(t, replayed); !slices.Equal(got, want) {
		t.Errorf("eager run to the end: %d incidents, replay %d, or other content", len(got), len(want))
	}
}

// gatedInput gives its events once gate is closed, then blocks like a live
// input.
type gatedInput struct {
	holdInput
	name string
	gate chan struct{}
}

func (g *gatedInput) Name() string { return g.name }
func (g *gatedInput) Read(ctx context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return pipeline.Batch{}, nil, ctx.Err()
	}
	return g.holdInput.Read(ctx)
}

// Live, an input that has given nothing yet holds the watermark back (for
// at most IdleAfter): the first input to deliver does not make another
// input's backlog late.
func TestSilentInputHoldsWatermarkAtStart(t *testing.T) {
	set, diags := rule.LoadFS(rules.Builtin, rule.LoadOptions{Now: time.Now()})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var trail, rest []*pipeline.Event
	for _, ev := range demoEvents(t) {
		if ev.Source == pipeline.SourceCloudTrail {
			trail = append(trail, ev)
		} else {
			rest = append(rest, ev)
		}
	}
	slices.SortStableFunc(trail, func(a, b *pipeline.Event) int { return a.Time.Compare(b.Time) })
	slices.SortStableFunc(rest, func(a, b *pipeline.Event) int { return a.Time.Compare(b.Time) })
	for _, idle := range []time.Duration{0, time.Hour} {
		first := &holdInput{sliceInput{evs: cloneEvents(rest), batch: 50}}
		gate := make(chan struct{})
		second := &gatedInput{holdInput: holdInput{sliceInput{evs: cloneEvents(trail), batch: 50}}, name: "trail", gate: gate}
		ctx, cancel := context.WithCancel(context.Background())
		var once bool
		r, err := pipeline.NewRunner(pipeline.RunnerOptions{
			Inputs: []pipeline.Input{first, second}, Correlator: newEngine(t, set), KeepFinal: true,
			DefaultLateness: time.Second, IdleAfter: idle,
			Progress: func(st pipeline.RunStats) {
				if st.Received == int64(len(rest)) && !once {
					once = true
					close(gate)
				}
				if st.Received == int64(len(rest)+len(trail)) {
					cancel()
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		st, err := r.Run(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		switch {
		case idle == 0 && st.Late == 0:
			t.Errorf("without a hold, no event was late: the test proves nothing")
		case idle > 0 && st.Late != 0:
			t.Errorf("with a hold, %d of the silent input's events were late", st.Late)
		}
	}
}
