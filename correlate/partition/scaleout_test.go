package partition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/rules"
	"github.com/ecscorr/ecscorr/sources/archive"
	kafkasrc "github.com/ecscorr/ecscorr/sources/kafka"
)

const eventsTopic = "ecscorr-events"

// lateness of the correlate instances: the story spans less.
const lateness = 24 * time.Hour

func builtinSet(t testing.TB) *rule.Set {
	t.Helper()
	set, ds := rule.LoadFS(rules.Builtin, rule.LoadOptions{})
	if set == nil || ds.HasErrors() {
		t.Fatal(ds)
	}
	return set
}

// demoEvents reads the bundled demo story.
func demoEvents(t testing.TB) []*pipeline.Event {
	t.Helper()
	var evs []*pipeline.Event
	var mu sync.Mutex
	rd := archive.NewReader(archive.Options{})
	err := rd.Read(context.Background(), []string{filepath.Join("..", "..", "testdata", "demo")}, func(ev *pipeline.Event) error {
		mu.Lock()
		evs = append(evs, ev)
		mu.Unlock()
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(evs, func(i, j int) bool { return pipeline.Less(evs[i], evs[j]) })
	return evs
}

func readAll(evs []*pipeline.Event) pipeline.ReadFunc {
	return func(ctx context.Context, emit func(*pipeline.Event) error) error {
		for _, ev := range evs {
			cp := *ev
			if err := emit(&cp); err != nil {
				return err
			}
		}
		return nil
	}
}

// memSink keeps the latest state of every incident it is given.
type memSink struct {
	name string
	mu   sync.Mutex
	incs map[string]pipeline.Incident
}

func (s *memSink) Name() string            { return s.name }
func (s *memSink) Mode() pipeline.SinkMode { return pipeline.SinkStream }
func (s *memSink) Close(context.Context) error {
	return nil
}
func (s *memSink) Deliver(_ context.Context, incs []pipeline.Incident) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inc := range incs {
		s.incs[inc.ID] = inc
	}
	return nil
}

func (s *memSink) snapshot() map[string]pipeline.Incident {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]pipeline.Incident, len(s.incs))
	for k, v := range s.incs {
		out[k] = v
	}
	return out
}

// correlator is one correlate instance: a kafka input in the group, a
// Router, a Runner.
type correlator struct {
	name   string
	cancel context.CancelFunc
	done   chan error
	sink   *memSink
	router *Router
	in     *kafkasrc.Input
	runner *pipeline.Runner
}

// changelogTopic is the correlate instances' changelog, when they use one.
const changelogTopic = "ecscorr-changelog"

