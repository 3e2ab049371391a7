package rule

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/rules"
)

var update = flag.Bool("update", false, "rewrite golden files")

func mustLoad(t testing.TB, paths ...string) *Set {
	t.Helper()
	set, diags := LoadFiles(paths, LoadOptions{Now: testNow})
	if diags.HasErrors() {
		t.Fatalf("load: %v", diags)
	}
	return set
}

func TestReferenceExamplesLoad(t *testing.T) {
	set, diags := LoadFiles([]string{"testdata/reference_examples.yaml"}, LoadOptions{Now: testNow})
	if diags.HasErrors() {
		t.Fatalf("§9.3 examples must load: %v", diags)
	}
	var notes []string
	for _, d := range diags {
		if d.Severity != SevNote {
			t.Errorf("unexpected %s", d)
		}
		notes = append(notes, d.Msg[:strings.Index(d.Msg, ":")])
	}
	// The signals whose where has no derivable event type.
	if want := []string{"signal falco_reverse_shell", "signal falco_miner_pool_conn", "signal gd_c2"}; !slices.Equal(notes, want) {
		t.Errorf("notes %q, want %q", notes, want)
	}
	if len(set.Signals) != 11 || len(set.Rules) != 4 {
		t.Fatalf("got %d signals, %d rules; want 11, 4", len(set.Signals), len(set.Rules))
	}
	kinds := map[string]Kind{}
	for _, r := range set.Rules {
		kinds[r.ID] = r.Kind
	}
	want := map[string]Kind{
		"ecs-mining-cpu-spike-with-pool-conn": KindMetric,
		"ecs-mining-pool-connections-burst":   KindThreshold,
		"ecs-exec-reverse-shell-c2":           KindSequence,
		"ecs-security-control-disabled":       KindMatch,
	}
	for id, k := range want {
		if kinds[id] != k {
			t.Errorf("rule %s kind %v, want %v", id, kinds[id], k)
		}
	}
	r := set.Rules[3]
	if got := []string{r.By[0].Name, r.By[1].Name}; !slices.Equal(got, []string{"account", "region"}) {
		t.Errorf("by %v", got)
	}
	if r.Exceptions[0].Expires != time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("expires %v, want end of 2026-03-31", r.Exceptions[0].Expires)
	}
	// Later, the same exceptions have expired: warnings, still loaded.
	set, diags = LoadFiles([]string{"testdata/reference_examples.yaml"}, LoadOptions{Now: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)})
	var warns int
	for _, d := range diags {
		if d.Severity == SevWarning {
			warns++
		}
	}
	if set == nil || warns != 2 || len(set.Rules[3].Exceptions) != 1 {
		t.Errorf("expired exceptions: %d warnings (want 2), set %v", warns, set != nil)
	}
}

func TestSummaryGolden(t *testing.T) {
	set := mustLoad(t, "testdata/summary.yaml")
	var buf bytes.Buffer
	if err := set.WriteSummary(&buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "summary.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("summary differs from %s (run with -update):\n%s", golden, buf.String())
	}
}

