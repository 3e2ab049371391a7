package engine

import (
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

const sigmaStopLogging = `title: CloudTrail logging stopped
id: 4db60cc0-36fb-42b7-9b58-a5b53019fb74
status: test
author: someone
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: cloudtrail.amazonaws.com
        eventName:
            - StopLogging
            - DeleteTrail
    condition: selection
level: high
tags:
    - attack.t1562.008
`

// A Sigma rule raises one incident per matching event, whether or not the
// record names an ECS task (no default task_arn key drops it), compares
// case-insensitively as Sigma does (the signal is type-less, so an event
// type spelled differently is still offered), and a second delivery of the
// same event is not a second incident.
func TestSigmaRuleOneIncidentPerEvent(t *testing.T) {
	set, ds := rule.Load([]rule.NamedSource{{Name: "stop.yml", Data: []byte(sigmaStopLogging)}}, rule.LoadOptions{})
	if set == nil {
		t.Fatal(ds)
	}
	if len(set.Rules) != 1 || len(set.Rules[0].By) != 0 || len(set.Signals) != 1 || set.Signals[0].Types != nil {
		t.Fatalf("rules %d by %v signals %d types %v", len(set.Rules), set.Rules[0].By, len(set.Signals), set.Signals[0].Types)
	}
	if p := signalProjection(set.Signals[0]); p.full || len(p.keys) != 2 || p.keys[0] != "eventName" || p.keys[1] != "eventSource" {
		t.Fatalf("projection %+v", p)
	}
	ctEv := func(id string, at time.Duration, task, name string) *pipeline.Event {
		return ev(id, ct, "cloudtrail.amazonaws.com:"+name, at, task,
			`{"eventSource":"cloudtrail.amazonaws.com","eventName":"`+name+`","eventID":"`+id+`","userIdentity":{"type":"Root"}}`)
	}
	evs := []*pipeline.Event{
		ctEv("e1", 0, "", "StopLogging"),                 // no ECS entity at all
		ctEv("e2", time.Second, "", "StopLogging"),       // same key-less rule, its own incident
		ctEv("e2", time.Second, "", "StopLogging"),       // redelivered: not a new incident
		ctEv("e3", 2*time.Second, taskA, "deletetrail"),  // case-insensitive
		ctEv("e4", 3*time.Second, "", "StartLogging"),    // no match
		ev("e5", ct, "x", 4*time.Second, "", `not json`), // bad raw: no match, no panic
	}
	r := newRunner(t, set, nil).feed(evs, false)
	wantBrief(t, r.list(),
		"4db60cc0-36fb-42b7-9b58-a5b53019fb74 open high n=1 0s [match:e1]",
		"4db60cc0-36fb-42b7-9b58-a5b53019fb74 open high n=1 1s [match:e2]",
		"4db60cc0-36fb-42b7-9b58-a5b53019fb74 open high n=1 2s [match:e3]",
	)
	s := r.e.Stats()
	if s.NoKey[set.Rules[0].ID] != 0 || s.Incidents[set.Rules[0].ID] != 3 {
		t.Errorf("noKey %d incidents %d", s.NoKey[set.Rules[0].ID], s.Incidents[set.Rules[0].ID])
	}
	for _, in := range r.list() {
		if in.Title != "CloudTrail logging stopped" {
			t.Errorf("title %q", in.Title)
		}
	}
}
