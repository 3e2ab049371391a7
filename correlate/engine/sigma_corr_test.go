package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Sigma correlation rules, from the specification's examples (the base
// detections' logsource rewritten to aws/cloudtrail, field names kept:
// the records are CloudTrail-shaped and carry the example's fields).

// sigmaDet is a CloudTrail detection on EventID values, with a name.
func sigmaDet(id, name string, eventIDs ...int) string {
	var vals []string
	for _, v := range eventIDs {
		vals = append(vals, fmt.Sprintf("            - %d", v))
	}
	return fmt.Sprintf(`title: %s
id: %s
name: %s
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        EventID:
%s
    condition: selection
`, name, id, name, strings.Join(vals, "\n"))
}

func loadSigma(t testing.TB, files ...string) *rule.Set {
	t.Helper()
	var srcs []rule.NamedSource
	for i, f := range files {
		srcs = append(srcs, rule.NamedSource{Name: fmt.Sprintf("f%d.yml", i+1), Data: []byte(f)})
	}
	set, ds := rule.Load(srcs, rule.LoadOptions{})
	if set == nil {
		t.Fatalf("load: %v", ds)
	}
	return set
}

// ctRec is a CloudTrail-shaped event at t0+at carrying fields.
func ctRec(id string, at time.Duration, fields map[string]any) *pipeline.Event {
	m := map[string]any{"eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin", "eventID": id}
	for k, v := range fields {
		m[k] = v
	}
	raw, _ := json.Marshal(m)
	return ev(id, ct, "signin.amazonaws.com:ConsoleLogin", at, "", string(raw))
}