func startCorrelator(t *testing.T, name, addr string, set *rule.Set, changelog bool) *correlator {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("instance", name)
	}
	st, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	ro := RouterOptions{Brokers: []string{addr}, Topic: eventsTopic, Engine: engine.Options{Logger: log}, Logger: log}
	if changelog {
		ro.Changelog, ro.Store = changelogTopic, st
	}
	rt, err := NewRouter(ctx, set, ro)
	if err != nil {
		t.Fatal(err)
	}
	in, err := kafkasrc.New(kafkasrc.Options{
		Name: "kafka:" + eventsTopic, Brokers: []string{addr}, Topics: []string{eventsTopic}, Group: "ecscorr",
		Format: kafkasrc.FormatEvents, OnAssign: rt.Assigned, OnRevoke: rt.Revoked,
		HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 3 * time.Second,
		JoinGroupBackoff: 100 * time.Millisecond, MaxWait: 100 * time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{name: "mem", incs: map[string]pipeline.Incident{}}
	r, err := pipeline.NewRunner(pipeline.RunnerOptions{
		Inputs: []pipeline.Input{in}, Correlator: rt, Store: st, Sinks: []pipeline.Sink{sink},
		Delivery:        map[string]pipeline.DeliveryPolicy{"mem": {AllRoutes: true}},
		DefaultLateness: lateness, IdleAfter: time.Second, CommitEvery: 100 * time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &correlator{name: name, cancel: cancel, done: make(chan error, 1), sink: sink, router: rt, in: in, runner: r}
	go func() {
		_, err := r.Run(ctx)
		err = errors.Join(err, rt.Close(context.Background()))
		st.Close()
		c.done <- err
	}()
	return c
}

func (c *correlator) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop", c.name)
	}
}

// publish runs an ingest instance (the archive input through the Runner
// with a Publisher) over evs.
func publish(t *testing.T, addr string, set *rule.Set, evs []*pipeline.Event) PublishStats {
	t.Helper()
	pub, err := NewPublisher(set, PublisherOptions{Brokers: []string{addr}, Topic: eventsTopic})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	st, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, _, err := pipeline.Replay(context.Background(), readAll(evs), pub, pipeline.ReplayOptions{Store: st}); err != nil {
		t.Fatal(err)
	}
	return pub.Stats()
}

// tails are events of no family at one time, one per partition, that
// move every correlate instance's watermark to that time less the
// lateness.
func tails(at time.Time, parts int) []*pipeline.Event {
	var out []*pipeline.Event
	for p := range parts {
		out = append(out, &pipeline.Event{ID: fmt.Sprintf("tail-%d", p), Source: pipeline.SourceCloudTrail, Type: "ecscorr:tail",
			Time: at, Family: "tail", Raw: []byte(`{}`)})
	}
	return out
}

func writeTails(t *testing.T, addr string, evs []*pipeline.Event) {
	t.Helper()
	for p, ev := range evs {
		conn, err := kafkago.DialLeader(context.Background(), "tcp", addr, eventsTopic, p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := pipeline.MarshalEventJSON(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteMessages(kafkago.Message{Value: v}); err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
}

// view is what must be equal between one process and many: the
// incident's identity, content and evidence.
type view struct {
	ID, Rule, Title, Status string
	Severity                pipeline.Severity
	Key                     map[string]string
	Count                   int
	FirstSeen, LastSeen     time.Time
	Evidence                []string
}

func viewOf(inc pipeline.Incident) view {
	v := view{ID: inc.ID, Rule: inc.Rule, Title: inc.Title, Status: string(inc.Status), Severity: inc.Severity,
		Key: inc.Key, Count: inc.Count, FirstSeen: inc.FirstSeen.UTC(), LastSeen: inc.LastSeen.UTC()}
	for _, e := range inc.Events {
		v.Evidence = append(v.Evidence, string(e.Source)+":"+e.ID)
	}
	return v
}

// union merges the instances' incidents: an incident whose key moved has
// versions from several instances (pipeline.Newer picks the latest).
func union(cs []*correlator) map[string]view {
	latest := map[string]pipeline.Incident{}
	for _, c := range cs {
		for id, inc := range c.sink.snapshot() {
			if cur, ok := latest[id]; !ok || pipeline.Newer(inc, cur) {
				latest[id] = inc
			}
		}
	}
	out := make(map[string]view, len(latest))
	for id, inc := range latest {
		out[id] = viewOf(inc)
	}
	return out
}

// One ingest and three correlate instances over the demo story, one
// correlate instance stopped after the first half and another joining:
// the incidents (ids, rules, keys, severities, evidence) equal one process
// replaying the same events. The moved partitions' state is rebuilt from
// the events topic, or restored from a changelog.
func TestScaleOutEqualsOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a Kafka cluster and four consumer group members")
	}
	for _, changelog := range []bool{false, true} {
		t.Run(map[bool]string{false: "rebuilt from the events topic", true: "restored from the changelog"}[changelog], func(t *testing.T) {
			scaleOutEqualsOneProcess(t, changelog)
		})
	}
}

func scaleOutEqualsOneProcess(t *testing.T, changelog bool) {
	const parts = 6
	set := builtinSet(t)
	evs := demoEvents(t)
	// Tails, one per partition, a lateness after the end of each half of
	// the story, move every instance's watermark to that end, whatever
	// order the partitions are read in. One process decides up to the end.
	end := evs[len(evs)-1].Time
	tl := tails(end.Add(lateness), parts)
	half := len(evs) / 2
	mid := tails(evs[half-1].Time.Add(lateness), parts)
	for _, ev := range mid {
		ev.ID = "mid-" + ev.ID
	}

	eng, err := engine.New(context.Background(), set, nil, engine.Options{Ephemeral: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ref, _, _, err := pipeline.Replay(context.Background(), readAll(evs), eng,
		pipeline.ReplayOptions{Archive: pipeline.ArchiveOptions{Until: end.Add(time.Nanosecond)}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]view{}
	for _, inc := range ref {
		want[inc.ID] = viewOf(inc)
	}
	if len(want) != 15 {
		t.Fatalf("one process gives %d incidents, want the demo's 15", len(want))
	}

	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, eventsTopic, changelogTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]

	cs := []*correlator{startCorrelator(t, "c1", addr, set, changelog), startCorrelator(t, "c2", addr, set, changelog), startCorrelator(t, "c3", addr, set, changelog)}
	defer func() {
		for _, c := range cs {
			c.cancel()
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	wait := func(what string, done func() bool) {
		t.Helper()
		for !done() {
			if time.Now().After(deadline) {
				for _, c := range cs {
					t.Logf("%s: router %+v\n input %+v\n runner %+v", c.name, c.router.Stats(), c.in.Stats(), c.runner.Stats())
				}
				t.Fatalf("%s: not in 60s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	sum := func(f func(c *correlator) int64) (n int64) {
		for _, c := range cs {
			n += f(c)
		}
		return n
	}
	// The group settles before anything is published: an instance that
	// held every partition for a moment would commit offsets the victim
	// below then no longer owns, and its stop would move no state.
	wait("the group settling", func() bool {
		n := 0
		for _, c := range cs {
			k := len(c.in.Streams())
			if k == 0 {
				return false
			}
			n += k
		}
		return n == parts
	})
	st1 := publish(t, addr, set, evs[:half])
	// The first half is read (in batches of its own), then the mid tails
	// move the watermarks to its end: it is processed and committed.
	wait("reading the first half", func() bool { return sum(func(c *correlator) int64 { return c.in.Stats().Messages }) >= st1.Copies })
	writeTails(t, addr, mid)
	wait("processing the first half", func() bool { return sum(func(c *correlator) int64 { return c.router.Stats().Events }) >= st1.Copies })
	// The instance holding the most stops, once its offsets are committed
	// to Kafka: the next owners of its partitions rebuild what it held.
	victim := 0
	for i, c := range cs {
		if c.router.Stats().Events > cs[victim].router.Stats().Events {
			victim = i
		}
	}
	v := cs[victim]
	wait("committing the first half", func() bool { return v.in.Stats().Commits > 0 })
	held := v.router.Stats().Events
	v.stop(t)
	t.Logf("%s stopped holding %d events", v.name, held)
	cs = append(cs, startCorrelator(t, "c4", addr, set, changelog))
	st2 := publish(t, addr, set, evs[half:])
	if st1.Ticks == 0 || st1.Ticks%parts != 0 {
		t.Errorf("%d ticks published, want some on each of the %d partitions", st1.Ticks, parts)
	}
	writeTails(t, addr, tl)
	t.Logf("published %d events as %d copies (%d bytes, %.1f copies and %.0f bytes per event)",
		st1.Events+st2.Events, st1.Copies+st2.Copies, st1.Bytes+st2.Bytes,
		float64(st1.Copies+st2.Copies)/float64(st1.Events+st2.Events), float64(st1.Bytes+st2.Bytes)/float64(st1.Events+st2.Events))

	var got map[string]view
	deadline = time.Now().Add(90 * time.Second)
	for {
		got = union(cs)
		if equalViews(got, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var rebuilt, restored, written int64
	for _, c := range cs {
		st := c.router.Stats()
		rebuilt += st.Rebuilt
		restored += st.Restored
		written += st.ChangelogRecords
		t.Logf("%s: %d events, %d partitions rebuilt from %d events, %d keys restored, %d changelog records written",
			c.name, st.Events, st.Rebuilds, st.Rebuilt, st.Restored, st.ChangelogRecords)
	}
	switch {
	case held == 0:
		t.Errorf("%s processed no event before it stopped: the test did not move state", v.name)
	case !changelog && rebuilt == 0:
		t.Errorf("%s processed %d events before it stopped, none was replayed to rebuild state: the test did not move state", v.name, held)
	case changelog && (restored == 0 || written == 0):
		t.Errorf("%d changelog records written, %d keys restored: the state did not move through the changelog", written, restored)
	case changelog && rebuilt != 0:
		t.Errorf("%d events replayed from the events topic: the changelog should hold everything below the committed offsets", rebuilt)
	}
	if !equalViews(got, want) {
		for _, c := range cs {
			t.Logf("%s: router %+v, input %+v, %d incidents; runner %+v", c.name, c.router.Stats(), c.in.Stats(), len(c.sink.snapshot()), c.runner.Stats())
		}
		for id, w := range want {
			g, ok := got[id]
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(w)
			if !ok {
				t.Errorf("missing: %s (%s)", id, w.Rule)
			} else if string(gb) != string(wb) {
				t.Errorf("differs: %s\n many %s\n one  %s", id, gb, wb)
			}
		}
		for id, g := range got {
			if _, ok := want[id]; !ok {
				t.Errorf("only with many: %s (%s)", id, g.Rule)
			}
		}
	}
}

func equalViews(a, b map[string]view) bool {
	if len(a) != len(b) {
		return false
	}
	for id, v := range a {
		w, ok := b[id]
		if !ok {
			return false
		}
		vb, _ := json.Marshal(v)
		wb, _ := json.Marshal(w)
		if string(vb) != string(wb) {
			return false
		}
	}
	return true
}
