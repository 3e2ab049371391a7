package ruletest

import (
	"context"
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestOKFilePasses(t *testing.T) {
	res, err := RunFiles(context.Background(), []string{"testdata/ok_test.yaml"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("want pass:\n%s", res.Report())
	}
	if p, f := res.Counts(); p != 2 || f != 0 {
		t.Fatalf("counts = %d passed, %d failed; want 2, 0", p, f)
	}
}

// TestWrongExpectationsFail: a runner that passes wrong expectations is
// worthless. Every test of wrong_test.yaml must fail, and the report (a
// golden file) must name each differing field.
func TestWrongExpectationsFail(t *testing.T) {
	res, err := RunFiles(context.Background(), []string{"testdata/wrong_test.yaml"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, f := res.Counts(); p != 0 || f != 8 {
		t.Fatalf("counts = %d passed, %d failed; want 0, 8\n%s", p, f, res.Report())
	}
	report := res.Report()
	for _, want := range []string{
		`severity: expected "critical", got "low"`,
		`events: expected 2, got 1`,
		`key: expected {"task_arn":"other"}`,
		`title_contains: expected "nope"`,
		`unexpected incident: rule=t-exec`,
		`missing incident #1: count=1`,
		`never processed`,
		`undefined variable ${NOPE}`,
		`unrecognised record format`,
		`decoded as source cloudtrail, but the test says source: guardduty`,
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	golden(t, "testdata/wrong_test.report.golden", report)
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"no expect", "rule_files: [x.yaml]\ntests:\n  - name: a\n", "asserts nothing"},
		{"no incidents key", "rule_files: [x.yaml]\ntests:\n  - name: a\n    expect: [{eval_time: 1m, rule: r}]\n", "has no incidents"},
		{"duplicate name", "rule_files: [x.yaml]\ntests:\n  - {name: a, expect: [{eval_time: 1m, incidents: []}]}\n  - {name: a, expect: [{eval_time: 1m, incidents: []}]}\n", "duplicate test name"},
		{"unknown key", "rule_files: [x.yaml]\ntests:\n  - {name: a, expekt: []}\n", "expekt"},
		{"file and event", "rule_files: [x.yaml]\ntests:\n  - {name: a, input_events: [{file: a, event: {}}], expect: [{eval_time: 1m, incidents: []}]}\n", "exactly one of file or event"},
		{"bad series", "rule_files: [x.yaml]\ntests:\n  - {name: a, input_series: [{series: disk}], expect: [{eval_time: 1m, incidents: []}]}\n", "want cpu_pct or mem_pct"},
		{"bad duration", "rule_files: [x.yaml]\ntests:\n  - {name: a, expect: [{eval_time: soon, incidents: []}]}\n",
			`t.yaml: line 3:36: invalid duration "soon" (want e.g. 90s, 10m, 1h30m, 7d, 2w)`},
		// One grammar with rule files: a bare number is not 30 seconds.
		{"bare number", "rule_files: [x.yaml]\ntests:\n  - name: a\n    input_events: [{at: 30, event: {}}]\n    expect: [{eval_time: 1m, incidents: []}]\n",
			`t.yaml: line 4:25: invalid duration "30": a unit is required (e.g. 30s or 30m)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestExpandValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"1", "1"},
		{"35x2 97x1", "35 35 35 97 97"},
		{"1+2x3", "1 3 5 7"},
		{"10-5x2", "10 5 0"},
		{"-1+1x2", "-1 0 1"},
		{"1 _ _x1 2", "1 _ _ _ 2"},
	} {
		got, err := expandValues(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		var parts []string
		for _, s := range got {
			if s.gap {
				parts = append(parts, "_")
			} else {
				parts = append(parts, strconv.FormatFloat(s.v, 'g', -1, 64))
			}
		}
		if g := strings.Join(parts, " "); g != tc.want {
			t.Errorf("%q = %q, want %q", tc.in, g, tc.want)
		}
	}
	for _, bad := range []string{"", "ax2", "1x-1", "1+ax2"} {
		if _, err := expandValues(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestSetPath(t *testing.T) {
	obj := map[string]any{"a": map[string]any{"b": 1}, "l": []any{map[string]any{"x": 1}}}
	for _, tc := range []struct {
		path string
		val  any
	}{
		{"a.b", 2}, {"a.c.d", "new"}, {"l.0.x", 3}, {`output_fields.proc\.name`, "sh"}, {"a.gone", deleteMarker},
	} {
		p, err := splitPath(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if err := setPath(obj, p, tc.val); err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
	}
	got, _ := marshalJSON(obj)
	want := `{"a":{"b":2,"c":{"d":"new"}},"l":[{"x":3}],"output_fields":{"proc.name":"sh"}}`
	if string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if err := setPath(obj, []string{"l", "5", "x"}, 1); err == nil {
		t.Error("index out of range: want an error")
	}
	if _, err := splitPath("a..b"); err == nil {
		t.Error("empty segment: want an error")
	}
}

func TestSplitRecords(t *testing.T) {
	for _, tc := range []struct {
		in string
		n  int
	}{
		{`{"a":1}`, 1},
		{`[{"a":1},{"a":2}]`, 2},
		{`{"Records":[{"a":1},{"a":2},{"a":3}]}`, 3},
		{`{"findings":[{"a":1},{"a":2}]}`, 2},
		{`{"Records":[{"a":1}],"x":1}`, 1},
		{`{"logEvents":[{"a":1},{"a":2}]}`, 1}, // a payload: its log events are not records to retime
		{"{\"a\":1}\n\n{\"a\":2}\n", 2},
	} {
		got, err := splitRecords([]byte(tc.in))
		if err != nil || len(got) != tc.n {
			t.Errorf("%q: %d records, err %v; want %d", tc.in, len(got), err, tc.n)
		}
	}
}

func TestSeriesRecords(t *testing.T) {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s := &InputSeries{Series: "cpu_pct", Task: "${T}", Interval: Duration(time.Minute), Values: "50 _ 97.5"}
	recs, err := seriesRecords(s, start, vars{"T": "arn:aws:ecs:eu-west-1:111122223333:task/prod/aaaa1111bbbb2222cccc3333dddd4444"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2 (one gap)", len(recs))
	}
	evs := decodeAll(t, recs[1].raw)
	if len(evs) != 1 {
		t.Fatalf("decoded %d events", len(evs))
	}
	ev := evs[0]
	if !ev.Time.Equal(start.Add(2*time.Minute)) || ev.Entity.TaskARN != "arn:aws:ecs:eu-west-1:111122223333:task/prod/aaaa1111bbbb2222cccc3333dddd4444" {
		t.Errorf("time %s task %q", ev.Time, ev.Entity.TaskARN)
	}
	if !strings.Contains(string(ev.Raw), `"CpuUtilized":998.4`) {
		t.Errorf("raw %s: want CpuUtilized 998.4 (97.5%% of 1024)", ev.Raw)
	}
}

func decodeAll(t *testing.T, raw []byte) []*pipeline.Event {
	t.Helper()
	var evs []*pipeline.Event
	err := format.Decode(raw, pipeline.Position{File: "test"}, func(ev *pipeline.Event) error {
		evs = append(evs, ev)
		return nil
	}, func(e format.RecordError) { t.Errorf("decode: %v", e) })
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestRuleFilesFolderAndVerbose: a folder in rule_files loads every rule
// file below it (not *_test.yaml), and the verbose report lists counts.
func TestRuleFilesFolderAndVerbose(t *testing.T) {
	dir := t.TempDir()
	rules, err := os.ReadFile("testdata/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	exec, err := os.ReadFile("testdata/exec.json")
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(dir+"/pack/sub", 0o755))
	must(os.WriteFile(dir+"/pack/sub/rules.yaml", rules, 0o644))
	must(os.WriteFile(dir+"/pack/sub/ignored_test.yaml", []byte("not: [a rule file"), 0o644))
	must(os.WriteFile(dir+"/exec.json", exec, 0o644))
	must(os.WriteFile(dir+"/f_test.yaml", []byte(`rule_files: [pack]
tests:
  - name: one exec
    input_events: [{at: 1m, file: exec.json}]
    expect: [{eval_time: 2m, rule: t-exec, incidents: [{events: [e-1]}]}]
`), 0o644))
	res, err := RunFiles(context.Background(), []string{dir + "/f_test.yaml"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatal(res.Report())
	}
	if v := res.VerboseReport(); !strings.Contains(v, "at 2m t-exec: 1 incident(s), events [1]") {
		t.Errorf("verbose report lacks the eval summary:\n%s", v)
	}
}

// TestCompareSetOrderFree: expected incidents match actual ones in any
// order, and a near miss is reported as a per-field diff, not as one
// missing plus one unexpected incident.
func TestCompareSetOrderFree(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a := &pipeline.Incident{ID: "a", Rule: "r", Severity: pipeline.SeverityHigh, Key: map[string]string{"k": "1"}, Count: 1, Status: pipeline.IncidentOpen}
	b := &pipeline.Incident{ID: "b", Rule: "r", Severity: pipeline.SeverityLow, Key: map[string]string{"k": "2"}, Count: 3, Status: pipeline.IncidentResolved}
	str := func(s string) *string { return &s }
	n := func(i int) *int { return &i }
	exp := []ExpectedIncident{
		{Key: map[string]string{"k": "2"}, Count: n(3), Status: str("resolved")},
		{Key: map[string]string{"k": "1"}, Severity: str("high")},
	}
	if c := compareSet(exp, []*pipeline.Incident{a, b}, start); !c.ok() {
		t.Fatalf("want a match in any order: %+v", c)
	}
	exp[1].Severity = str("critical")
	c := compareSet(exp, []*pipeline.Incident{a, b}, start)
	if len(c.Pairs) != 1 || len(c.Missing) != 0 || len(c.Unexpected) != 0 {
		t.Fatalf("want exactly one differing pair: %+v", c)
	}
	if d := c.Pairs[0].Diffs; len(d) != 1 || d[0].String() != `severity: expected "critical", got "high"` {
		t.Fatalf("diffs = %v", d)
	}
	if c := compareSet(exp[:1], []*pipeline.Incident{a, b}, start); len(c.Unexpected) != 1 || c.Unexpected[0].ID != "a" {
		t.Fatalf("want incident a unexpected: %+v", c)
	}
}
