package rule

import (
	"slices"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

func ruleByID(t *testing.T, set *Set, id string) *Rule {
	t.Helper()
	for _, r := range append(slices.Clone(set.Rules), set.Disabled...) {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no rule %s", id)
	return nil
}

func TestExceptions(t *testing.T) {
	set := mustLoad(t, "testdata/reference_examples.yaml")
	r := ruleByID(t, set, "ecs-security-control-disabled")
	var e Evaluator
	env := &Env{Raw: map[string]any{
		"userIdentity":      map[string]any{"arn": "arn:aws:sts::1:assumed-role/terraform-deployer/ci"},
		"requestParameters": map[string]any{"family": "datadog-agent"},
	}}
	before := time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC)
	after := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC) // expires is the end of 2026-03-31
	cases := []struct {
		family string
		at     time.Time
		want   string
	}{
		{"datadog-agent", before, "iac_pipeline_privileged_agents"},
		{"datadog-agent", after, ""},
		{"nginx", before, ""},
	}
	for _, tc := range cases {
		env.Raw["requestParameters"] = map[string]any{"family": tc.family}
		got, err := r.Suppressed(&e, env, tc.at)
		if err != nil || got != tc.want {
			t.Errorf("%s at %s: %q, %v; want %q", tc.family, tc.at, got, err, tc.want)
		}
	}
	// comps: in (list value).
	m := ruleByID(t, set, "ecs-mining-cpu-spike-with-pool-conn")
	env = &Env{Entity: EntityEnv{TaskDefinitionFamily: "ml-train"}}
	if got, _ := m.Suppressed(&e, env, before); got != "batch_encoders" {
		t.Errorf("in: got %q", got)
	}
	env.Entity.TaskDefinitionFamily = "web"
	if got, _ := m.Suppressed(&e, env, before); got != "" {
		t.Errorf("in: web suppressed by %q", got)
	}
	for _, c := range []struct {
		op        string
		got, want any
		ok        bool
	}{
		{"==", 3333.0, 3333, true}, {"!=", "a", "b", true}, {"startsWith", "abc", "ab", true},
		{"endsWith", "abc", "bc", true}, {"contains", "abc", "x", false}, {"contains", 1, "1", false},
		{"in", "b", []any{"a", "b"}, true}, {"in", "c", []any{"a", "b"}, false},
	} {
		if compare(c.op, c.got, c.want) != c.ok {
			t.Errorf("%v %s %v != %v", c.got, c.op, c.want, c.ok)
		}
	}
}

func TestKeysSeverityOutputFields(t *testing.T) {
	set := mustLoad(t, "testdata/summary.yaml")
	var e Evaluator
	r := ruleByID(t, set, "exec-match")
	env := &Env{Entity: EntityEnv{Account: "111122223333"}, Raw: map[string]any{"userIdentity": map[string]any{"arn": "bob"}}}
	key, err := r.KeyValues(&e, env, nil)
	if err != nil || !slices.Equal(key, []string{"111122223333", "bob"}) {
		t.Errorf("key %q %v", key, err)
	}
	th := ruleByID(t, set, "pool-threshold")
	for _, c := range []struct {
		distinct int
		want     pipeline.Severity
	}{{2, pipeline.SeverityMedium}, {3, pipeline.SeverityHigh}} {
		out := BuildOutputEnv(OutputInput{Rule: th, Agg: map[string]any{"count": 5, "distinct": c.distinct}})
		if sev, err := th.EffectiveSeverity(&e, out); err != nil || sev != c.want {
			t.Errorf("distinct %d: %v %v, want %v", c.distinct, sev, err, c.want)
		}
	}
	sq := ruleByID(t, set, "exec-shell-c2")
	ev := &pipeline.Event{Source: pipeline.SourceCloudTrail}
	out := BuildOutputEnv(OutputInput{Rule: sq, Steps: map[string]map[string]any{"exec": StepData("exec", ev, nil, map[string]any{"who": "alice"})}})
	if f, err := sq.OutputFields(&e, out); err != nil || f["who"] != "alice" {
		t.Errorf("output fields %v %v", f, err)
	}
	// resolve.closes sees the incident and the resolving event.
	ref := mustLoad(t, "testdata/reference_examples.yaml")
	dr := ruleByID(t, ref, "ecs-security-control-disabled")
	inc := BuildOutputEnv(OutputInput{Rule: dr, Steps: map[string]map[string]any{"change": StepData("ct_container_insights_disabled", ev, nil, nil)}})
	for sig, want := range map[string]bool{"ct_container_insights_disabled": true, "ct_privileged_taskdef": false} {
		inc["steps"].(map[string]any)["change"] = StepData(sig, ev, nil, nil)
		got, err := e.Bool(dr.Resolve.Closes, ClosesEnv(inc, StepData("ct_container_insights_enabled", ev, nil, nil)))
		if err != nil || got != want {
			t.Errorf("closes for %s: %v %v", sig, got, err)
		}
	}
}