func TestTypeDerivation(t *testing.T) {
	cases := []struct {
		source, where string
		want          []string // nil = all types of the source
	}{
		{"cloudtrail", `raw.eventSource == "ecs.amazonaws.com" && raw.eventName == "ExecuteCommand"`, []string{"ecs.amazonaws.com:ExecuteCommand"}},
		{"cloudtrail", `raw.eventName in ["B", "A"] && raw.errorCode == nil && "ecs.amazonaws.com" == raw.eventSource`, []string{"ecs.amazonaws.com:A", "ecs.amazonaws.com:B"}},
		{"cloudtrail", `raw.eventSource == "guardduty.amazonaws.com" && (raw.eventName == "DeleteDetector" || (raw.eventName == "UpdateDetector" && raw.x == 1))`,
			[]string{"guardduty.amazonaws.com:DeleteDetector", "guardduty.amazonaws.com:UpdateDetector"}},
		{"cloudtrail", `raw.eventName == "ExecuteCommand"`, nil},                              // source unknown
		{"cloudtrail", `raw.eventSource == "a" && (raw.eventName == "X" || raw.x == 1)`, nil}, // one side unconstrained
		{"cloudtrail", `raw?.eventSource == "a" && raw?.eventName == "X"`, []string{"a:X"}},   // optional chains
		{"cloudtrail", `event.type in ["a:X", "a:Y"] && raw.eventName == "X" && raw.eventSource == "a"`, []string{"a:X"}},
		{"falco", `raw.rule == "Reverse Shell" || raw.rule in ["Netcat"]`, []string{"Netcat", "Reverse Shell"}},
		{"falco", `raw.rule == "A" || raw.output_fields["proc.name"] == "sh"`, nil},
		{"falco", `!(raw.rule == "A")`, nil},
		{"guardduty", `raw.type == "Execution:Runtime/ReverseShell"`, []string{"Execution:Runtime/ReverseShell"}},
		{"guardduty", `raw.type startsWith "Backdoor:"`, nil},
		{"container_insights", `raw.Type == "Task" && raw.CpuReserved > 0`, []string{"metrics/Task"}},
		{"any", `event.type == "x" and event.source == "falco"`, []string{"x"}},
		{"ecs", `raw["detail-type"] == "ECS Task State Change"`, nil},
	}
	for _, tc := range cases {
		body := "signals:\n  - name: s\n    source: " + tc.source + "\n    where: '" + tc.where + "'\n"
		set, diags := loadString(t, body, LoadOptions{})
		if diags.HasErrors() {
			t.Fatalf("%s: %v", tc.where, diags)
		}
		got := set.Signals[0].Types
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: types %q, want %q", tc.where, got, tc.want)
		}
		hasNote := len(diags) == 1 && diags[0].Severity == SevNote
		if hasNote != (tc.want == nil) {
			t.Errorf("%s: diagnostics %v", tc.where, diags)
		}
	}
}

func TestCandidates(t *testing.T) {
	set := mustLoad(t, "testdata/summary.yaml")
	names := func(ss []*Signal) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Name)
		}
		return out
	}
	cases := []struct {
		src           pipeline.Source
		typ           string
		byType, anyTy []string
	}{
		{pipeline.SourceCloudTrail, "ecs.amazonaws.com:ExecuteCommand", []string{"exec"}, nil},
		{pipeline.SourceCloudTrail, "ecs.amazonaws.com:StopTask", []string{"stop"}, nil},
		{pipeline.SourceCloudTrail, "ecs.amazonaws.com:RunTask", nil, nil},
		{pipeline.SourceFalco, "Reverse Shell", []string{"shell"}, []string{"pool"}},
		{pipeline.SourceFalco, "Other", nil, []string{"pool"}},
		{pipeline.SourceGuardDuty, "Backdoor:Runtime/C&CActivity.B", []string{"c2"}, nil},
		{pipeline.SourceGuardDuty, "Recon:EC2/PortProbeUnprotectedPort", []string{"sampled"}, nil},
		{pipeline.SourceECS, "Recon:EC2/PortProbeUnprotectedPort", []string{"sampled"}, nil},
		{pipeline.SourceContainerInsights, "metrics/Task", []string{"cpu"}, nil},
	}
	for _, tc := range cases {
		bt, at := set.Candidates(tc.src, tc.typ)
		if !slices.Equal(names(bt), tc.byType) || !slices.Equal(names(at), tc.anyTy) {
			t.Errorf("%s %s: got %v + %v, want %v + %v", tc.src, tc.typ, names(bt), names(at), tc.byType, tc.anyTy)
		}
	}
}

