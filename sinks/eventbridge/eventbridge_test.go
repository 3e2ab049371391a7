package eventbridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/file"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	taskARN = "arn:aws:ecs:eu-west-1:111122223333:task/prod/0123456789abcdef0123456789abcdef"
	tdARN   = "arn:aws:ecs:eu-west-1:111122223333:task-definition/web:7"
)

func incident(i int) pipeline.Incident {
	return pipeline.Incident{
		ID: fmt.Sprintf("inc-%03d", i), Rule: "ecs-reverse-shell", Title: "Reverse shell <in> task", Severity: pipeline.SeverityHigh,
		Tags: []string{"ecs"}, Mitre: []string{"T1059.004"}, Key: map[string]string{"task_arn": taskARN},
		Fields:    map[string]any{"task_definition_arn": tdARN},
		FirstSeen: t0, LastSeen: t0.Add(time.Duration(i) * time.Second), Count: 1, Status: pipeline.IncidentOpen,
		Events: []pipeline.EventRef{{Source: pipeline.SourceFalco, ID: fmt.Sprintf("f%d", i), Type: "Reverse shell", Time: t0}},
	}
}

func incidents(n int) []pipeline.Incident {
	out := make([]pipeline.Incident, n)
	for i := range out {
		out[i] = incident(i)
	}
	return out
}

