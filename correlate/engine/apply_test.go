package engine

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"text/template"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// These tests pin the rule semantics that are not expressions (exceptions,
// `by` keys, severity overrides, output fields, resolve.closes) through the
// engine, on the rule package's reference files: what they test is what
// the engine runs.

func loadRef(t *testing.T, name string) *rule.Set {
	t.Helper()
	set, diags := rule.LoadFiles([]string{"../rule/testdata/" + name}, rule.LoadOptions{Now: t0})
	if diags.HasErrors() {
		t.Fatalf("load %s: %v", name, diags.Errors())
	}
	return set
}

func refRule(t *testing.T, set *rule.Set, id string) *rule.Rule {
	t.Helper()
	for _, r := range set.Rules {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no rule %s", id)
	return nil
}

// ofRule keeps the incidents of one rule.
func ofRule(incs []pipeline.Incident, id string) []pipeline.Incident {
	var out []pipeline.Incident
	for _, in := range incs {
		if in.Rule == id {
			out = append(out, in)
		}
	}
	return out
}

func ctEvent(id string, at time.Time, region, raw string) *pipeline.Event {
	e := &pipeline.Event{ID: id, Source: ct, Time: at, Raw: []byte(raw),
		Entity: pipeline.Entity{Account: "111122223333", Region: region}}
	var r struct{ EventSource, EventName string }
	_ = json.Unmarshal([]byte(raw), &r)
	e.Type = r.EventSource + ":" + r.EventName
	return e
}

func TestExceptionsApplyUntilTheyExpire(t *testing.T) {
	set := loadRef(t, "reference_examples.yaml")
	priv := func(id string, at time.Time, region, who, family string) *pipeline.Event {
		return ctEvent(id, at, region, fmt.Sprintf(`{"eventSource":"ecs.amazonaws.com","eventName":"RegisterTaskDefinition",`+
			`"userIdentity":{"arn":"arn:aws:sts::111122223333:assumed-role/%s"},"requestParameters":{"family":%q,"containerDefinitions":[{"privileged":true}]}}`, who, family))
	}
	before := time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC)
	after := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC) // expires is the end of 2026-03-31
	evs := []*pipeline.Event{
		priv("sup", before, "eu-west-1", "terraform-deployer/ci", "datadog-agent"), // both fields match
		priv("nginx", before, "eu-west-2", "terraform-deployer/ci", "nginx"),       // == fails
		priv("who", before, "eu-west-3", "someone/else", "datadog-agent"),          // endsWith fails
		priv("late", after, "eu-west-1", "terraform-deployer/ci", "datadog-agent"), // exception expired
	}
	r := newRunner(t, set, nil).feed(evs, false)
	var got []string
	for _, in := range ofRule(r.list(), "ecs-security-control-disabled") {
		got = append(got, in.Events[0].ID)
	}
	slices.Sort(got)
	if want := []string{"late", "nginx", "who"}; !slices.Equal(got, want) {
		t.Errorf("incidents from %v, want %v", got, want)
	}
	if n := r.e.Stats().Suppressed["ecs-security-control-disabled"]; n != 1 {
		t.Errorf("suppressed %d, want 1", n)
	}

	// comps: in, against a list value (the mining rule's exception on a
	// match rule).
	mining := refRule(t, set, "ecs-mining-cpu-spike-with-pool-conn")
	x := sig(t, "x", ct, "")
	m := &rule.Rule{ID: "in", Severity: pipeline.SeverityLow, Kind: rule.KindMatch,
		Match: &rule.Step{As: "x", Signals: []*rule.Signal{x}}, Exceptions: mining.Exceptions}
	fam := func(id, family string) *pipeline.Event {
		e := ev(id, ct, "x", 0, "arn:aws:ecs:eu-west-1:111122223333:task/prod/"+id, "")
		e.Entity.TaskDefinitionARN = "arn:aws:ecs:eu-west-1:111122223333:task-definition/" + family + ":3"
		return e
	}
	r = newRunner(t, newSet([]*rule.Signal{x}, m), nil).feed([]*pipeline.Event{fam("a", "ml-train"), fam("b", "web"), fam("c", "video-transcode")}, false)
	wantBrief(t, r.list(), "in open low n=1 0s [x:b]")
}

func TestExceptionComparisons(t *testing.T) {
	for _, c := range []struct {
		op        string
		got, want any
		ok        bool
	}{
		{"==", 3333.0, 3333, true}, {"==", "111122223333", 111122223333, true}, {"==", nil, nil, true},
		{"==", nil, "", false}, {"!=", "a", "b", true}, {"!=", 1, 1.0, false},
		{"startsWith", "abc", "ab", true}, {"endsWith", "abc", "bc", true},
		{"contains", "abc", "x", false}, {"contains", "abc", "b", true},
		// String operations on anything but two strings are false (they
		// used to compare printed forms: 12 startsWith "1", a list
		// contains one of its elements' substrings).
		{"contains", 1, "1", false}, {"startsWith", 12, "1", false}, {"startsWith", []any{"ab"}, "[a", false},
		{"endsWith", "x1", 1, false}, {"contains", nil, "", false},
		{"in", "b", []any{"a", "b"}, true}, {"in", "c", []any{"a", "b"}, false}, {"in", 2, []any{1.0, 2.0}, true},
	} {
		if rule.Compare(c.op, c.got, c.want) != c.ok {
			t.Errorf("%v %s %v != %v", c.got, c.op, c.want, c.ok)
		}
	}
	// The engine applies an exception through the same comparison: a
	// number never "startsWith".
	x := sig(t, "x", ct, "")
	m := &rule.Rule{ID: "sw", Severity: pipeline.SeverityLow, Kind: rule.KindMatch,
		Match:      &rule.Step{As: "x", Signals: []*rule.Signal{x}},
		Exceptions: []rule.Exception{{Name: "n", Fields: []*vm.Program{compileAny(t, `raw.n`)}, Comps: []string{"startsWith"}, Values: [][]any{{"1"}}}}}
	r := newRunner(t, newSet([]*rule.Signal{x}, m), nil).feed([]*pipeline.Event{
		ev("num", ct, "x", 0, taskA, `{"n":12}`), ev("str", ct, "x", 0, taskB, `{"n":"12"}`)}, false)
	wantBrief(t, r.list(), "sw open low n=1 0s [x:num]")
}

