package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// perEvent opens one incident per event, id "inc-<event id>"; an event
// whose id ends in "+" updates the incident of the id before it.
type perEvent struct{}

func (perEvent) Process(_ context.Context, ev *pipeline.Event) ([]pipeline.Incident, error) {
	id, count := ev.ID, 1
	if base, ok := strings.CutSuffix(ev.ID, "+"); ok {
		id, count = base, 2
	}
	return []pipeline.Incident{{ID: "inc-" + id, Rule: "r", Severity: ev.Severity, FirstSeen: ev.Time, LastSeen: ev.Time, Count: count, Status: pipeline.IncidentOpen}}, nil
}
func (perEvent) Advance(context.Context, time.Time) ([]pipeline.Incident, error) { return nil, nil }
func (perEvent) Horizon() time.Duration                                          { return time.Hour }
func (perEvent) CheckpointBatch(context.Context, pipeline.StateWriter) error     { return nil }

type listInput struct {
	name string
	evs  []*pipeline.Event
}

func (l *listInput) Name() string                       { return l.name }
func (l *listInput) Open(context.Context, []byte) error { return nil }
func (l *listInput) Close(context.Context) error        { return nil }
func (l *listInput) Read(context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	if len(l.evs) == 0 {
		return pipeline.Batch{}, nil, io.EOF
	}
	n := min(7, len(l.evs))
	b := l.evs[:n]
	l.evs = l.evs[n:]
	return pipeline.Batch{Events: b}, pipeline.NoAck, nil
}

func events(n int, sev pipeline.Severity) []*pipeline.Event {
	evs := make([]*pipeline.Event, n)
	for i := range evs {
		evs[i] = &pipeline.Event{ID: fmt.Sprintf("e%03d", i), Source: pipeline.SourceFalco, Type: "t", Time: t0.Add(time.Duration(i) * time.Second), Severity: sev}
	}
	return evs
}

// flakySink fails while down, and permanently for the ids in bad.
type flakySink struct {
	mu    sync.Mutex
	down  bool
	bad   map[string]bool
	calls int
	got   []pipeline.Incident
}

func (s *flakySink) Name() string            { return "flaky" }
func (s *flakySink) Mode() pipeline.SinkMode { return pipeline.SinkStream }
func (s *flakySink) Close(context.Context) error {
	return nil
}
func (s *flakySink) Deliver(_ context.Context, incs []pipeline.Incident) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.down {
		return &pipeline.RetryAfterError{After: time.Millisecond, Err: errors.New("503 service unavailable")}
	}
	failed := map[string]error{}
	for _, inc := range incs {
		if s.bad[inc.ID] {
			failed[inc.ID] = pipeline.Permanent(errors.New("invalid_blocks"))
			continue
		}
		s.got = append(s.got, inc)
	}
	if len(failed) > 0 {
		return &pipeline.BatchError{Failed: failed}
	}
	return nil
}