func newSink(t *testing.T, bus string) *Sink {
	t.Helper()
	s, err := New(context.Background(), Config{BusName: bus, ThrottleWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func noProblems(t *testing.T, f *fakeBus) {
	t.Helper()
	if _, _, _, p := f.snapshot(); len(p) != 0 {
		t.Fatalf("%d protocol problems, first: %s", len(p), p[0])
	}
}

// 25 incidents go out in calls of 10, 10 and 5, each event carrying the
// incident's JSONL record, its ARNs and last_seen, signed for "events".
func TestPutEventsEntries(t *testing.T) {
	f, _ := newFakeBus(t, "security")
	s := newSink(t, "security")
	incs := incidents(25)
	if err := s.Deliver(context.Background(), incs); err != nil {
		t.Fatal(err)
	}
	noProblems(t, f)
	calls, sizes, got, _ := f.snapshot()
	if calls != 3 || fmt.Sprint(sizes) != "[10 10 5]" || len(got) != 25 {
		t.Fatalf("%d calls of %v entries, %d events", calls, sizes, len(got))
	}
	for i, p := range got {
		want, _ := file.Record(&incs[i])
		if p.Detail != string(want) {
			t.Fatalf("event %d detail:\n%s\nwant\n%s", i, p.Detail, want)
		}
		if p.Incident.ID != incs[i].ID || !p.Time.Equal(incs[i].LastSeen) {
			t.Fatalf("event %d: %s at %s", i, p.Incident.ID, p.Time)
		}
		if len(p.Resources) != 2 || p.Resources[0] != taskARN || p.Resources[1] != tdARN {
			t.Fatalf("event %d resources %q", i, p.Resources)
		}
	}
	// The same record as replay --format jsonl: HTML is not escaped.
	if !strings.Contains(got[0].Detail, `"title":"Reverse shell <in> task"`) {
		t.Fatalf("detail %s", got[0].Detail)
	}
}

// Entries of ~100 KB go two to a call: the 256 KB limit splits before the
// 10-entry one does.
func TestPutEventsSplitsBySize(t *testing.T) {
	f, _ := newFakeBus(t, "default")
	s := newSink(t, "")
	incs := incidents(5)
	for i := range incs {
		incs[i].Summary = strings.Repeat("x", 100_000)
	}
	if err := s.Deliver(context.Background(), incs); err != nil {
		t.Fatal(err)
	}
	noProblems(t, f)
	calls, sizes, got, _ := f.snapshot()
	if calls != 3 || fmt.Sprint(sizes) != "[2 2 1]" || len(got) != 5 {
		t.Fatalf("%d calls of %v entries, %d events", calls, sizes, len(got))
	}
	if got[0].Size+got[1].Size > MaxRequestBytes || got[0].Size+got[1].Size+got[2].Size <= MaxRequestBytes {
		t.Fatalf("sizes %d %d %d", got[0].Size, got[1].Size, got[2].Size)
	}
}

// An incident whose event alone is over 256 KB loses evidence from the end
// until it fits, and says so in events_dropped; one that cannot fit even
// without evidence is permanent, and neither holds back the others.
func TestPutEventsOversizedEntry(t *testing.T) {
	f, _ := newFakeBus(t, "default")
	s := newSink(t, "")
	incs := incidents(3)
	for j := range 3000 {
		incs[0].Events = append(incs[0].Events, pipeline.EventRef{Source: pipeline.SourceCloudTrail, ID: fmt.Sprintf("ct-%05d", j), Type: "ecs.amazonaws.com:ExecuteCommand", Time: t0})
	}
	incs[0].EventsDropped = 4
	incs[1].Summary = strings.Repeat("y", MaxRequestBytes)
	err := s.Deliver(context.Background(), incs)
	var be *pipeline.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || !errors.Is(be.Failed["inc-001"], pipeline.ErrPermanent) ||
		!strings.Contains(be.Failed["inc-001"].Error(), "over EventBridge's 262144-byte limit even without its evidence") {
		t.Fatalf("err %v", err)
	}
	noProblems(t, f)
	_, _, got, _ := f.snapshot()
	if len(got) != 2 || got[0].Incident.ID != "inc-000" || got[1].Incident.ID != "inc-002" {
		t.Fatalf("%d events", len(got))
	}
	kept := len(got[0].Incident.Events)
	if got[0].Size > MaxRequestBytes || kept == 0 || kept >= 3001 || got[0].Incident.EventsDropped != 4+3001-kept {
		t.Fatalf("trimmed to %d bytes, %d events kept, %d dropped", got[0].Size, kept, got[0].Incident.EventsDropped)
	}
	// The most evidence that fits: one more event would not.
	more := incs[0]
	more.Events = incs[0].Events[:kept+1]
	more.EventsDropped = 4 + 3001 - kept - 1
	if en, _ := s.entryOf(&more); en.size <= MaxRequestBytes {
		t.Fatalf("%d events would fit in %d bytes", kept+1, en.size)
	}
	if got[0].Incident.Events[kept-1].ID != incs[0].Events[kept-1].ID {
		t.Fatalf("evidence kept is not the first %d", kept)
	}
}

// Per-entry failures come back by incident id: MalformedDetail and
// InvalidArgument permanent, ThrottlingException and InternalFailure to be
// retried; the rest of the call went through.
func TestPutEventsEntryFailures(t *testing.T) {
	f, _ := newFakeBus(t, "default")
	f.refuse["inc-003"] = "MalformedDetail"
	f.refuse["inc-004"] = "InvalidArgument"
	f.refuse["inc-005"] = "ThrottlingException"
	f.refuse["inc-007"] = "InternalFailure"
	s := newSink(t, "")
	err := s.Deliver(context.Background(), incidents(10))
	var be *pipeline.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 4 {
		t.Fatalf("err %v", err)
	}
	for id, perm := range map[string]bool{"inc-003": true, "inc-004": true, "inc-005": false, "inc-007": false} {
		if e := be.Failed[id]; e == nil || errors.Is(e, pipeline.ErrPermanent) != perm {
			t.Fatalf("%s: %v (permanent %v)", id, e, perm)
		}
	}
	var ra *pipeline.RetryAfterError
	if !errors.As(be.Failed["inc-005"], &ra) || ra.After != time.Millisecond || !strings.Contains(be.Failed["inc-003"].Error(), "MalformedDetail") {
		t.Fatalf("throttled entry %v, malformed %v", be.Failed["inc-005"], be.Failed["inc-003"])
	}
	noProblems(t, f)
	if calls, _, got, _ := f.snapshot(); calls != 1 || len(got) != 6 {
		t.Fatalf("%d calls, %d accepted", calls, len(got))
	}
}

// A throttled or failing call is retried (after the throttle wait); a call
// refused as invalid is put entry by entry, so only the bad entry is
// permanent.
func TestPutEventsCallFailures(t *testing.T) {
	f, _ := newFakeBus(t, "default")
	s := newSink(t, "")
	f.down = true
	for call, want := range []string{"InternalException", "ThrottlingException"} {
		err := s.Deliver(context.Background(), incidents(3))
		var be *pipeline.BatchError
		if !errors.As(err, &be) || len(be.Failed) != 3 || errors.Is(be.Failed["inc-000"], pipeline.ErrPermanent) ||
			!strings.Contains(be.Failed["inc-002"].Error(), want) {
			t.Fatalf("call %d: %v", call, err)
		}
		var ra *pipeline.RetryAfterError
		if throttled := errors.As(be.Failed["inc-001"], &ra); throttled != (want == "ThrottlingException") {
			t.Fatalf("call %d: throttled %v: %v", call, throttled, be.Failed["inc-001"])
		}
	}
	f.set(func(f *fakeBus) { f.down, f.invalidCall["inc-002"] = false, true })
	err := s.Deliver(context.Background(), incidents(4))
	var be *pipeline.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || !errors.Is(be.Failed["inc-002"], pipeline.ErrPermanent) ||
		!strings.Contains(be.Failed["inc-002"].Error(), "ValidationException") {
		t.Fatalf("invalid call: %v", err)
	}
	// 2 failed calls, the refused one, then 4 one-entry calls.
	calls, _, got, _ := f.snapshot()
	if calls != 7 || len(got) != 3 {
		t.Fatalf("%d calls, %d accepted", calls, len(got))
	}
	noProblems(t, f)
}

// A throttled call stops the delivery: the calls it did not make and the
// entries it did not put are all to be retried, none taken as delivered.
func TestPutEventsThrottleStopsDelivery(t *testing.T) {
	f, _ := newFakeBus(t, "default")
	s := newSink(t, "")
	f.throttleFrom = 2
	err := s.Deliver(context.Background(), incidents(25))
	var be *pipeline.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 15 {
		t.Fatalf("err %v", err)
	}
	for i := 10; i < 25; i++ {
		var ra *pipeline.RetryAfterError
		if e := be.Failed[fmt.Sprintf("inc-%03d", i)]; !errors.As(e, &ra) {
			t.Fatalf("inc-%03d: %v", i, e)
		}
	}
	if calls, _, got, _ := f.snapshot(); calls != 2 || len(got) != 10 {
		t.Fatalf("%d calls, %d accepted", calls, len(got))
	}

	// Throttled while putting an invalid call's entries one by one.
	f, _ = newFakeBus(t, "default")
	s = newSink(t, "")
	f.invalidCall["inc-002"], f.throttleFrom = true, 3
	err = s.Deliver(context.Background(), incidents(4))
	if !errors.As(err, &be) || len(be.Failed) != 3 || be.Failed["inc-000"] != nil {
		t.Fatalf("err %v", err)
	}
	for _, id := range []string{"inc-001", "inc-002", "inc-003"} {
		var ra *pipeline.RetryAfterError
		if e := be.Failed[id]; !errors.As(e, &ra) {
			t.Fatalf("%s: %v", id, e)
		}
	}
	if calls, _, got, _ := f.snapshot(); calls != 3 || len(got) != 1 || got[0].Incident.ID != "inc-000" {
		t.Fatalf("%d calls, %d accepted", calls, len(got))
	}
	noProblems(t, f)
}

func TestNewNeedsRegion(t *testing.T) {
	newFakeBus(t, "default")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	if _, err := New(context.Background(), Config{}); err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Fatalf("err %v", err)
	}
	s, err := New(context.Background(), Config{Region: testRegion})
	if err != nil || s.Name() != "eventbridge" || s.bus != "default" || s.source != "ecscorr" || s.Mode() != pipeline.SinkStream {
		t.Fatalf("%+v %v", s, err)
	}
}
