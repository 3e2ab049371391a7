package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mkEvents(n int, r *rand.Rand) []*Event {
	evs := make([]*Event, n)
	for i := range evs {
		evs[i] = &Event{ID: fmt.Sprintf("e%05d", i), Source: Sources[r.IntN(4)], Time: t0.Add(time.Duration(r.IntN(3600)) * time.Second), Raw: []byte(`{"i":` + fmt.Sprint(i) + `}`)}
	}
	return evs
}

func TestReorderBufferRestoresOrderWithinLateness(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	// Sorted stream, then shuffled by at most 2 minutes of lateness.
	evs := mkEvents(2000, r)
	sortEvents(evs)
	want := make([]string, len(evs))
	for i, e := range evs {
		want[i] = e.ID
	}
	// Arrival order: each event is delayed by less than the lateness.
	arr := make([]*Event, len(evs))
	copy(arr, evs)
	delay := make(map[*Event]time.Duration, len(arr))
	for _, e := range arr {
		delay[e] = time.Duration(r.Int64N(int64(2 * time.Minute)))
	}
	slices.SortStableFunc(arr, func(a, b *Event) int { return a.Time.Add(delay[a]).Compare(b.Time.Add(delay[b])) })
	w := NewWatermarks(2*time.Minute, nil, 0)
	var rb ReorderBuffer
	var got []string
	emit := func(e *Event) error { got = append(got, e.ID); return nil }
	for _, e := range arr {
		w.Observe(e.Source, e.Time, t0)
		if !rb.Push(e) {
			t.Fatalf("event %s reported late", e.ID)
		}
		if err := rb.Release(w.Current(t0), emit); err != nil {
			t.Fatal(err)
		}
	}
	if err := rb.Release(time.Unix(1<<40, 0), emit); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("released %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("position %d: got %s want %s", i, got[i], want[i])
		}
	}
}