func TestKeysSeverityOutputFields(t *testing.T) {
	set := loadRef(t, "summary.yaml")
	exec := func(id string, at time.Duration, who string) *pipeline.Event {
		e := ctEvent(id, t0.Add(at), "eu-west-1", fmt.Sprintf(`{"eventSource":"ecs.amazonaws.com","eventName":"ExecuteCommand","userIdentity":{"arn":%q}}`, who))
		e.Entity.TaskARN = taskA
		pipeline.CompleteEntity(&e.Entity)
		return e
	}
	pool := func(id string, at time.Duration, dest string) *pipeline.Event {
		return ev(id, fa, "Outbound Connection", at, taskB, fmt.Sprintf(`{"rule":"Outbound Connection","output_fields":{"fd.rport":3333,"fd.sip":%q}}`, dest))
	}
	shell := func(id string, at time.Duration) *pipeline.Event {
		return ev(id, fa, "Reverse Shell", at, taskA, `{"rule":"Reverse Shell"}`)
	}
	r := newRunner(t, set, nil).feed([]*pipeline.Event{
		exec("x1", 0, "bob"),
		pool("p1", time.Second, "10.0.0.1"), pool("p2", 2*time.Second, "10.0.0.1"),
		pool("p3", 3*time.Second, "10.0.0.2"), // 2 distinct: fires, medium
		pool("p4", 4*time.Second, "10.0.0.3"), // 3 distinct: the update raises it to high
		shell("s1", time.Minute), shell("s2", 2*time.Minute),
	}, false).advance(20 * time.Minute)
	incs := r.list()

	em := ofRule(incs, "exec-match")
	if len(em) != 1 || !maps.Equal(em[0].Key, map[string]string{"account": "111122223333", "who": "bob"}) {
		t.Errorf("exec-match: %+v", em)
	}
	pt := ofRule(incs, "pool-threshold")
	if len(pt) != 1 || pt[0].Severity != pipeline.SeverityHigh || pt[0].Count != 2 {
		t.Errorf("pool-threshold: %+v", pt)
	}
	sq := ofRule(incs, "exec-shell-c2")
	if len(sq) != 1 || sq[0].Fields["who"] != "bob" || sq[0].Summary != "bob then a shell" || !slices.Equal(sq[0].Mitre, []string{"T1609", "T1059"}) {
		t.Errorf("exec-shell-c2: %+v", sq)
	}

	// resolve.closes sees the incident (its steps) and the resolving
	// event: re-enabling Container Insights closes the incident of the
	// disabling change, not the privileged task definition's.
	ref := loadRef(t, "reference_examples.yaml")
	disabled := ctEvent("off", t0, "eu-west-1", `{"eventSource":"ecs.amazonaws.com","eventName":"UpdateClusterSettings","requestParameters":{"settings":[{"name":"containerInsights","value":"disabled"}]}}`)
	priv := ctEvent("priv", t0, "eu-west-1", `{"eventSource":"ecs.amazonaws.com","eventName":"RegisterTaskDefinition","requestParameters":{"family":"x","containerDefinitions":[{"privileged":true}]}}`)
	enabled := ctEvent("on", t0.Add(time.Minute), "eu-west-1", `{"eventSource":"ecs.amazonaws.com","eventName":"UpdateClusterSettings","requestParameters":{"settings":[{"name":"containerInsights","value":"enabled"}]}}`)
	r = newRunner(t, ref, nil).feed([]*pipeline.Event{disabled, priv, enabled}, false)
	status := map[string]pipeline.IncidentStatus{}
	for _, in := range ofRule(r.list(), "ecs-security-control-disabled") {
		status[in.Events[0].ID] = in.Status
	}
	if status["off"] != pipeline.IncidentResolved || status["priv"] != pipeline.IncidentOpen || len(status) != 2 {
		t.Errorf("closes: %v", status)
	}
}

// TestOutputEnvTypesAsAtLoad: templates and expressions see the same
// types at run time as when the loader checked them (rule.BuildOutputEnv):
// mitre and tags used to be []any at run time, []string at load.
func TestOutputEnvTypesAsAtLoad(t *testing.T) {
	x := sig(t, "x", ct, "")
	m := &rule.Rule{ID: "types", Severity: pipeline.SeverityLow, Kind: rule.KindMatch, Mitre: []string{"T1609"},
		Match: &rule.Step{As: "x", Signals: []*rule.Signal{x}},
		Title: template.Must(template.New("t").Funcs(rule.FuncMap()).Parse(`{{ printf "%T %T" .rule.mitre .rule.tags }} {{ json .rule.tags }}`))}
	r := newRunner(t, newSet([]*rule.Signal{x}, m), nil).feed([]*pipeline.Event{ev("a", ct, "x", 0, taskA, "")}, false)
	want := rule.BuildOutputEnv(rule.OutputInput{Rule: m})["rule"].(map[string]any)
	if got := r.list()[0].Title; got != fmt.Sprintf("%T %T []", want["mitre"], want["tags"]) || got != "[]string []string []" {
		t.Errorf("title %q", got)
	}
}
