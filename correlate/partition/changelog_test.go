package partition

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
	kafkasrc "github.com/ecscorr/ecscorr/sources/kafka"
)

// storeContents is every partition engine key of st and its value.
func storeContents(t *testing.T, st *state.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := st.Iterate([]byte{byte(state.KindPartition)}, func(k, v []byte) error {
		out[string(k)] = string(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// A correlate instance commits three quarters of the demo story to the changelog and
// dies in the middle of its next commit: records of an epoch with no
// marker (one overwriting a key, one creating a key) are left behind. The
// next owner restores exactly the committed state, ignoring the torn
// records, writes those keys again, and goes on: the incidents of both
// equal one engine's over the whole story.
func TestChangelogTornCommitIsIgnoredAndRepaired(t *testing.T) {
	ctx := context.Background()
	set := builtinSet(t)
	fams := Derive(set)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, eventsTopic, changelogTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	log := slog.New(slog.DiscardHandler)

	// The story as the correlate role reads it: one copy per family, at
	// consecutive offsets of partition 0.
	var copies []*pipeline.Event
	for _, ev := range demoEvents(t) {
		for _, f := range fams.Fed(set, ev) {
			cp := *ev
			cp.Family = f.Name
			cp.Pos = pipeline.Position{File: kafkasrc.RecordPos(eventsTopic, 0, int64(len(copies)))}
			copies = append(copies, &cp)
		}
	}
	// A processes the story up to cut, committing at mid and at cut; the
	// offsets Kafka holds are mid's.
	cut, mid := len(copies)*3/4, len(copies)/2

	one, err := engine.New(ctx, set, nil, engine.Options{Ephemeral: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]pipeline.Incident{}
	got := map[string]pipeline.Incident{}
	keep := func(m map[string]pipeline.Incident, incs []pipeline.Incident, err error) {
		if err != nil {
			t.Fatal(err)
		}
		for _, inc := range incs {
			if cur, ok := m[inc.ID]; !ok || pipeline.Newer(inc, cur) {
				m[inc.ID] = inc
			}
		}
	}
	for _, ev := range copies {
		cp := *ev
		incs, err := one.Process(ctx, &cp)
		keep(want, incs, err)
	}
	end := copies[len(copies)-1].Time.Add(lateness)
	incs, err := one.Advance(ctx, end)
	keep(want, incs, err)

	newRouter := func(st *state.Store) *Router {
		rt, err := NewRouter(ctx, set, RouterOptions{Brokers: []string{addr}, Topic: eventsTopic, Changelog: changelogTopic,
			Store: st, Engine: engine.Options{Logger: log, Lateness: lateness}, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	commit := func(rt *Router, st *state.Store) {
		t.Helper()
		b := st.NewBatch()
		if err := rt.CheckpointBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		rt.Committed()
	}

	stA, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer stA.Close()
	a := newRouter(stA)
	a.Assigned(eventsTopic, 0, 0)
	for i, ev := range copies[:cut] {
		cp := *ev
		incs, err := a.Process(ctx, &cp)
		keep(got, incs, err)
		a.Done(&cp) // as the Runner does
		if i == mid {
			commit(a, stA)
		}
	}
	// The watermark reaches the cut (the rest is
	// later): what waited for it is decided, and incidents are open.
	incs, err = a.Advance(ctx, copies[cut-1].Time)
	keep(got, incs, err)
	commit(a, stA)
	committed := storeContents(t, stA)
	var wantOpen []string
	for _, e := range a.parts[0].engines {
		for _, inc := range e.Open() {
			wantOpen = append(wantOpen, inc.ID)
		}
	}
	if len(wantOpen) == 0 {
		t.Fatalf("no incident open up to the cut (%d incidents so far, %d engines)", len(got), len(a.parts[0].engines))
	}
	if len(committed) == 0 {
		t.Fatal("the story up to the cut left no state")
	}
	// The torn commit: one record overwrites a committed key, one makes a
	// key, at an epoch no marker names; then the instance is gone.
	res, err := readChangelog(ctx, []string{addr}, changelogTopic, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.marker.Next != int64(cut) || len(res.torn) != 0 {
		t.Fatalf("changelog up to the cut: marker %+v, %d torn keys", res.marker, len(res.torn))
	}
	overwritten := slices.Sorted(maps.Keys(committed))[0]
	made := string(partitionNS(0, "global")) + "torn"
	ep := []byte(strconv.FormatUint(res.maxEp+1, 10))
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: changelogTopic, RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(ctx,
		kafkago.Message{Key: []byte(overwritten), Value: []byte(`{"torn":true}`), Headers: []kafkago.Header{{Key: epochHeader, Value: ep}}},
		kafkago.Message{Key: []byte(made), Value: []byte(`{"torn":true}`), Headers: []kafkago.Header{{Key: epochHeader, Value: ep}}}); err != nil {
		t.Fatal(err)
	}
	w.Close()

	stB, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer stB.Close()
	b := newRouter(stB)
	defer b.Close(ctx)
	// Kafka's committed offset is at most the marker's: here the middle.
	b.Assigned(eventsTopic, 0, int64(mid+1))
	for i, ev := range copies[mid+1:] {
		cp := *ev
		incs, err := b.Process(ctx, &cp)
		keep(got, incs, err)
		b.Done(&cp)
		if i == 0 {
			if restored := storeContents(t, stB); !maps.Equal(restored, committed) {
				t.Fatalf("restored %d keys, committed %d, or other values", len(restored), len(committed))
			}
			// The restored open incidents are sent again: the dead
			// instance may not have delivered them.
			sent := map[string]bool{}
			for _, inc := range incs {
				sent[inc.ID] = true
			}
			for _, id := range wantOpen {
				if !sent[id] {
					t.Errorf("open incident %s not sent again after the restore", id)
				}
			}
		}
	}
	incs, err = b.Advance(ctx, end)
	keep(got, incs, err)
	st := b.Stats()
	if st.Torn != 2 || st.Rebuilt != 0 || st.Skipped != int64(cut-(mid+1)) || st.Restored != int64(len(committed)) {
		t.Errorf("stats %+v: want 2 torn keys, none rebuilt from the events topic, the %d events below the marker skipped", st, cut-(mid+1))
	}
	if len(got) != len(want) || len(want) != 15 {
		t.Fatalf("%d incidents across the move, one engine %d (the demo has 15)", len(got), len(want))
	}
	for id, w := range want {
		if g := got[id]; viewString(viewOf(g)) != viewString(viewOf(w)) {
			t.Errorf("incident %s differs:\n moved %s\n one   %s", id, viewString(viewOf(g)), viewString(viewOf(w)))
		}
	}
	commit(b, stB)
	res, err = readChangelog(ctx, []string{addr}, changelogTopic, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.torn) != 0 || res.marker.Next != int64(len(copies)) {
		t.Errorf("after the repair and a commit: %d torn keys, marker %+v (want next %d)", len(res.torn), res.marker, len(copies))
	}
}

func viewString(v view) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A partition's engines go no further than its own clock: the Runner's
// per-stream watermarks, by input/topic/partition, hold back only the
// partitions behind; other topics' streams and partitions without a clock
// take the watermark as it is.
func TestRouterAdvancesEachPartitionToItsClock(t *testing.T) {
	r := &Router{opts: RouterOptions{Topic: eventsTopic}}
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	r.StreamWatermarks(map[string]time.Time{
		"kafka:" + eventsTopic + "/" + eventsTopic + "/3": t0,
		"kafka:" + eventsTopic + "/" + eventsTopic + "/4": t0.Add(2 * time.Hour),
		"kafka:other/other/5":                             t0,
		"kafka:" + eventsTopic + "/" + eventsTopic + "/x": t0,
	})
	wm := t0.Add(time.Hour)
	for p, want := range map[int]time.Time{3: t0, 4: wm, 5: wm, 6: wm} {
		if got := r.wmFor(p, wm); !got.Equal(want) {
			t.Errorf("partition %d: %s, want %s", p, got, want)
		}
	}
}