// keyOf renders an incident's key sorted: "User=alice".
func keyOf(in pipeline.Incident) string {
	var parts []string
	for k, v := range in.Key {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// briefK is brief with the key.
func briefK(incs []pipeline.Incident) []string {
	var out []string
	for _, in := range incs {
		var ids []string
		for _, ev := range in.Events {
			ids = append(ids, ev.Step+":"+ev.ID)
		}
		out = append(out, fmt.Sprintf("%s {%s} %s n=%d %s..%s [%s]", in.Rule, keyOf(in), in.Severity, in.Count,
			in.FirstSeen.Sub(t0), in.LastSeen.Sub(t0), strings.Join(ids, " ")))
	}
	slices.Sort(out)
	return out
}

func wantK(t testing.TB, got []pipeline.Incident, want ...string) {
	t.Helper()
	b := briefK(got)
	slices.Sort(want)
	if !slices.Equal(b, want) {
		t.Errorf("incidents:\n got %s\nwant %s", strings.Join(b, "\n     "), strings.Join(want, "\n     "))
	}
}

// seq makes n events named prefix1..prefixN, step apart from start.
func seqEvents(prefix string, n int, start, step time.Duration, fields map[string]any) []*pipeline.Event {
	var out []*pipeline.Event
	for i := 0; i < n; i++ {
		out = append(out, ctRec(fmt.Sprintf("%s%d", prefix, i+1), start+time.Duration(i)*step, fields))
	}
	return out
}

func byTime(evs []*pipeline.Event) []*pipeline.Event {
	slices.SortStableFunc(evs, func(a, b *pipeline.Event) int { return a.Time.Compare(b.Time) })
	return evs
}

const (
	idFailed  = "53ba33fd-3a50-4468-a5ef-c583635cfa92"
	idSuccess = "4d0a2c83-c62c-4ed4-b475-c7e23a9269b8"
	idMany    = "a8418a5a-5fc4-46b5-b23b-6c73beb19d41"
	idChain   = "b180ead8-d58f-40b2-ae54-c8940995b9b6"
)

// The specification's final example, as one multi-document file.
var sigmaChainFile = `title: Correlation - Multiple Failed Logins Followed by Successful Login
id: ` + idChain + `
status: experimental
description: Detects multiple failed logins by a single user followed by a successful login of that user
references:
    - https://reference.com
author: Florian Roth (Nextron Systems)
date: 2023-06-16
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
falsepositives:
    - Unlikely
level: high
---
title: Multiple failed logons
id: ` + idMany + `
description: Detects multiple failed logins within a certain amount of time
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
---
` + sigmaDet(idFailed, "failed_login", 529, 4625) + `---
` + sigmaDet(idSuccess, "successful_login", 528, 4624)

func failed(user string) map[string]any  { return map[string]any{"EventID": 4625, "User": user} }
func success(user string) map[string]any { return map[string]any{"EventID": 4624, "User": user} }

// innerID is the id of the (silent) event_count firing for user whose
// window starts with event first: the derived event's id.
func innerID(user, first string) string { return IncidentID(idMany, idMany+"/"+user, first) }

// TestSigmaChainFailedThenSuccess: the chained example. Only the outer
// correlation raises incidents (no generate): its first step is the
// derived hit of the event_count correlation (id: that firing's incident
// id, time: the 10th failure), its second the successful login.
func TestSigmaChainFailedThenSuccess(t *testing.T) {
	set := loadSigma(t, sigmaChainFile)
	if len(set.Rules) != 2 {
		t.Fatalf("rules %d, want the two correlations (detections referred to, no generate)", len(set.Rules))
	}
	var evs []*pipeline.Event
	// alice: 10 failures 1m apart (0..9m), success at 12m: one incident.
	evs = append(evs, seqEvents("a", 10, 0, time.Minute, failed("alice"))...)
	evs = append(evs, ctRec("as", 12*time.Minute, success("alice")))
	// bob: one failure short.
	evs = append(evs, seqEvents("b", 9, 0, time.Minute, failed("bob"))...)
	evs = append(evs, ctRec("bs", 10*time.Minute, success("bob")))
	// carol: 10 failures, success exactly timespan after the 10th (9m): fires.
	evs = append(evs, seqEvents("c", 10, 0, time.Minute, failed("carol"))...)
	evs = append(evs, ctRec("cs", 19*time.Minute, success("carol")))
	// dave: success one second too late.
	evs = append(evs, seqEvents("d", 10, 0, time.Minute, failed("dave"))...)
	evs = append(evs, ctRec("ds", 19*time.Minute+time.Second, success("dave")))
	// erin: success before the failures only.
	evs = append(evs, ctRec("es", 0, success("erin")))
	evs = append(evs, seqEvents("e", 10, time.Second, time.Second, failed("erin"))...)
	// frank: 10 failures, the 10th exactly timespan after the first (0,
	// then 2m..10m): the first has left the window, no inner hit.
	evs = append(evs, ctRec("f1", 0, failed("frank")))
	evs = append(evs, seqEvents("fx", 9, 2*time.Minute, time.Minute, failed("frank"))...)
	evs = append(evs, ctRec("fs", 11*time.Minute, success("frank")))
	byTime(evs)

	r := newRunner(t, set, nil).feed(evs, true).advance(time.Hour)
	wantK(t, r.list(),
		idChain+" {User=alice} high n=1 9m0s..12m0s [multiple_failed_login:"+innerID("alice", "a1")+" successful_login:as]",
		idChain+" {User=carol} high n=1 9m0s..19m0s [multiple_failed_login:"+innerID("carol", "c1")+" successful_login:cs]",
	)
	s := r.e.Stats()
	if s.Incidents[idMany] != 0 || s.SignalHits["sigma_"+strings.ReplaceAll(idMany, "-", "_")] != 4 {
		t.Errorf("inner incidents %d (want 0: silent), derived hits %d (want alice, carol, dave, erin)",
			s.Incidents[idMany], s.SignalHits["sigma_"+strings.ReplaceAll(idMany, "-", "_")])
	}
	for _, in := range r.list() {
		if in.Title != "Correlation - Multiple Failed Logins Followed by Successful Login" {
			t.Errorf("title %q", in.Title)
		}
	}
}

var _ = context.Background
var _ = rand.New
var _ = state.OpenInMemory
