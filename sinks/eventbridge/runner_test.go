package eventbridge

import (
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/internal/streamtest"
)

func testPolicy() pipeline.DeliveryPolicy {
	pol := DefaultPolicy()
	pol.BackoffBase, pol.BackoffMax, pol.MaxAttempts = time.Millisecond, 2*time.Millisecond, 1000
	return pol
}

func acceptedIncidents(f *fakeBus) []pipeline.Incident {
	_, _, got, _ := f.snapshot()
	out := make([]pipeline.Incident, len(got))
	for i, p := range got {
		out[i] = p.Incident
	}
	return out
}

// The bus fails every call (500s and throttling) while 100 incidents, then
// in a later run 10 updates of them, are committed; after a restart with
// the bus back, all 110 changes arrive, in order per incident, none twice.
func TestOutageThenRecovery(t *testing.T) {
	f, _ := newFakeBus(t, "default")
	f.down = true
	st := streamtest.Store(t)
	// Each run waits 300ms for the bus before it ends, still down.
	streamtest.Run(t, st, streamtest.Events(100), newSink(t, ""), testPolicy(), 300*time.Millisecond)
	r := streamtest.Run(t, st, streamtest.Updates(), newSink(t, ""), testPolicy(), 300*time.Millisecond)
	n := streamtest.Waiting(t, st, "eventbridge")
	calls, _, got, _ := f.snapshot()
	if n != 110 || len(got) != 0 || calls == 0 {
		t.Fatalf("during the outage: %d waiting, %d accepted in %d calls", n, len(got), calls)
	}
	if s := r.SinkStats()["eventbridge"]; s.Depth != 110 || s.Retries == 0 || s.Delivered != 0 || s.DeadLetters != 0 {
		t.Fatalf("stats during the outage: %+v", s)
	}

	f.set(func(f *fakeBus) { f.down = false })
	r = streamtest.Run(t, st, nil, newSink(t, ""), testPolicy(), 10*time.Second)
	noProblems(t, f)
	streamtest.CheckOutageDelivery(t, acceptedIncidents(f))
	if left := streamtest.Waiting(t, st, "eventbridge"); left != 0 {
		t.Fatalf("%d entries left", left)
	}
	if s := r.SinkStats()["eventbridge"]; s.Delivered != 110 || s.Depth != 0 || s.DeadLetters != 0 {
		t.Fatalf("stats after recovery: %+v", s)
	}
	_, sizes, put, _ := f.snapshot()
	for _, k := range sizes {
		if k > MaxEntries {
			t.Fatalf("a call of %d entries", k)
		}
	}
	for _, p := range put {
		if !p.Time.Equal(p.Incident.LastSeen) || len(p.Resources) != 1 || p.Resources[0] != p.Incident.Key["task_arn"] {
			t.Fatalf("%s: time %s resources %q", p.Incident.ID, p.Time, p.Resources)
		}
	}
}

// An incident the bus refuses as MalformedDetail is dead-lettered at its
// first attempt with the reason, the nine others are delivered once, and
// `outbox retry` re-drives it.
func TestPermanentFailureIsDeadLettered(t *testing.T) {
	f, _ := newFakeBus(t, "default")
	f.refuse["inc-e003"] = "MalformedDetail"
	st := streamtest.Store(t)
	r := streamtest.Run(t, st, streamtest.Events(10), newSink(t, ""), testPolicy(), 5*time.Second)
	incs := acceptedIncidents(f)
	if len(incs) != 9 {
		t.Fatalf("%d delivered, want 9", len(incs))
	}
	for _, inc := range incs {
		if inc.ID == "inc-e003" {
			t.Fatal("the refused incident was accepted")
		}
	}
	dead, err := pipeline.ListOutbox(st, "eventbridge", true)
	if err != nil || len(dead) != 1 || dead[0].Incident.ID != "inc-e003" || dead[0].Attempts != 1 ||
		!strings.Contains(dead[0].LastError, "MalformedDetail") {
		t.Fatalf("dead letters %+v (%v)", dead, err)
	}
	if s := r.SinkStats()["eventbridge"]; s.DeadLetters != 1 || s.Dead != 1 || s.Delivered != 9 || s.Depth != 0 {
		t.Fatalf("stats %+v", s)
	}

	f.set(func(f *fakeBus) { delete(f.refuse, "inc-e003") })
	if n, err := pipeline.RetryOutbox(st, "eventbridge"); n != 1 || err != nil {
		t.Fatalf("retry: %d %v", n, err)
	}
	streamtest.Run(t, st, nil, newSink(t, ""), testPolicy(), 5*time.Second)
	if incs := acceptedIncidents(f); len(incs) != 10 || incs[9].ID != "inc-e003" {
		t.Fatalf("after retry: %d delivered", len(incs))
	}
	noProblems(t, f)
}
