// Package streamtest is sinktest's harness (sinktest.NewRunner) with a
// simpler model, for the EventBridge and Kafka tests: a correlator opening
// one incident per event, and the checks every sink must pass (an outage then recovery delivers everything once and in
// order per incident; a permanent failure is dead-lettered alone).
package streamtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/internal/sinktest"
)

// T0 is the time of the first event.
var T0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// PerEvent opens one incident per event, id "inc-<event id>", keyed by a
// task ARN, its summary the event's type; an event whose id ends in "+"
// updates the incident of the id before it (count 2).
type PerEvent struct{}

// TaskARN is the task of the incident of event id.
func TaskARN(id string) string {
	return "arn:aws:ecs:eu-west-1:111122223333:task/prod/" + strings.TrimSuffix(id, "+")
}

func (PerEvent) Process(_ context.Context, ev *pipeline.Event) ([]pipeline.Incident, error) {
	id, count := ev.ID, 1
	if base, ok := strings.CutSuffix(ev.ID, "+"); ok {
		id, count = base, 2
	}
	return []pipeline.Incident{{ID: "inc-" + id, Rule: "r", Title: "incident of " + id, Severity: ev.Severity,
		Key: map[string]string{"task_arn": TaskARN(id)}, Summary: ev.Type, FirstSeen: ev.Time, LastSeen: ev.Time, Count: count,
		Status: pipeline.IncidentOpen, Events: []pipeline.EventRef{ev.Ref("")}}}, nil
}
func (PerEvent) Advance(context.Context, time.Time) ([]pipeline.Incident, error) { return nil, nil }
func (PerEvent) Horizon() time.Duration                                          { return time.Hour }
func (PerEvent) CheckpointBatch(context.Context, pipeline.StateWriter) error     { return nil }

// Events are n events e000, e001, ... a second apart.
func Events(n int) []*pipeline.Event {
	evs := make([]*pipeline.Event, n)
	for i := range evs {
		evs[i] = &pipeline.Event{ID: fmt.Sprintf("e%03d", i), Source: pipeline.SourceFalco, Type: "t", Time: T0.Add(time.Duration(i) * time.Second), Severity: pipeline.SeverityHigh}
	}
	return evs
}

// Updates change every tenth incident of Events(100) again (inc-e000,
// inc-e010, ...: count 2), later in event time.
func Updates() []*pipeline.Event {
	var evs []*pipeline.Event
	for i := 0; i < 100; i += 10 {
		evs = append(evs, &pipeline.Event{ID: fmt.Sprintf("e%03d+", i), Source: pipeline.SourceFalco, Type: "t", Time: T0.Add(time.Duration(100+i) * time.Second), Severity: pipeline.SeverityHigh})
	}
	return evs
}

// Store is an in-memory Badger state store, closed with the test.
func Store(t *testing.T) *state.Store {
	t.Helper()
	st, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Runner is a Runner of PerEvent over evs delivering to sink with pol.
func Runner(t *testing.T, st pipeline.StateStore, evs []*pipeline.Event, sink pipeline.Sink, pol pipeline.DeliveryPolicy, drain time.Duration) *pipeline.Runner {
	t.Helper()
	return sinktest.NewRunner(t, PerEvent{}, st, evs, sink, pol, drain, nil)
}

// Run runs a Runner to its end.
func Run(t *testing.T, st pipeline.StateStore, evs []*pipeline.Event, sink pipeline.Sink, pol pipeline.DeliveryPolicy, drain time.Duration) *pipeline.Runner {
	t.Helper()
	r := Runner(t, st, evs, sink, pol, drain)
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// CheckOutageDelivery checks what the target received after an outage
// during which Events(100) and then, in another commit, Updates() were
// committed: 110 changes of 100 incidents, each one's changes in order
// and none twice.
func CheckOutageDelivery(t *testing.T, got []pipeline.Incident) {
	t.Helper()
	if len(got) != 110 {
		t.Fatalf("%d changes delivered, want 110", len(got))
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
}

// Waiting is the number of outbox entries waiting for sink.
func Waiting(t *testing.T, st pipeline.StateStore, sink string) int {
	t.Helper()
	left, err := pipeline.ListOutbox(st, sink, false)
	if err != nil {
		t.Fatal(err)
	}
	return len(left)
}
