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

// sigmaSel is a CloudTrail detection with a name on one field value.
func sigmaSel(id, name, field string, value any) string {
	return fmt.Sprintf(`title: %s
id: %s
name: %s
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        %s: %v
    condition: selection
`, name, id, name, field, value)
}

const idFailedLogin = "5638f7c0-ac70-491d-8465-2a65075e0d86"

func evHost(host string, more ...any) map[string]any {
	m := map[string]any{"EventID": 4625, "ComputerName": host}
	for i := 0; i+1 < len(more); i += 2 {
		m[more[i].(string)] = more[i+1]
	}
	return m
}

// event_count, the specification's example: 100 failed logins on one
// host within 1h, by id. The 100th fires at once (a lower bound); 99 do
// not; 100 whose first and last are exactly 1h apart do not (the window
// holds the events of the last hour, (t-1h, t]); a record without
// ComputerName joins no group.
// manyFailedLogins is the spec's event_count example: at least gte failed
// logins per ComputerName within an hour.
func manyFailedLogins(gte int) string {
	return fmt.Sprintf(`title: Many failed logins
id: 0e95725d-7320-415d-80f7-004da920fc11
correlation:
    type: event_count
    rules:
        - %s
    group-by:
        - ComputerName
    timespan: 1h
    condition:
        gte: %d
`, idFailedLogin, gte)
}

func TestSigmaEventCount(t *testing.T) {
	set := loadSigma(t, manyFailedLogins(100), sigmaDet(idFailedLogin, "failed_login", 4625))
	var evs []*pipeline.Event
	evs = append(evs, seqEvents("a", 100, 0, 30*time.Second, evHost("A"))...)
	evs = append(evs, seqEvents("b", 99, 0, 30*time.Second, evHost("B"))...)
	evs = append(evs, seqEvents("c", 100, 0, time.Hour/99, evHost("C"))...)
	evs[len(evs)-1].Time = t0.Add(time.Hour) // c100 exactly 1h after c1
	evs = append(evs, ctRec("nohost", time.Minute, map[string]any{"EventID": 4625}))
	byTime(evs)
	r := newRunner(t, set, nil).feed(evs, true).advance(3 * time.Hour)
	inc := r.list()
	if len(inc) != 1 {
		t.Fatalf("incidents %q", briefK(inc))
	}
	in := inc[0]
	if in.Rule != "0e95725d-7320-415d-80f7-004da920fc11" || keyOf(in) != "ComputerName=A" || in.Severity != pipeline.SeverityMedium ||
		len(in.Events) != 50 || in.EventsDropped != 50 || in.Events[0].ID != "a1" || in.Events[49].ID != "a50" ||
		in.LastSeen != t0.Add(99*30*time.Second) {
		t.Errorf("incident %s events %d dropped %d", briefK(inc), len(in.Events), in.EventsDropped)
	}
	if n := r.e.Stats().NoKey[in.Rule]; n != 1 {
		t.Errorf("NoKey %d, want 1 (the record without ComputerName)", n)
	}
	// The detection is referred to (no generate): it raises nothing itself.
	if n := r.e.Stats().Incidents[idFailedLogin]; n != 0 {
		t.Errorf("detection incidents %d", n)
	}
}

