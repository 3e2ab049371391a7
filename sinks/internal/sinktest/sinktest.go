// Package sinktest drives sinks through the real pipeline.Runner in
// tests: a finite input of synthetic events and a correlator that turns
// each event into one incident change, the same in every run, so a test
// can split a stream over several runs (an outage, a restart) over one
// state store and know exactly what each sink must receive.
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// T0 is the time of the first incident.
var T0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Account and Region are where incidents happen unless an event says
// otherwise.
const (
	Account = "123456789012"
	Region  = "us-east-1"
)

// ID is the incident id of incident n.
func ID(n int) string { return fmt.Sprintf("inc-e%03d", n) }

// TaskARN is the task of incident n in account.
func TaskARN(account string, n int) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:task/payments-prod/%032x", Region, account, n+1)
}

// GuardDutyID is the GuardDuty finding among incident n's evidence.
func GuardDutyID(n int) string { return fmt.Sprintf("%032x", 0xd00+n) }

// Create is the event that opens incident n, at T0 + n seconds.
func Create(n int, sev pipeline.Severity) *pipeline.Event {
	return &pipeline.Event{ID: fmt.Sprintf("e%03d", n), Source: pipeline.SourceFalco, Type: "Redirect STDOUT/STDIN to Network Connection in Container",
		Time: T0.Add(time.Duration(n) * time.Second), Severity: sev, Entity: pipeline.Entity{Account: Account}}
}

// Update is the k-th change (k ≥ 1) of incident n, at T0 + at: its count
// becomes k+1 and its severity sev; resolve closes it.
func Update(n, k int, sev pipeline.Severity, at time.Duration, resolve bool) *pipeline.Event {
	typ := "update"
	if resolve {
		typ = "resolve"
	}
	return &pipeline.Event{ID: fmt.Sprintf("e%03d.%d", n, k), Source: pipeline.SourceFalco, Type: typ, Time: T0.Add(at), Severity: sev,
		Entity: pipeline.Entity{Account: Account}}
}

// InAccount moves an event's incident into another account.
func InAccount(ev *pipeline.Event, account string) *pipeline.Event {
	ev.Entity.Account = account
	return ev
}

// Incident is the change an event makes.
func Incident(ev *pipeline.Event) pipeline.Incident {
	base, k := ev.ID, 0
	if b, ks, ok := strings.Cut(ev.ID, "."); ok {
		base = b
		k, _ = strconv.Atoi(ks)
	}
	n, _ := strconv.Atoi(strings.TrimPrefix(base, "e"))
	first := T0.Add(time.Duration(n) * time.Second)
	acct := ev.Entity.Account
	inc := pipeline.Incident{
		ID: ID(n), Rule: "ecs-exec-reverse-shell", Title: fmt.Sprintf("Reverse shell in task %d of payments-prod", n),
		Severity: ev.Severity, Tags: []string{"reverse-shell"}, Mitre: []string{"T1059.004", "T1071"},
		Key: map[string]string{"task_arn": TaskARN(acct, n), "account": acct, "region": Region, "cluster": "payments-prod",
			"service": "checkout", "principal": "arn:aws:sts::" + acct + ":assumed-role/DevOpsBreakGlass/mallory",
			"task_definition_arn": "arn:aws:ecs:" + Region + ":" + acct + ":task-definition/checkout:7"},
		FirstSeen: first, LastSeen: ev.Time, Count: k + 1, Status: pipeline.IncidentOpen,
		Summary:     "mallory opened an ECS Exec session, then a shell connected to 203.0.113.45:4444 <C2> & GuardDuty agreed.",
		Remediation: "aws ecs stop-task --cluster payments-prod --task " + TaskARN(acct, n),
		Events: []pipeline.EventRef{
			{Source: pipeline.SourceFalco, ID: fmt.Sprintf("e%03d", n), Type: "Redirect STDOUT/STDIN to Network Connection in Container", Time: first, Step: "shell"},
			{Source: pipeline.SourceGuardDuty, ID: GuardDutyID(n) + "@" + first.Format(time.RFC3339), Type: "Backdoor:Runtime/C&CActivity.B", Time: first, Step: "c2"},
		},
	}
	if k > 0 {
		inc.Events = append(inc.Events, ev.Ref("repeat"))
	}
	if ev.Type == "resolve" {
		inc.Status = pipeline.IncidentResolved
		at := ev.Time
		inc.ResolvedAt = &at
		r := ev.Ref("")
		inc.ResolvedBy = &r
	}
	return inc
}

