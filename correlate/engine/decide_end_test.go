package engine

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// At the end of a finite input, DecideAtEnd decides the windows that wait
// for their close on the events they hold: an event_count lt 3 (A with 1
// event, B with 2 fire; C with 3 does not), a temporal "at most one of
// the two rules" (A, B, C saw failures only; D saw both); a sequence
// waiting for an absent last step is left open; a second call decides
// nothing; and the clock does not move.
func TestDecideAtEnd(t *testing.T) {
	files := []string{fewFailedLogins, `title: At most one kind
id: one-kind
correlation:
    type: temporal
    rules: [failed_login, good_login]
    group-by: [ComputerName]
    timespan: 10m
    condition: {lte: 1}
`, sigmaDet(idFailedLogin, "failed_login", 4625), sigmaDet("3e0b7a3c-0000-4000-8000-00000000e0d1", "good_login", 4624),
		`apiVersion: ecscorr/v1
kind: RuleFile
signals:
  - {name: fail, source: cloudtrail, where: 'raw.EventID == 4625'}
  - {name: good, source: cloudtrail, where: 'raw.EventID == 4624'}
rules:
  - id: fail-no-good
    title: failure without success
    severity: low
    by: [{name: host, expr: 'raw.ComputerName'}]
    detect:
      sequence:
        maxspan: 2h
        steps:
          - {as: f, signal: fail}
          - {absent: good, for: 1h}
`}
	evs := byTime([]*pipeline.Event{
		ctRec("a1", 0, evHost("A")),
		ctRec("b1", time.Minute, evHost("B")), ctRec("b2", 4*time.Minute, evHost("B")),
		ctRec("c1", 2*time.Minute, evHost("C")), ctRec("c2", 5*time.Minute, evHost("C")), ctRec("c3", 8*time.Minute, evHost("C")),
		ctRec("d1", 3*time.Minute, evHost("D")), ctRec("d2", 6*time.Minute, evHost("D", "EventID", 4624)),
	})
	r := newRunner(t, loadSigma(t, files...), nil).feed(evs, true)
	if n := len(r.list()); n != 0 {
		t.Fatalf("decided before the end (every window ends after 8m): %q", briefK(r.list()))
	}
	ctx := context.Background()
	r.take(r.e.DecideAtEnd(ctx))
	got := briefK(r.list())
	for i := range got {
		got[i] = strings.ReplaceAll(got[i], "sigma_5638f7c0_ac70_491d_8465_2a65075e0d86:", "F:") // the detection's signal
	}
	if want := []string{
		"few-failed {ComputerName=A} medium n=1 0s..10m0s [F:a1]",
		"few-failed {ComputerName=B} medium n=1 1m0s..11m0s [F:b1 F:b2]",
		"few-failed {ComputerName=D} medium n=1 3m0s..13m0s [F:d1]",
		"one-kind {ComputerName=A} medium n=1 0s..10m0s [F:a1]",
		"one-kind {ComputerName=B} medium n=1 1m0s..11m0s [F:b1 F:b2]",
		"one-kind {ComputerName=C} medium n=1 2m0s..12m0s [F:c1 F:c2 F:c3]",
	}; !slices.Equal(got, want) {
		t.Errorf("incidents:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if got := r.e.Stats().DecidedAtEnd; got != 8 {
		t.Errorf("DecidedAtEnd = %d, want 8 (4 event_count windows, 4 temporal)", got)
	}
	before := len(r.list())
	r.take(r.e.DecideAtEnd(ctx))
	if len(r.list()) != before || r.e.Stats().DecidedAtEnd != 8 {
		t.Errorf("a second DecideAtEnd decided again: %q", briefK(r.list()))
	}
	// The sequences (A, B, C wait for the absent good login until 1h
	// after their failures) are still open: the clock did not move, and
	// they fire when it passes their deadline.
	r.advance(3 * time.Hour)
	n := 0
	for _, in := range r.list() {
		if in.Rule == "fail-no-good" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("fail-no-good incidents after the clock passed their deadlines: %d, want 3 (A, B, C)", n)
	}
}

// A keyless rule's incident (a Sigma detection: one per event) shows the
// event's entity as its key, so that sinks and filters know whom it
// concerns; an event that names nothing gives an empty key.
func TestKeylessIncidentShowsEntity(t *testing.T) {
	set := loadSigma(t, sigmaDet(idFailedLogin, "failed_login", 4625))
	r := newRunner(t, set, nil)
	a := ctRec("a1", 0, evHost("A"))
	a.Entity = pipeline.Entity{Account: "111122223333", Region: "eu-west-1", Principal: "arn:aws:iam::111122223333:user/alice"}
	task := "arn:aws:ecs:eu-west-1:111122223333:task/prod/0123456789abcdef0123456789abcdef"
	b := ev("b1", ct, "signin.amazonaws.com:ConsoleLogin", time.Minute, task, `{"EventID":4625,"eventID":"b1"}`)
	c := ctRec("c1", 2*time.Minute, evHost("C"))
	r.feed([]*pipeline.Event{a, b, c}, true)
	got := map[string]string{}
	for _, in := range r.list() {
		got[in.Events[0].ID] = keyOf(in)
	}
	want := map[string]string{
		"a1": "account=111122223333,principal=arn:aws:iam::111122223333:user/alice,region=eu-west-1",
		"b1": "account=111122223333,cluster=prod,region=eu-west-1,task_arn=" + task,
		"c1": "",
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: key %q, want %q", id, got[id], w)
		}
	}
	if len(got) != 3 {
		t.Errorf("incidents %v", got)
	}
}

// A Sigma correlation's key is its group-by values, plus the account and
// region of the event that completed it (sinks route by them).
func TestSigmaCorrelationKeyNamesAccount(t *testing.T) {
	set := loadSigma(t, `title: Many failed logins
id: many-failed
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [ComputerName]
    timespan: 10m
    condition: {gte: 2}
`, sigmaDet(idFailedLogin, "failed_login", 4625))
	var evs []*pipeline.Event
	for i, id := range []string{"a1", "a2"} {
		e := ctRec(id, time.Duration(i)*time.Minute, evHost("A"))
		e.Entity = pipeline.Entity{Account: "111122223333", Region: "eu-west-1", Principal: "arn:aws:iam::111122223333:user/alice"}
		evs = append(evs, e)
	}
	r := newRunner(t, set, nil).feed(evs, true)
	incs := r.list()
	if len(incs) != 1 {
		t.Fatalf("incidents %q", briefK(incs))
	}
	if got := keyOf(incs[0]); got != "ComputerName=A,account=111122223333,region=eu-west-1" {
		t.Errorf("key %q", got)
	}
}