func TestReorderBufferCountsLate(t *testing.T) {
	var rb ReorderBuffer
	rb.Push(&Event{ID: "a", Time: t0})
	if err := rb.Release(t0.Add(time.Minute), func(*Event) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if rb.Push(&Event{ID: "late", Time: t0.Add(30 * time.Second)}) {
		t.Fatal("late event accepted")
	}
	if rb.Late != 1 || rb.Len() != 0 {
		t.Fatalf("Late=%d Len=%d, want 1 0", rb.Late, rb.Len())
	}
}

func TestWatermarkIdleSources(t *testing.T) {
	w := NewWatermarks(time.Minute, map[Source]time.Duration{SourceCloudTrail: 10 * time.Minute}, 5*time.Minute)
	now := t0
	w.Observe(SourceCloudTrail, t0.Add(20*time.Minute), now)
	w.Observe(SourceFalco, t0.Add(30*time.Minute), now)
	if got, want := w.Current(now), t0.Add(10*time.Minute); !got.Equal(want) {
		t.Fatalf("watermark %v, want %v (cloudtrail minus its 10m lateness)", got, want)
	}
	// CloudTrail goes quiet; Falco keeps coming.
	later := now.Add(6 * time.Minute)
	w.Observe(SourceFalco, t0.Add(40*time.Minute), later)
	if got, want := w.Current(later), t0.Add(39*time.Minute); !got.Equal(want) {
		t.Fatalf("watermark %v, want %v once cloudtrail is idle", got, want)
	}
	// A watermark never goes back, even when the idle source returns.
	w.Observe(SourceCloudTrail, t0.Add(21*time.Minute), later)
	if got, want := w.Current(later), t0.Add(39*time.Minute); !got.Equal(want) {
		t.Fatalf("watermark moved back to %v", got)
	}
}

func TestSorterSpillsAndMergesInOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	evs := mkEvents(5000, r)
	evs[10].Containers = []string{"abc", "def"}
	evs[10].Entity = Entity{Account: "1", Region: "r", Cluster: "c", Service: "s", TaskARN: "t", TaskDefinitionARN: "td", ContainerID: "cid", Principal: "p"}
	evs[10].Severity = SeverityHigh
	evs[10].Sample = true
	evs[10].Pos = Position{File: "f.json", Line: 3, Record: 7}
	special := *evs[10]
	s := &Sorter{MaxBytes: 64 << 10, Dir: t.TempDir()}
	for _, e := range evs {
		if err := s.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if s.Runs() < 10 {
		t.Fatalf("only %d runs spilled; the test needs spills", s.Runs())
	}
	var got []*Event
	if err := s.Drain(func(e *Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5000 {
		t.Fatalf("drained %d events, want 5000", len(got))
	}
	for i := 1; i < len(got); i++ {
		if Less(got[i], got[i-1]) {
			t.Fatalf("out of order at %d: %v before %v", i, got[i-1].Time, got[i].Time)
		}
	}
	for _, e := range got {
		if e.ID == special.ID {
			if fmt.Sprint(e.Entity, e.Containers, e.Severity, e.Sample, e.Pos, string(e.Raw), e.Time.Equal(special.Time)) !=
				fmt.Sprint(special.Entity, special.Containers, special.Severity, special.Sample, special.Pos, string(special.Raw), true) {
				t.Fatalf("round trip lost fields: %+v vs %+v", e, special)
			}
		}
	}
}

type memMap map[string]string

// Set and Delete make memMap the StateWriter of a commit.
func (m memMap) Set(key, val []byte, _ time.Duration) {
	if key[0] == FamilyContainer {
		m[string(key[1:])] = string(val)
	}
}
func (m memMap) Delete(key []byte) { delete(m, string(key[1:])) }
func (m memMap) GetContainer(_ context.Context, c string) (string, bool, error) {
	t, ok := m[c]
	return t, ok, nil
}

func TestResolverLearnsFromTaskStateChange(t *testing.T) {
	ctx := context.Background()
	store := memMap{}
	r := NewResolver(store, 0)
	task := "arn:aws:ecs:us-west-2:111122223333:task/FargateCluster/c13b4cb40f1f4fe4a2971f76ae5a47ad"
	td := "arn:aws:ecs:us-west-2:111122223333:task-definition/web:3"
	state := &Event{Source: SourceECS, Entity: Entity{TaskARN: task, TaskDefinitionARN: td}}
	if err := r.Resolve(ctx, state, "ad64cbc71c7fb31c55507ec24c9f77947132b03d48d9961115cf24f3b7307e1e"); err != nil {
		t.Fatal(err)
	}
	falco := &Event{Source: SourceFalco, Entity: Entity{ContainerID: "ad64cbc71c7f"}}
	if err := r.Resolve(ctx, falco); err != nil {
		t.Fatal(err)
	}
	if falco.Entity.TaskDefinitionARN != td {
		t.Fatalf("task definition not carried over: %+v", falco.Entity)
	}
	if falco.Entity.TaskARN != task || falco.Entity.Cluster != "FargateCluster" || falco.Entity.Account != "111122223333" || falco.Entity.Region != "us-west-2" {
		t.Fatalf("falco event not resolved: %+v", falco.Entity)
	}
	if len(store) != 0 {
		t.Fatalf("links written before the commit: %v", store)
	}
	if err := r.CheckpointBatch(ctx, store); err != nil {
		t.Fatal(err)
	}
	// A fresh resolver (a restart) resolves through the persisted map.
	r2 := NewResolver(store, 0)
	f2 := &Event{Source: SourceFalco, Entity: Entity{ContainerID: "ad64cbc71c7f"}}
	if err := r2.Resolve(ctx, f2); err != nil {
		t.Fatal(err)
	}
	if f2.Entity.TaskARN != task || f2.Entity.TaskDefinitionARN != td {
		t.Fatalf("not resolved after restart: %+v", f2.Entity)
	}
	host := &Event{Source: SourceFalco, Entity: Entity{ContainerID: "host"}}
	_ = r2.Resolve(ctx, host)
	if host.Entity.TaskARN != "" {
		t.Fatal("host events must not resolve")
	}
	if r.Learned != 1 || r.Resolved != 1 {
		t.Fatalf("Learned=%d Resolved=%d, want 1 1", r.Learned, r.Resolved)
	}
}

// In-order arrivals take the FIFO and stragglers the heap; releases
// interleaved with pushes still come out in Less order, each event once.
func TestReorderBufferFIFOAndHeapMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 50 {
		var rb ReorderBuffer
		var out []*Event
		var wm time.Time
		n := 0
		for i := range 500 {
			d := time.Duration(i) * time.Second
			if rng.IntN(4) == 0 {
				d -= time.Duration(rng.IntN(30)) * time.Second // a straggler within 30s
			}
			ev := &Event{ID: fmt.Sprint(i), Time: t0.Add(d), Source: SourceFalco}
			if ev.Time.Before(wm) {
				continue // would be late: the caller's business, not this test's
			}
			if !rb.Push(ev) {
				t.Fatalf("trial %d: event %d refused", trial, i)
			}
			n++
			if rng.IntN(10) == 0 {
				wm = t0.Add(d - 30*time.Second)
				rb.Release(wm, func(e *Event) error { out = append(out, e); return nil })
			}
		}
		rb.Release(t0.Add(time.Hour), func(e *Event) error { out = append(out, e); return nil })
		if len(out) != n || rb.Len() != 0 {
			t.Fatalf("trial %d: released %d of %d, %d left", trial, len(out), n, rb.Len())
		}
		for i := 1; i < len(out); i++ {
			if Less(out[i], out[i-1]) {
				t.Fatalf("trial %d: out of order at %d: %v after %v", trial, i, out[i].Time, out[i-1].Time)
			}
		}
	}
}

// With the processing clock, a watermark held by idle sources goes on at
// the pace of processing time from the newest event (old data stays old);
// without it, it stays.
func TestWatermarkProcessingClock(t *testing.T) {
	t0 := time.Date(2023, 7, 10, 12, 0, 0, 0, time.UTC)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, clock := range []bool{false, true} {
		w := NewWatermarks(time.Minute, map[Source]time.Duration{SourceFalco: 10 * time.Second}, 30*time.Second)
		w.ProcessingClock = clock
		w.Observe(SourceFalco, t0, now)
		w.Observe(SourceCloudTrail, t0.Add(-time.Hour), now)
		if got, want := w.Current(now.Add(10*time.Second)), t0.Add(-time.Hour-time.Minute); !got.Equal(want) {
			t.Fatalf("clock=%v, not idle: %v, want %v", clock, got, want)
		}
		got := w.Current(now.Add(5 * time.Minute))
		want := t0.Add(-10 * time.Second)
		if clock {
			want = want.Add(5 * time.Minute)
		}
		if !got.Equal(want) {
			t.Errorf("clock=%v, all idle for 5m: %v, want %v", clock, got, want)
		}
	}
}