func TestMacrosAndLists(t *testing.T) {
	set := mustLoad(t, "testdata/summary.yaml")
	exec := set.SignalsByName["exec"]
	env := &Env{Lists: set.Lists, Raw: map[string]any{
		"eventSource": "ecs.amazonaws.com", "eventName": "ExecuteCommand", "errorCode": nil,
		"userIdentity": map[string]any{"arn": "arn:aws:iam::1:user/bob"},
	}}
	if ok, err := exec.Eval(env); err != nil || !ok {
		t.Fatalf("exec: %v %v", ok, err)
	}
	// The nested macro ct_ok rejects failed calls.
	env.Raw["errorCode"] = "AccessDenied"
	if ok, _ := exec.Eval(env); ok {
		t.Error("exec matched a failed call: macro ct_ok not expanded")
	}
	fields, err := EvalFields(exec, env, nil)
	if err != nil || fields["who"] != "arn:aws:iam::1:user/bob" {
		t.Errorf("fields %v %v", fields, err)
	}
	// A JSON number (float64) matches an integer list entry.
	pool := set.SignalsByName["pool"]
	env = &Env{Lists: set.Lists, Raw: map[string]any{"output_fields": map[string]any{"fd.rport": 14444.0}}}
	if ok, err := pool.Eval(env); err != nil || !ok {
		t.Errorf("pool: %v %v", ok, err)
	}
	env.Raw["output_fields"].(map[string]any)["fd.rport"] = 80.0
	if ok, _ := pool.Eval(env); ok {
		t.Error("pool matched port 80")
	}
	// Sample findings only reach signals with sample: true.
	env = &Env{Event: EventEnv{Type: "Recon:EC2/PortProbeUnprotectedPort", Sample: true}}
	if ok, _ := set.SignalsByName["sampled"].Eval(env); !ok {
		t.Error("sampled signal rejected a sample finding")
	}
	env.Event.Type = "ecs.amazonaws.com:ExecuteCommand"
	if ok, _ := exec.Eval(env); ok {
		t.Error("non-sample signal matched a sample finding")
	}
	if got := set.Lists["miner_ports"]; len(got) != 2 || got[0] != 3333 {
		t.Errorf("lists %v", got)
	}
}

func TestThresholdStepAlias(t *testing.T) {
	set := mustLoad(t, "testdata/summary.yaml")
	var th *Threshold
	for _, r := range set.Rules {
		if r.ID == "pool-threshold" {
			th = r.Threshold
		}
	}
	var ev Evaluator
	out, err := ev.Run(th.Field, &Env{Fields: map[string]any{"dest": "1.2.3.4"}})
	if err != nil || out != "1.2.3.4" {
		t.Errorf("step.fields.dest = %v, %v", out, err)
	}
}

func TestTemplates(t *testing.T) {
	set := mustLoad(t, "testdata/summary.yaml")
	var r *Rule
	for _, x := range set.Rules {
		if x.ID == "exec-shell-c2" {
			r = x
		}
	}
	ev := &pipeline.Event{ID: "e1", Source: pipeline.SourceCloudTrail, Type: "ecs.amazonaws.com:ExecuteCommand",
		Entity: pipeline.Entity{TaskARN: "arn:aws:ecs:eu-west-1:1:task/c/abc", TaskDefinitionARN: "arn:aws:ecs:eu-west-1:1:task-definition/web:7"}}
	env := BuildOutputEnv(OutputInput{Rule: r, Key: map[string]string{"task_arn": ev.Entity.TaskARN}, Entity: ev.Entity,
		Steps: map[string]map[string]any{"exec": StepData("exec", ev, map[string]any{"requestParameters": nil}, map[string]any{"who": "bob"})},
		Count: 1, Event: StepData("exec", ev, nil, nil)})
	got, err := Render(r.Summary, env)
	if err != nil || got != "bob then a shell" {
		t.Errorf("summary %q %v", got, err)
	}
	// Absent and null paths never fail; default replaces them.
	cases := map[string]string{
		`{{ .steps.exec.raw.requestParameters.task }}`:                                 "<no value>",
		`{{ .steps.nope.raw.a.b | default "?" }}`:                                      "?",
		`{{ if .steps.exec.raw.x.y }}yes{{ else }}no{{ end }}`:                         "no",
		`{{ .entity.task_definition_family }} {{ upper .rule.id }}`:                    "web EXEC-SHELL-C2",
		`{{ trunc 4 .key.task_arn }}|{{ join .rule.mitre "," }}`:                       "arn:|T1609,T1059",
		`{{ printf "%s/%d" .rule.id .count }} {{ len .steps }}`:                        "exec-shell-c2/1 1",
		`{{ with .steps.exec }}{{ .fields.who }}{{ end }} {{ .steps.exec.time.Year }}`: "bob 1",
		`{{ json .key }}`: `{"task_arn":"arn:aws:ecs:eu-west-1:1:task/c/abc"}`,
	}
	for src, want := range cases {
		tm, err := NewTemplate("t", src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got, err := Render(tm, env)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", src, got, err, want)
		}
	}
	// Output fields compile against the same environment.
	var e Evaluator
	out, err := e.Run(r.Fields[0].Prog, env)
	if err != nil || out != "bob" {
		t.Errorf("output field who = %v, %v", out, err)
	}
}