// Correlator makes one incident change per event.
type Correlator struct{}

func (Correlator) Process(_ context.Context, ev *pipeline.Event) ([]pipeline.Incident, error) {
	return []pipeline.Incident{Incident(ev)}, nil
}
func (Correlator) Advance(context.Context, time.Time) ([]pipeline.Incident, error) { return nil, nil }
func (Correlator) Horizon() time.Duration                                          { return 24 * time.Hour }
func (Correlator) CheckpointBatch(context.Context, pipeline.StateWriter) error     { return nil }

// listInput hands out its events, a few at a time.
type listInput struct{ evs []*pipeline.Event }

func (l *listInput) Name() string                       { return "in" }
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

// Run runs the events through a Runner over st into sink, waiting up to
// drain at the end for the sink to take what is due.
func Run(t *testing.T, st pipeline.StateStore, evs []*pipeline.Event, sink pipeline.Sink, pol pipeline.DeliveryPolicy, drain time.Duration, log *slog.Logger) *pipeline.Runner {
	t.Helper()
	r := runner(t, st, evs, sink, pol, drain, log)
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// RunUntil runs the events like Run and stops the run once until reports
// true (polled every few milliseconds; at most a minute): an outage test
// stops once the sink has failed as often as it wants to see, whatever
// the machine's speed. until should also wait for every change to be in
// the outbox, so that stopping loses no event.
func RunUntil(t *testing.T, st pipeline.StateStore, evs []*pipeline.Event, sink pipeline.Sink, pol pipeline.DeliveryPolicy, log *slog.Logger, until func() bool) *pipeline.Runner {
	t.Helper()
	r := runner(t, st, evs, sink, pol, time.Minute, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer cancel()
		for !until() {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	_, err := r.Run(ctx)
	close(done)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if !until() {
		t.Fatal("the run ended before its condition held")
	}
	return r
}

func runner(t *testing.T, st pipeline.StateStore, evs []*pipeline.Event, sink pipeline.Sink, pol pipeline.DeliveryPolicy, drain time.Duration, log *slog.Logger) *pipeline.Runner {
	t.Helper()
	return NewRunner(t, Correlator{}, st, evs, sink, pol, drain, log)
}

// NewRunner is a Runner of c over evs (handed out a few at a time) into
// sink with pol, committing every millisecond: the one harness every sink
// test drives, whatever its correlator.
func NewRunner(t *testing.T, c pipeline.Correlator, st pipeline.StateStore, evs []*pipeline.Event, sink pipeline.Sink, pol pipeline.DeliveryPolicy, drain time.Duration, log *slog.Logger) *pipeline.Runner {
	t.Helper()
	r, err := pipeline.NewRunner(pipeline.RunnerOptions{
		Inputs: []pipeline.Input{&listInput{evs: evs}}, Correlator: c, Store: st,
		Sinks: []pipeline.Sink{sink}, Delivery: map[string]pipeline.DeliveryPolicy{sink.Name(): pol},
		DrainTimeout: drain, CommitEvery: time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Waiting counts the entries waiting for sink in st's outbox.
func Waiting(st pipeline.StateStore, sink string) int {
	es, _ := pipeline.ListOutbox(st, sink, false)
	return len(es)
}

// Forever is a Pause only the end of its context ends.
const Forever = time.Duration(1<<63 - 1)

// Pause waits d, or until ctx is done; it reports whether d passed. The
// wire fakes answer late with it, and stop waiting for a client gone.
func Pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