func (s *flakySink) delivered() []pipeline.Incident {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func run(t *testing.T, st pipeline.StateStore, evs []*pipeline.Event, sink pipeline.Sink, pol pipeline.DeliveryPolicy, drain time.Duration) *pipeline.Runner {
	t.Helper()
	r, err := pipeline.NewRunner(pipeline.RunnerOptions{
		Inputs: []pipeline.Input{&listInput{name: "in", evs: evs}}, Correlator: perEvent{}, Store: st,
		Sinks: []pipeline.Sink{sink}, Delivery: map[string]pipeline.DeliveryPolicy{"flaky": pol},
		DrainTimeout: drain, CommitEvery: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// An outage as long as 100 incidents, then recovery: all 100 arrive, in
// order per incident, none twice.
func TestOutboxOutageThenRecovery(t *testing.T) {
	st, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs := events(100, pipeline.SeverityHigh)
	// Every tenth incident changes again: its two changes must arrive in order.
	for i := 0; i < 100; i += 10 {
		evs = append(evs, &pipeline.Event{ID: fmt.Sprintf("e%03d+", i), Source: pipeline.SourceFalco, Type: "t", Time: t0.Add(time.Duration(100+i) * time.Second), Severity: pipeline.SeverityHigh})
	}
	sink := &flakySink{down: true}
	pol := pipeline.DeliveryPolicy{BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond, MaxAttempts: 1000, BatchSize: 10}
	r := run(t, st, evs, sink, pol, 0)
	if got := len(sink.delivered()); got != 0 {
		t.Fatalf("%d delivered during the outage", got)
	}
	// Changes of one incident within one commit coalesce into its latest
	// state, so there are 100 to 110 entries.
	left, err := pipeline.ListOutbox(st, "flaky", false)
	n := len(left)
	if err != nil || n < 100 || n > 110 {
		t.Fatalf("outbox holds %d entries (%v), want 100 to 110", n, err)
	}
	if s := r.SinkStats()["flaky"]; s.Depth != n || s.Delivered != 0 {
		t.Fatalf("stats during the outage: %+v, outbox %d", s, n)
	}
	// The service comes back; a restart resumes delivery from the outbox.
	sink.mu.Lock()
	sink.down = false
	sink.mu.Unlock()
	r = run(t, st, nil, sink, pol, 5*time.Second)
	got := sink.delivered()
	if len(got) != n {
		t.Fatalf("%d of %d changes delivered", len(got), n)
	}
	last := map[string]int{}
	for _, inc := range got {
		if c, ok := last[inc.ID]; ok && c >= inc.Count {
			t.Fatalf("%s delivered twice or out of order (count %d after %d)", inc.ID, inc.Count, c)
		}
		last[inc.ID] = inc.Count
	}
	if len(last) != 100 {
		t.Fatalf("%d distinct incidents, want 100", len(last))
	}
	for i := 0; i < 100; i += 10 {
		if c := last[fmt.Sprintf("inc-e%03d", i)]; c != 2 {
			t.Fatalf("the update of inc-e%03d was lost (last count %d)", i, c)
		}
	}
	if left, _ := pipeline.ListOutbox(st, "flaky", false); len(left) != 0 {
		t.Fatalf("%d entries left after delivery", len(left))
	}
	if s := r.SinkStats()["flaky"]; s.Delivered != uint64(n) || s.Depth != 0 {
		t.Fatalf("stats after recovery: %+v", s)
	}
}

// A permanently failing incident is dead-lettered with its reason at the
// first attempt and does not hold back the others; retry re-drives it.
func TestOutboxPermanentFailureIsDeadLettered(t *testing.T) {
	st, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sink := &flakySink{bad: map[string]bool{"inc-e003": true}}
	pol := pipeline.DeliveryPolicy{BackoffBase: time.Millisecond, BatchSize: 4}
	r := run(t, st, events(10, pipeline.SeverityHigh), sink, pol, 5*time.Second)
	if got := len(sink.delivered()); got != 9 {
		t.Fatalf("%d delivered, want 9", got)
	}
	dead, err := pipeline.ListOutbox(st, "flaky", true)
	if err != nil || len(dead) != 1 || dead[0].Incident.ID != "inc-e003" || dead[0].Attempts != 1 ||
		!strings.Contains(dead[0].LastError, "invalid_blocks") || !errors.Is(pipeline.Permanent(errors.New("x")), pipeline.ErrPermanent) {
		t.Fatalf("dead letters %+v (%v)", dead, err)
	}
	if s := r.SinkStats()["flaky"]; s.DeadLetters != 1 || s.Dead != 1 || s.Delivered != 9 {
		t.Fatalf("stats %+v", s)
	}
	// The payload is fixed; retry re-drives it on the next run.
	sink.mu.Lock()
	sink.bad = nil
	sink.mu.Unlock()
	if n, err := pipeline.RetryOutbox(st, "flaky"); n != 1 || err != nil {
		t.Fatalf("retry: %d %v", n, err)
	}
	run(t, st, nil, sink, pol, 5*time.Second)
	if got := sink.delivered(); len(got) != 10 || got[9].ID != "inc-e003" {
		t.Fatalf("after retry: %d delivered", len(got))
	}
	if dead, _ := pipeline.ListOutbox(st, "flaky", true); len(dead) != 0 {
		t.Fatalf("%d dead letters left", len(dead))
	}
}

// Attempts run out: dead-lettered with the count in the reason. The
// minimum severity keeps low incidents away from the sink entirely.
func TestOutboxAttemptsAndMinSeverity(t *testing.T) {
	st, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sink := &flakySink{down: true}
	evs := append(events(3, pipeline.SeverityHigh), &pipeline.Event{ID: "low", Source: pipeline.SourceFalco, Type: "t", Time: t0.Add(time.Hour), Severity: pipeline.SeverityLow})
	pol := pipeline.DeliveryPolicy{BackoffBase: time.Millisecond, BackoffMax: time.Millisecond, MaxAttempts: 3, BatchSize: 10, MinSeverity: pipeline.SeverityMedium}
	r := run(t, st, evs, sink, pol, 5*time.Second)
	dead, _ := pipeline.ListOutbox(st, "flaky", true)
	if len(dead) != 3 || !strings.HasPrefix(dead[0].LastError, "after 3 attempts: 503") {
		t.Fatalf("dead letters: %+v", dead)
	}
	if s := r.SinkStats()["flaky"]; s.Retries != 6 || s.DeadLetters != 3 {
		t.Fatalf("stats %+v", s)
	}
	if n, err := pipeline.DropOutbox(st, "flaky", true); n != 3 || err != nil {
		t.Fatalf("drop: %d %v", n, err)
	}
}

// A run with stream sinks only (live mode) keeps no final copy of its
// incidents: it would grow with every incident ever raised. KeepFinal (a
// finite run's report) keeps the latest version of each.
func TestRunnerKeepsFinalOnlyWhenAsked(t *testing.T) {
	evs := events(50, pipeline.SeverityHigh)
	evs = append(evs, &pipeline.Event{ID: "e007+", Source: pipeline.SourceFalco, Type: "t", Time: t0.Add(time.Hour), Severity: pipeline.SeverityHigh})
	for _, keep := range []bool{false, true} {
		sink := &flakySink{}
		r, err := pipeline.NewRunner(pipeline.RunnerOptions{
			Inputs: []pipeline.Input{&listInput{name: "in", evs: evs}}, Correlator: perEvent{},
			Sinks: []pipeline.Sink{sink}, DrainTimeout: 5 * time.Second, CommitEvery: time.Millisecond, KeepFinal: keep,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := len(sink.delivered()); got < 50 {
			t.Fatalf("keep=%v: %d changes delivered, want at least 50", keep, got)
		}
		final := r.Final()
		switch {
		case !keep && len(final) != 0:
			t.Errorf("without KeepFinal the runner kept %d incidents", len(final))
		case keep && len(final) != 50:
			t.Errorf("with KeepFinal %d incidents, want 50", len(final))
		case keep:
			for _, inc := range final {
				if inc.ID == "inc-e007" && inc.Count != 2 {
					t.Errorf("inc-e007 kept at count %d, want its latest (2)", inc.Count)
				}
			}
		}
	}
}