// An upper bound is decided when the window closes: a window opens at the
// key's first event, spans the timespan, and is decided once the watermark
// passes its end (or an event at or after the end arrives); the next
// window opens at the next event.
func TestSigmaEventCountUpperBoundAtClose(t *testing.T) {
	src := func(cond string) []string {
		return []string{`title: Few failed logins
id: few-failed
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [ComputerName]
    timespan: 10m
    condition:
` + cond, sigmaDet(idFailedLogin, "failed_login", 4625)}
	}
	set := loadSigma(t, src("        lte: 2\n")...)
	r := newRunner(t, set, nil)
	// A: 2 events in [0, 10m); B: 3 events; C: 1 event, then one exactly at
	// the window end (10m), which opens the next window.
	r.feed(byTime([]*pipeline.Event{
		ctRec("a1", 0, evHost("A")), ctRec("a2", 9*time.Minute, evHost("A")),
		ctRec("b1", 0, evHost("B")), ctRec("b2", time.Minute, evHost("B")), ctRec("b3", 2*time.Minute, evHost("B")),
		ctRec("c1", 0, evHost("C")), ctRec("c2", 10*time.Minute, evHost("C")),
	}), false)
	// Nothing is decided before the watermark passes the end (10m).
	r.advance(9 * time.Minute)
	r.advance(10 * time.Minute)
	// c2 at exactly 10m decided C's first window on arrival.
	wantK(t, r.list(), "few-failed {ComputerName=C} medium n=1 0s..10m0s [sigma_5638f7c0_ac70_491d_8465_2a65075e0d86:c1]")
	r.advance(10*time.Minute + time.Nanosecond)
	wantK(t, r.list(),
		"few-failed {ComputerName=A} medium n=1 0s..10m0s [sigma_5638f7c0_ac70_491d_8465_2a65075e0d86:a1 sigma_5638f7c0_ac70_491d_8465_2a65075e0d86:a2]",
		"few-failed {ComputerName=C} medium n=1 0s..10m0s [sigma_5638f7c0_ac70_491d_8465_2a65075e0d86:c1]")
	r.advance(20*time.Minute + time.Nanosecond) // C's second window: c2 alone
	wantK(t, r.list(),
		"few-failed {ComputerName=A} medium n=1 0s..10m0s [sigma_5638f7c0_ac70_491d_8465_2a65075e0d86:a1 sigma_5638f7c0_ac70_491d_8465_2a65075e0d86:a2]",
		"few-failed {ComputerName=C} medium n=1 0s..10m0s [sigma_5638f7c0_ac70_491d_8465_2a65075e0d86:c1]",
		"few-failed {ComputerName=C} medium n=1 10m0s..20m0s [sigma_5638f7c0_ac70_491d_8465_2a65075e0d86:c2]")

	// neq: every window whose count is not 2. eq: exactly 2. A range.
	for _, c := range []struct {
		cond string
		want []string
	}{
		{"        neq: 2\n", []string{"B", "C", "C"}},
		{"        eq: 2\n", []string{"A"}},
		{"        gt: 1\n        lte: 3\n", []string{"A", "B"}},
	} {
		r := newRunner(t, loadSigma(t, src(c.cond)...), nil)
		r.feed(byTime([]*pipeline.Event{
			ctRec("a1", 0, evHost("A")), ctRec("a2", 9*time.Minute, evHost("A")),
			ctRec("b1", 0, evHost("B")), ctRec("b2", time.Minute, evHost("B")), ctRec("b3", 2*time.Minute, evHost("B")),
			ctRec("c1", 0, evHost("C")), ctRec("c2", 10*time.Minute, evHost("C")),
		}), true).advance(time.Hour)
		var got []string
		for _, in := range r.list() {
			got = append(got, in.Key["ComputerName"])
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("condition %q: incidents on %v, want %v", c.cond, got, c.want)
		}
	}
}

// fewFailedLogins is an upper-bound correlation: fewer than 3 failed
// logins per host in 10 minutes, decided when each window closes.
const fewFailedLogins = `title: Few failed logins
id: few-failed
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [ComputerName]
    timespan: 10m
    condition: {lt: 3}
`

