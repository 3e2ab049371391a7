package engine

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Events the reader judged and left without their record (replay's path
// for the 57 SigmaHQ rules) raise exactly the incidents the same events
// raise with their records, whether or not they were prepared.
func TestJudgedEventsNeedNoRecord(t *testing.T) {
	set := sigmaRuleSet(t, 57)
	run := func(judge, prepare bool) (ids []string, bare int) {
		e, err := New(context.Background(), set, nil, Options{Logger: slog.New(slog.DiscardHandler), Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, base := range invictusEvents(t) {
			ev := *base
			if judge {
				v := set.Judge(ev.Source, ev.Type, pipeline.RawRecord{Data: ev.Raw})
				if !v.Keep {
					continue
				}
				if v.Matched != nil {
					if v.By != set.Fingerprint() {
						t.Fatalf("verdict by %x, set %x", v.By, set.Fingerprint())
					}
					ev.Judged, ev.JudgedBy = v.Matched, v.By
					if !e.RecordNeeded(v.Matched) {
						ev.Raw = nil
						bare++
					}
				}
			}
			if prepare {
				e.Prepare(&ev)
			}
			incs, err := e.Process(context.Background(), &ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, inc := range incs {
				ids = append(ids, inc.Rule+"/"+inc.ID)
			}
		}
		slices.Sort(ids)
		return ids, bare
	}
	want, _ := run(false, false)
	// The 57 rules' hits on the Stratus records (x345 in the bench corpus).
	if len(want) != 109 {
		t.Fatalf("%d incidents with records, want 109", len(want))
	}
	for _, prepare := range []bool{false, true} {
		got, bare := run(true, prepare)
		// Every hit of these rules is a plain match: none keeps its record.
		if bare != 109 || !slices.Equal(got, want) {
			t.Errorf("prepared %v: %d events without records; incidents differ: %d, want %d", prepare, bare, len(got), len(want))
		}
	}
}

// A record is needed when a rule reads it past the match: a Sigma
// correlation groups by a field of the detection's events; the same
// detection alone needs none. A verdict of another set is not used.
func TestRecordNeededByCorrelations(t *testing.T) {
	det := sigmaDet(idFailedLogin, "failed_login", 4625)
	alone := loadSigma(t, det)
	grouped := loadSigma(t, manyFailedLogins(2), det)
	for _, tc := range []struct {
		name string
		set  *rule.Set
		want bool
	}{{"alone", alone, false}, {"grouped", grouped, true}} {
		e, err := New(context.Background(), tc.set, nil, Options{Logger: slog.New(slog.DiscardHandler), Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		ev := ctRec("x1", 0, map[string]any{"EventID": 4625, "ComputerName": "A"})
		v := tc.set.Judge(ev.Source, ev.Type, pipeline.RawRecord{Data: ev.Raw})
		if !v.Keep || v.Matched == nil {
			t.Fatalf("%s: verdict %+v", tc.name, v)
		}
		if got := e.RecordNeeded(v.Matched); got != tc.want {
			t.Errorf("%s: RecordNeeded %v, want %v", tc.name, got, tc.want)
		}
	}
	// Judged by a set that numbers its signals otherwise: ignored, so a
	// bare event matches nothing; by this one, it matches.
	other := loadSigma(t, sigmaDet("6b1e7a52-8a31-4d8e-9a39-8d4f3a2b1c00", "a_first", 1), det)
	e, _ := New(context.Background(), alone, nil, Options{Logger: slog.New(slog.DiscardHandler), Ephemeral: true})
	for _, tc := range []struct {
		by   uint64
		want int
	}{{other.Fingerprint(), 0}, {alone.Fingerprint(), 1}} {
		ev := ctRec("x2", 0, map[string]any{"EventID": 4625})
		ev.Judged, ev.JudgedBy, ev.Raw = []uint64{1}, tc.by, nil
		if incs, _ := e.Process(context.Background(), ev); len(incs) != tc.want {
			t.Errorf("verdict by %x: %d incidents, want %d", tc.by, len(incs), tc.want)
		}
	}
}

// Prepare decides a signal's condition only when it reads no entity: the
// Runner resolves the event's task after Prepare, and a condition on the
// task must see the resolved one.
func TestPrepareLeavesEntityConditionsToProcess(t *testing.T) {
	set, ds := rule.Load([]rule.NamedSource{{Name: "r.yaml", Data: []byte(`apiVersion: ecscorr/v1
kind: RuleFile
signals:
  - name: run_task
    source: cloudtrail
    where: 'raw["eventName"] == "RunTask"'
  - name: run_task_of_a_task
    source: cloudtrail
    where: 'raw["eventName"] == "RunTask" and entity.task_arn != ""'
rules:
  - id: any-run-task
    title: RunTask
    severity: low
    detect:
      match: {signal: run_task}
  - id: run-task-in-task
    title: RunTask from a task
    severity: low
    detect:
      match: {signal: run_task_of_a_task}
`)}}, rule.LoadOptions{})
	if set == nil || ds.HasErrors() {
		t.Fatal(ds)
	}
	e, err := New(context.Background(), set, nil, Options{Logger: slog.New(slog.DiscardHandler), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	x := ev("rt1", ct, "ecs.amazonaws.com:RunTask", 0, "", `{"eventSource":"ecs.amazonaws.com","eventName":"RunTask","eventID":"rt1"}`)
	e.Prepare(x)
	p, _ := x.Prepared.(*prepared)
	if p == nil || !p.judged(set.SignalsByName["run_task"]) || !p.matched(set.SignalsByName["run_task"]) || p.judged(set.SignalsByName["run_task_of_a_task"]) {
		t.Fatalf("prepared %+v: want run_task judged (matched) and run_task_of_a_task left", p)
	}
	x.Entity.TaskARN = "arn:aws:ecs:eu-west-1:111122223333:task/prod/0123456789abcdef0123456789abcdef" // resolved
	incs, err := e.Process(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, inc := range incs {
		got = append(got, inc.Rule)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"any-run-task", "run-task-in-task"}) {
		t.Errorf("incidents %v", got)
	}
}