func TestHash(t *testing.T) {
	base := `
signals:
  - {name: a, source: falco, types: [x], where: 'true'}
rules:
  - id: r
    severity: high
    detect: {threshold: {signal: a, window: 5m, count: {gte: 2}}}
    output: {summary: one}
`
	hash := func(body string) string {
		set, diags := loadString(t, body, LoadOptions{})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return set.Rules[0].Hash
	}
	h0 := hash(base)
	reformatted := strings.Replace(base, "detect: {threshold: {signal: a, window: 5m, count: {gte: 2}}}",
		"detect:\n      threshold:\n        count: {gte: 2}   # reordered\n        window: 5m\n        signal: a", 1)
	if hash(reformatted) != h0 {
		t.Error("formatting changed the hash")
	}
	if hash(strings.Replace(base, "summary: one", "summary: two", 1)) != h0 {
		t.Error("output changed the hash")
	}
	if hash(strings.Replace(base, "window: 5m", "window: 6m", 1)) == h0 {
		t.Error("window change kept the hash")
	}
	if hash(strings.Replace(base, "where: 'true'", "where: 'false'", 1)) == h0 {
		t.Error("signal change kept the hash")
	}
}

func TestLoadFilesAndFS(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(header+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b/2.yml", "signals:\n  - {name: s2, source: falco, types: [x], where: 'raw.rule in lists.l'}\n")
	write("a.yaml", "lists: {l: [x]}\nsignals:\n  - {name: s1, source: falco, types: [x], where: 'true'}\n")
	write("a_test.yaml", "this: is a rule test, not a rule file\n")
	write("notes.txt", "ignored")
	set, diags := LoadFiles([]string{dir}, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := []string{set.Signals[0].Name, set.Signals[1].Name}; !slices.Equal(got, []string{"s1", "s2"}) || len(set.Files) != 2 {
		t.Errorf("signals %v files %v", got, set.Files)
	}
	fsys := fstest.MapFS{
		"x.yaml":      {Data: []byte(header + "signals:\n  - {name: s, source: falco, types: [x], where: 'true'}\n")},
		"y_test.yaml": {Data: []byte("junk: [")},
	}
	set, diags = LoadFS(fsys, LoadOptions{})
	if diags.HasErrors() || len(set.Signals) != 1 {
		t.Errorf("LoadFS: %v", diags)
	}
	// Missing header, wrong kind.
	_, diags = Load([]NamedSource{{Name: "h.yaml", Data: []byte("kind: Rules\nlists: {}\n")}}, LoadOptions{})
	if got := diags.Error(); got != "h.yaml:1:1: error: missing apiVersion (want ecscorr/v1)\nh.yaml:1:7: error: unsupported kind \"Rules\" (want RuleFile)" {
		t.Errorf("header diagnostics:\n%s", got)
	}
	if _, diags := LoadFiles([]string{filepath.Join(dir, "nope.yaml")}, LoadOptions{}); !diags.HasErrors() {
		t.Error("missing file loaded")
	}
}

// The embedded built-in pack must always load without errors.
func TestBuiltinPackLoads(t *testing.T) {
	set, diags := LoadFS(rules.Builtin, LoadOptions{})
	if diags.HasErrors() {
		t.Fatalf("built-in pack: %v", diags.Errors())
	}
	if len(set.Rules) == 0 || len(set.Lists["miner_ports"]) == 0 {
		t.Errorf("built-in pack: %d rules, lists %v", len(set.Rules), set.Lists)
	}
}

// The complete example of docs/rules.md must load.
func TestDocExampleLoads(t *testing.T) {
	doc, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "## 9. Complete example")
	if i < 0 {
		t.Fatal("docs/rules.md has no complete example")
	}
	s = s[i:]
	start := strings.Index(s, "```yaml\n") + len("```yaml\n")
	end := strings.Index(s[start:], "```")
	set, diags := Load([]NamedSource{{Name: "docs/rules.md", Data: []byte(s[start : start+end])}}, LoadOptions{Now: testNow})
	if diags.HasErrors() || len(set.Rules) != 1 || len(set.Signals) != 3 {
		t.Fatalf("doc example: %v", diags)
	}
}