// The upper-bound window survives a restart (its end and events are key
// state; the timer is re-armed), and out-of-order arrival within the
// lateness (through the reorder buffer) changes nothing.
func TestSigmaWindowCloseRestartAndReorder(t *testing.T) {
	files := []string{fewFailedLogins, sigmaDet(idFailedLogin, "failed_login", 4625)}
	var evs []*pipeline.Event
	for i, h := range []string{"A", "B", "C", "D", "E"} {
		evs = append(evs, seqEvents(h, i+1, time.Duration(i)*time.Minute, 3*time.Minute, evHost(h))...)
	}
	byTime(evs)
	end := 2 * time.Hour
	want := newRunner(t, loadSigma(t, files...), nil).feed(evs, true).advance(end)
	// A (1 event), B (2), and E's second window (E5 alone); C has 3, D's
	// window [3m, 13m) 4, E's first [4m, 14m) 4.
	if got := len(want.list()); got != 3 {
		t.Fatalf("incidents %q", briefK(want.list()))
	}
	ctx := context.Background()
	dir := t.TempDir()
	st, err := state.Open(dir, state.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	cut := 4 // A's and B's windows are open
	r := newRunner(t, loadSigma(t, files...), st).feed(evs[:cut], true)
	if len(r.list()) != 0 {
		t.Fatalf("decided early: %q", briefK(r.list()))
	}
	if err := r.e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = state.Open(dir, state.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r2 := newRunner(t, loadSigma(t, files...), st)
	r2.feed(evs[cut:], true).advance(end)
	sameIncidents(t, "restart", r2.list(), want.list())

	const lateness = 2 * time.Minute
	rng := rand.New(rand.NewPCG(7, 11))
	type arr struct {
		ev *pipeline.Event
		at time.Time
	}
	var arrivals []arr
	for _, e := range evs {
		cp := *e
		arrivals = append(arrivals, arr{&cp, e.Time.Add(time.Duration(rng.Int64N(int64(lateness))))})
	}
	slices.SortStableFunc(arrivals, func(a, b arr) int { return a.at.Compare(b.at) })
	r3 := newRunner(t, loadSigma(t, files...), nil)
	var rb pipeline.ReorderBuffer
	process := func(ev *pipeline.Event) error { r3.take(r3.e.Process(ctx, ev)); return nil }
	for i, a := range arrivals {
		a.ev.Seq = uint64(i)
		if !rb.Push(a.ev) {
			t.Fatalf("late %s", a.ev.ID)
		}
		wm := a.at.Add(-lateness)
		if err := rb.Release(wm, process); err != nil {
			t.Fatal(err)
		}
		r3.take(r3.e.Advance(ctx, wm))
	}
	if err := rb.Release(t0.Add(end), process); err != nil {
		t.Fatal(err)
	}
	r3.advance(end)
	sameIncidents(t, "reordered", r3.list(), want.list())
}

// value_count, the specification's example: more than 100 distinct users
// failing per source and destination within a day; a record without
// WorkstationName joins no group, one without User is not counted.
func TestSigmaValueCount(t *testing.T) {
	set := loadSigma(t, `title: Failed login
id: 0e95725d-7320-415d-80f7-004da920fc12
correlation:
    type: value_count
    rules:
        - `+idFailedLogin+`
    group-by:
        - ComputerName
        - WorkstationName
    timespan: 1d
    condition:
        field: User
        gte: 100
`, sigmaDet(idFailedLogin, "failed_login", 4625))
	var evs []*pipeline.Event
	for i := 1; i <= 100; i++ {
		// W1: users u1..u99 twice each, then u100: fires on the 199th event.
		if i < 100 {
			evs = append(evs, ctRec(fmt.Sprintf("w%da", i), time.Duration(i)*time.Minute, evHost("A", "WorkstationName", "W1", "User", fmt.Sprintf("u%d", i))))
			evs = append(evs, ctRec(fmt.Sprintf("w%db", i), time.Duration(i)*time.Minute+time.Second, evHost("A", "WorkstationName", "W1", "User", fmt.Sprintf("u%d", i))))
		}
		// W2: 99 distinct users and one event without User: no.
		if i < 100 {
			evs = append(evs, ctRec(fmt.Sprintf("x%d", i), time.Duration(i)*time.Minute, evHost("A", "WorkstationName", "W2", "User", fmt.Sprintf("u%d", i))))
		} else {
			evs = append(evs, ctRec("x100", time.Duration(i)*time.Minute, evHost("A", "WorkstationName", "W2")))
		}
	}
	evs = append(evs, ctRec("w100", 101*time.Minute, evHost("A", "WorkstationName", "W1", "User", "u100")))
	evs = append(evs, ctRec("nows", 101*time.Minute, evHost("A", "User", "zz")))
	byTime(evs)
	r := newRunner(t, set, nil).feed(evs, true).advance(48 * time.Hour)
	inc := r.list()
	if len(inc) != 1 || keyOf(inc[0]) != "ComputerName=A,WorkstationName=W1" {
		t.Fatalf("incidents %q", briefK(inc))
	}
	// Evidence: one event per distinct user (the earliest), capped at 50.
	in := inc[0]
	if len(in.Events) != 50 || in.EventsDropped != 50 || in.Events[0].ID != "w1a" || in.Events[1].ID != "w2a" {
		t.Errorf("evidence %d dropped %d first %v", len(in.Events), in.EventsDropped, in.Events[:2])
	}
	if n := r.e.Stats().NoKey[in.Rule]; n != 1 {
		t.Errorf("NoKey %d", n)
	}
}

// value_count over a tuple of fields (AND): distinct (User, Domain) pairs.
func TestSigmaValueCountTuple(t *testing.T) {
	set := loadSigma(t, `title: Pairs
id: pairs
correlation:
    type: value_count
    rules: [failed_login]
    group-by: [ComputerName]
    timespan: 1h
    condition:
        field: [User, Domain]
        gte: 3
`, sigmaDet(idFailedLogin, "failed_login", 4625))
	evs := []*pipeline.Event{
		ctRec("p1", 0, evHost("A", "User", "u1", "Domain", "d1")),
		ctRec("p2", time.Second, evHost("A", "User", "u1", "Domain", "d2")),
		ctRec("p3", 2*time.Second, evHost("A", "User", "u1", "Domain", "d1")), // repeat
		ctRec("p4", 3*time.Second, evHost("A", "User", "u2")),                 // no Domain: not counted
		ctRec("p5", 4*time.Second, evHost("A", "User", "u2", "Domain", "d1")), // third pair: fires
	}
	r := newRunner(t, set, nil).feed(evs, true).advance(2 * time.Hour)
	s := "sigma_5638f7c0_ac70_491d_8465_2a65075e0d86:"
	wantK(t, r.list(), "pairs {ComputerName=A} medium n=1 0s..4s ["+s+"p1 "+s+"p2 "+s+"p5]")
}

// value_sum, the specification's example: more than 1,000,000 bytes sent
// per source and user within an hour. A numeric string counts (as Sigma's
// numeric comparisons read it); text, an absent field and an array are
// not aggregated (nor counted).
func TestSigmaValueSum(t *testing.T) {
	set := loadSigma(t, `title: Possible Exfiltration to Website
correlation:
    type: value_sum
    rules:
        - website_access
    group-by:
        - SourceIP
        - User
    timespan: 1h
    condition:
        field: bytes_sent
        gt: 1000000
`, sigmaSel("0b9b1e0e-0000-4000-8000-000000000001", "website_access", "EventID", 80))
	web := func(ip, user string, bytes any) map[string]any {
		m := map[string]any{"EventID": 80, "SourceIP": ip, "User": user}
		if bytes != nil {
			m["bytes_sent"] = bytes
		}
		return m
	}
	evs := []*pipeline.Event{
		ctRec("s1", 0, web("10.0.0.1", "alice", 600000)),
		ctRec("s2", time.Minute, web("10.0.0.1", "alice", "lots")),          // text: ignored
		ctRec("s3", 2*time.Minute, web("10.0.0.1", "alice", nil)),           // absent
		ctRec("s4", 3*time.Minute, web("10.0.0.1", "alice", []any{1e6, 1})), // array: ignored
		ctRec("s5", 4*time.Minute, web("10.0.0.1", "alice", "400000")),      // sum 1,000,000: not > 1e6
		ctRec("s6", 5*time.Minute, web("10.0.0.1", "alice", 1)),             // 1,000,001: fires
		ctRec("t1", 0, web("10.0.0.2", "alice", 999999)),
		ctRec("t2", time.Hour, web("10.0.0.2", "alice", 999999)), // t1 left the window
	}
	r := newRunner(t, set, nil).feed(byTime(evs), true).advance(3 * time.Hour)
	s := "sigma_0b9b1e0e_0000_4000_8000_000000000001:"
	wantK(t, r.list(), "sigma-f1 {SourceIP=10.0.0.1,User=alice} medium n=1 0s..5m0s ["+s+"s1 "+s+"s5 "+s+"s6]")
}

// value_avg, the specification's example: an average BytesOut above 500
// per source and user within 24h, decided when the window closes (an
// average a later value can lower is not known before; the first value
// alone above 500 is not "the average over the period").
func TestSigmaValueAvg(t *testing.T) {
	set := loadSigma(t, `title: Suspicious average network traffic
id: avg-traffic
correlation:
    type: value_avg
    rules:
        - rule_a_id
    group-by:
        - SourceIP
        - User
    timespan: 24h
    condition:
        field: BytesOut
        gt: 500
`, sigmaSel("0b9b1e0e-0000-4000-8000-000000000002", "rule_a_id", "EventID", 3))
	net := func(user string, b any) map[string]any {
		return map[string]any{"EventID": 3, "SourceIP": "10.1.1.1", "User": user, "BytesOut": b}
	}
	evs := []*pipeline.Event{
		ctRec("v1", 0, net("alice", 400)),
		ctRec("v2", time.Hour, net("alice", "n/a")), // not a number: not averaged
		ctRec("v3", 2*time.Hour, net("alice", 600)), // avg 500: not > 500
		ctRec("v4", 3*time.Hour, net("alice", 503)), // avg 501: holds at the close
		ctRec("w1", 0, net("bob", 500)),
		ctRec("w2", time.Hour, net("bob", 500)),
		ctRec("x1", 0, net("carol", 900)), // 900 at first: not the window's average
		ctRec("x2", time.Hour, net("carol", 50)),
	}
	r := newRunner(t, set, nil).feed(byTime(evs), true).advance(48 * time.Hour)
	s := "sigma_0b9b1e0e_0000_4000_8000_000000000002:"
	wantK(t, r.list(), "avg-traffic {SourceIP=10.1.1.1,User=alice} medium n=1 0s..24h0m0s ["+s+"v1 "+s+"v3 "+s+"v4]")
	if a := r.list()[0]; a.Fields != nil {
		t.Logf("fields %v", a.Fields)
	}
}

// value_percentile, the specification's example read as a rare-value
// detection: an image whose share of the host's process creations in the
// 24h window is at most 1 %, decided when the window closes.
func TestSigmaValuePercentile(t *testing.T) {
	set := loadSigma(t, `title: A computer spawned a processes name in the last 24h than 1% of all the processes.
id: rare-image
correlation:
    type: value_percentile
    rules:
        - process_creation
    group-by:
        - ComputerName
    timespan: 24h
    condition:
        field: image
        lte: 1
`, sigmaSel("0b9b1e0e-0000-4000-8000-000000000003", "process_creation", "EventID", 1))
	proc := func(host, image string) map[string]any {
		return map[string]any{"EventID": 1, "ComputerName": host, "image": image}
	}
	var evs []*pipeline.Event
	// A: 99 svchost.exe and one evil.exe (1 %): evil.exe is the finding.
	for i := 1; i <= 99; i++ {
		evs = append(evs, ctRec(fmt.Sprintf("a%d", i), time.Duration(i)*time.Minute, proc("A", "svchost.exe")))
	}
	evs = append(evs, ctRec("evil", 100*time.Minute, proc("A", "evil.exe")))
	// B: 98 + 2 of a second image (2 %): nothing.
	for i := 1; i <= 98; i++ {
		evs = append(evs, ctRec(fmt.Sprintf("b%d", i), time.Duration(i)*time.Minute, proc("B", "svchost.exe")))
	}
	evs = append(evs, ctRec("b99", 99*time.Minute, proc("B", "cmd.exe")), ctRec("b100", 100*time.Minute, proc("B", "cmd.exe")))
	r := newRunner(t, set, nil).feed(byTime(evs), true)
	r.advance(24*time.Hour + time.Minute) // A's window [1m, 24h+1m) is still open
	if len(r.list()) != 0 {
		t.Fatalf("decided before the window closed: %q", briefK(r.list()))
	}
	r.advance(24*time.Hour + time.Minute + time.Nanosecond)
	wantK(t, r.list(), "rare-image {ComputerName=A} medium n=1 1h40m0s..24h1m0s [sigma_0b9b1e0e_0000_4000_8000_000000000003:evil]")
}

func recon(host, user, cmd string) map[string]any {
	return map[string]any{"EventID": 1, "ComputerName": host, "User": user, "cmd": cmd}
}

func reconFiles(typ string, cond string) []string {
	return []string{`title: Recon
id: recon
correlation:
    type: ` + typ + `
    rules:
        - recon_cmd_a
        - recon_cmd_b
        - recon_cmd_c
    group-by:
        - ComputerName
        - User
    timespan: 5m
` + cond,
		sigmaSel("0b9b1e0e-0000-4000-8000-00000000000a", "recon_cmd_a", "cmd", "whoami"),
		sigmaSel("0b9b1e0e-0000-4000-8000-00000000000b", "recon_cmd_b", "cmd", "ipconfig"),
		sigmaSel("0b9b1e0e-0000-4000-8000-00000000000c", "recon_cmd_c", "cmd", "netstat")}
}

// temporal, the specification's example: the three recon commands in any
// order within 5 minutes on one host by one user. A span of exactly 5m
// still matches (temporal windows include both ends); two of three, or
// another user, do not.
func TestSigmaTemporal(t *testing.T) {
	set := loadSigma(t, reconFiles("temporal", "")...)
	evs := []*pipeline.Event{
		ctRec("a3", 0, recon("H", "alice", "netstat")),
		ctRec("a1", time.Minute, recon("H", "alice", "whoami")),
		ctRec("a2", 5*time.Minute, recon("H", "alice", "ipconfig")), // exactly 5m after a3
		ctRec("b1", 0, recon("H", "bob", "whoami")),
		ctRec("b2", time.Minute, recon("H", "bob", "ipconfig")),
		ctRec("c3", time.Minute, recon("H", "carol", "netstat")),
		ctRec("x1", 2*time.Minute, recon("H", "dave", "whoami")),
		ctRec("x2", 2*time.Minute, recon("H", "erin", "ipconfig")),
		ctRec("x3", 2*time.Minute, recon("H", "erin", "netstat")),
		ctRec("d2", 8*time.Minute, recon("H", "bob", "netstat")), // 8m after b1: too late
	}
	r := newRunner(t, set, nil).feed(byTime(evs), true).advance(time.Hour)
	wantK(t, r.list(), "recon {ComputerName=H,User=alice} medium n=1 0s..5m0s [recon_cmd_c:a3 recon_cmd_a:a1 recon_cmd_b:a2]")

	// With a condition: at least two of the three (the number of rules
	// fired), as soon as it holds.
	set = loadSigma(t, reconFiles("temporal", "    condition:\n        gte: 2\n")...)
	r = newRunner(t, set, nil).feed(byTime(evs), true).advance(time.Hour)
	wantK(t, r.list(),
		"recon {ComputerName=H,User=alice} medium n=1 0s..1m0s [recon_cmd_c:a3 recon_cmd_a:a1]",
		"recon {ComputerName=H,User=bob} medium n=1 0s..1m0s [recon_cmd_a:b1 recon_cmd_b:b2]",
		"recon {ComputerName=H,User=erin} medium n=1 2m0s..2m0s [recon_cmd_b:x2 recon_cmd_c:x3]",
	)
	// An upper bound waits for the window: exactly one rule fired.
	set = loadSigma(t, reconFiles("temporal", "    condition:\n        eq: 1\n")...)
	r = newRunner(t, set, nil).feed(byTime(evs), true).advance(time.Hour)
	// Windows open at a key's first event: bob's first (b1, b2) has two,
	// d2 opens his next; alice's first (a3, a1) has two, a2 at exactly 5m
	// opens her next.
	const sa, sc = "sigma_0b9b1e0e_0000_4000_8000_00000000000a:", "sigma_0b9b1e0e_0000_4000_8000_00000000000c:"
	const sb = "sigma_0b9b1e0e_0000_4000_8000_00000000000b:"
	wantK(t, r.list(),
		"recon {ComputerName=H,User=alice} medium n=1 5m0s..10m0s ["+sb+"a2]",
		"recon {ComputerName=H,User=bob} medium n=1 8m0s..13m0s ["+sc+"d2]",
		"recon {ComputerName=H,User=carol} medium n=1 1m0s..6m0s ["+sc+"c3]",
		"recon {ComputerName=H,User=dave} medium n=1 2m0s..7m0s ["+sa+"x1]",
	)
}

// temporal_ordered: the same commands in rules order within 5 minutes.
func TestSigmaTemporalOrdered(t *testing.T) {
	set := loadSigma(t, reconFiles("temporal_ordered", "")...)
	evs := []*pipeline.Event{
		ctRec("a1", 0, recon("H", "alice", "whoami")),
		ctRec("a2", time.Minute, recon("H", "alice", "ipconfig")),
		ctRec("a3", 5*time.Minute, recon("H", "alice", "netstat")), // exactly maxspan
		ctRec("b1", 0, recon("H", "bob", "whoami")),
		ctRec("b3", time.Minute, recon("H", "bob", "netstat")), // out of order
		ctRec("b2", 2*time.Minute, recon("H", "bob", "ipconfig")),
		ctRec("c1", 0, recon("H", "carol", "whoami")),
		ctRec("c2", time.Minute, recon("H", "carol", "ipconfig")),
		ctRec("c3", 5*time.Minute+time.Second, recon("H", "carol", "netstat")), // too late
	}
	r := newRunner(t, set, nil).feed(byTime(evs), true).advance(time.Hour)
	wantK(t, r.list(), "recon {ComputerName=H,User=alice} medium n=1 0s..5m0s [recon_cmd_a:a1 recon_cmd_b:a2 recon_cmd_c:a3]")
}

// Aliases, the specification's example: an internal error and a new
// connection with the same address pair, the fields swapped between the
// two rules, within 10s (nested ECS-style fields, resolved as the matcher
// does).
func TestSigmaAliases(t *testing.T) {
	set := loadSigma(t, `title: —
id: alias-example
correlation:
    type: temporal
    rules:
        - internal_error
        - new_network_connection
    group-by:
        - internal_ip
        - remote_ip
    timespan: 10s
    aliases:
        internal_ip:
            internal_error: destination.ip
            new_network_connection: source.ip
        remote_ip:
            internal_error: source.ip
            new_network_connection: destination.ip
`, `title: internal error
id: 0b9b1e0e-0000-4000-8000-0000000000e1
name: internal_error
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        http.response.status_code: 500
    condition: selection
---
title: new network connection
id: 0b9b1e0e-0000-4000-8000-0000000000e2
name: new_network_connection
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        event.category: network
        event.type: connection
        event.outcome: success
    condition: selection
`)
	httpErr := func(src, dst string) map[string]any {
		return map[string]any{"http": map[string]any{"response": map[string]any{"status_code": 500}},
			"source": map[string]any{"ip": src}, "destination": map[string]any{"ip": dst}}
	}
	conn := func(src, dst string) map[string]any {
		return map[string]any{"event": map[string]any{"category": "network", "type": "connection", "outcome": "success"},
			"source": map[string]any{"ip": src}, "destination": map[string]any{"ip": dst}}
	}
	evs := []*pipeline.Event{
		ctRec("e1", 0, httpErr("203.0.113.9", "10.0.0.5")),          // internal 10.0.0.5, remote 203.0.113.9
		ctRec("n1", 4*time.Second, conn("10.0.0.5", "203.0.113.9")), // same pair, swapped fields: fires
		ctRec("e2", 0, httpErr("203.0.113.7", "10.0.0.6")),
		ctRec("n2", 4*time.Second, conn("203.0.113.7", "10.0.0.6")), // same fields, not swapped: no
		ctRec("e3", 20*time.Second, httpErr("198.51.100.1", "10.0.0.7")),
		ctRec("n3", 31*time.Second, conn("10.0.0.7", "198.51.100.1")), // 11s later: no
	}
	r := newRunner(t, set, nil).feed(byTime(evs), true).advance(time.Hour)
	wantK(t, r.list(), "alias-example {internal_ip=10.0.0.5,remote_ip=203.0.113.9} medium n=1 0s..4s [internal_error:e1 new_network_connection:n1]")
}

// generate: true makes the referred rules stand-alone too: the detections
// raise their incidents, and the inner correlation its own, besides
// feeding the outer one.
func TestSigmaGenerate(t *testing.T) {
	file := strings.Replace(sigmaChainFile, "level: high\n", "level: high\ngenerate: true\n", 1)
	set := loadSigma(t, file)
	var evs []*pipeline.Event
	evs = append(evs, seqEvents("a", 10, 0, time.Minute, failed("alice"))...)
	evs = append(evs, ctRec("as", 12*time.Minute, success("alice")))
	r := newRunner(t, set, nil).feed(evs, true).advance(time.Hour)
	s := r.e.Stats()
	// The outer correlation refers to the inner one and successful_login;
	// failed_login is referred to by the inner one only (no generate).
	if s.Incidents[idChain] != 1 || s.Incidents[idMany] != 1 || s.Incidents[idSuccess] != 1 || s.Incidents[idFailed] != 0 {
		t.Errorf("incidents by rule %v", s.Incidents)
	}
	for _, in := range r.list() {
		if in.Rule == idChain && in.Events[0].ID != innerID("alice", "a1") {
			t.Errorf("outer evidence %v: want the inner incident's id first", in.Events)
		}
		if in.Rule == idMany && in.ID != innerID("alice", "a1") {
			t.Errorf("inner incident id %s, want %s", in.ID, innerID("alice", "a1"))
		}
	}
}
