package cases

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func readJSONL(t *testing.T, path string) []pipeline.Incident {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var incs []pipeline.Incident
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var inc pipeline.Incident
		if err := json.Unmarshal(sc.Bytes(), &inc); err != nil {
			t.Fatal(err)
		}
		incs = append(incs, inc)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return incs
}

func membership(cs []Case) map[string][]string {
	out := map[string][]string{}
	for _, c := range cs {
		for _, m := range c.Incidents {
			out[c.ID] = append(out[c.ID], m.ID)
		}
	}
	return out
}

// The demo's 15 incidents form 10 cases: task A's exec chain with its
// reverse shell, task B's four mining incidents, the risky task
// definition with its runtime alert, and seven account-wide drift
// incidents on their own.
func TestDemoCases(t *testing.T) {
	incs := readJSONL(t, "testdata/demo.jsonl")
	if len(incs) != 15 {
		t.Fatalf("demo has %d incidents, want 15", len(incs))
	}
	cs := Build(incs, Options{})
	want := map[string][]string{
		"case-b397160c7bb840b54c73": {"95b44a79079f3724292827f9ce462b20", "aa244c8c2a8af4338479d4d572c400eb"},
		"case-be9907353d5703beafef": {"fc8719a0474d20c621886e9714d98def", "f2dd0dbb67f903324670318af7ff1c8d", "17a3e5e71f26ad89e32e7085c9893bf2", "42ef070b3a76eb38803b436a347b56ee"},
		"case-8b204b724fd99cf86661": {"1ba26b668106e6ee623f5d4ed1d0fabd", "7047697184b2a045ce4ef1848b63aef1"},
		"case-c207b7e1b19fbfbfdbde": {"9997ef274a6b28937b6958f14f7d7f98"},
		"case-cba777f72b57701deaac": {"6e352816b0833ba5b40629ea3925f6b9"},
		"case-fa21ddef2e9868447c9e": {"ac47d4daf4f66e5e9e87fcbd2c5d6624"},
		"case-cd1498049e8c31dcd38b": {"fe51465ff99232686560f2ec71911361"},
		"case-e1f46013d45f1df44074": {"536aa8488aaf247ce9786eb66af17628"},
		"case-b0d02f154b9037366085": {"dc8b640fa94c6a40ed194985f509ca6a"},
		"case-0418a0683cab4b4003a2": {"89bed30f141b68f92cd5bbd732a765f1"},
	}
	got := membership(cs)
	if len(got) != len(want) {
		t.Errorf("%d cases, want %d: %v", len(got), len(want), got)
	}
	for id, ms := range want {
		if !slices.Equal(got[id], ms) {
			t.Errorf("case %s: members %v, want %v", id, got[id], ms)
		}
	}
	// Order: critical cases first, by first seen.
	var order []string
	for _, c := range cs[:3] {
		order = append(order, c.ID)
	}
	if want := []string{"case-b397160c7bb840b54c73", "case-be9907353d5703beafef", "case-8b204b724fd99cf86661"}; !slices.Equal(order, want) {
		t.Errorf("first cases %v, want %v", order, want)
	}
	chain := cs[0]
	if chain.Severity != pipeline.SeverityCritical || !slices.Equal(chain.Tactics, []string{"execution", "command-and-control"}) ||
		!slices.Equal(chain.Principals, []string{"arn:aws:sts::123837392027:assumed-role/DevOpsBreakGlass/mallory"}) ||
		chain.Subject != "task payments-prod/4c1f0a2e9b7d4e5f8a6b3c2d1e0f9a8b" ||
		!chain.FirstSeen.Equal(time.Date(2023, 7, 10, 12, 1, 10, 0, time.UTC)) || !chain.LastSeen.Equal(time.Date(2023, 7, 10, 12, 9, 40, 0, time.UTC)) {
		t.Errorf("exec chain case: %+v", chain)
	}
	// The storyline: the shared Falco event is one step of both incidents.
	var kinds []string
	for _, s := range chain.Steps {
		k := s.Kind
		if s.Event != nil {
			k += ":" + string(s.Event.Source)
		}
		kinds = append(kinds, k)
	}
	if want := []string{"incident", "event:cloudtrail", "incident", "event:falco", "event:guardduty", "event:guardduty"}; !slices.Equal(kinds, want) {
		t.Errorf("exec chain steps %v, want %v", kinds, want)
	}
	if s := chain.Steps[3]; !slices.Equal(s.Incidents, []string{"95b44a79079f3724292827f9ce462b20", "aa244c8c2a8af4338479d4d572c400eb"}) {
		t.Errorf("shared shell step belongs to %v", s.Incidents)
	}

	b, err := json.MarshalIndent(cs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	golden := filepath.Join("testdata", "demo.cases.golden.json")
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantB, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, wantB) {
		t.Errorf("cases differ from %s (rerun with -update and review the diff)", golden)
	}
}

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

const (
	taskA = "arn:aws:ecs:eu-west-1:111122223333:task/prod/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	taskB = "arn:aws:ecs:eu-west-1:111122223333:task/prod/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	tdX   = "arn:aws:ecs:eu-west-1:111122223333:task-definition/x:3"
	alice = "arn:aws:sts::111122223333:assumed-role/Ops/alice"
)

func inc(id string, first, last time.Duration, key map[string]string, fields map[string]any, evs ...string) pipeline.Incident {
	in := pipeline.Incident{ID: id, Rule: "r-" + id, Title: "t " + id, Severity: pipeline.SeverityHigh, Key: key, Fields: fields,
		FirstSeen: t0.Add(first), LastSeen: t0.Add(last), Status: pipeline.IncidentOpen}
	for _, e := range evs {
		in.Events = append(in.Events, pipeline.EventRef{Source: pipeline.SourceFalco, ID: e, Time: t0.Add(first)})
	}
	return in
}

func TestLinking(t *testing.T) {
	h := time.Hour
	task := func(a string) map[string]string { return map[string]string{"task_arn": a} }
	tests := []struct {
		name   string
		incs   []pipeline.Incident
		o      Options
		groups [][]string // members per case, each in first-seen order, cases sorted by first member
	}{
		{
			name:   "unrelated tasks stay apart",
			incs:   []pipeline.Incident{inc("a", 0, h, task(taskA), nil), inc("b", 0, h, task(taskB), nil)},
			groups: [][]string{{"a"}, {"b"}},
		},
		{
			name:   "same task within the window",
			incs:   []pipeline.Incident{inc("a", 0, h, task(taskA), nil), inc("b", 10*h, 11*h, task(taskA), nil)},
			groups: [][]string{{"a", "b"}},
		},
		{
			name: "window boundary joins",
			incs: []pipeline.Incident{inc("a", 0, h, task(taskA), nil), inc("b", 3*h, 4*h, task(taskA), nil)},
			o:    Options{Window: 2 * h}, groups: [][]string{{"a", "b"}},
		},
		{
			name: "past the window stays apart",
			incs: []pipeline.Incident{inc("a", 0, h, task(taskA), nil), inc("b", 3*h+time.Nanosecond, 4*h, task(taskA), nil)},
			o:    Options{Window: 2 * h}, groups: [][]string{{"a"}, {"b"}},
		},
		{
			name:   "default window is 24h",
			incs:   []pipeline.Incident{inc("a", 0, h, task(taskA), nil), inc("b", 25*h, 26*h, task(taskA), nil), inc("c", 50*h+time.Second, 51*h, task(taskA), nil)},
			groups: [][]string{{"a", "b"}, {"c"}},
		},
		{
			name: "a chain within the window joins (single linkage)",
			incs: []pipeline.Incident{inc("a", 0, h, task(taskA), nil), inc("b", 2*h, 3*h, task(taskA), nil), inc("c", 5*h, 6*h, task(taskA), nil)},
			o:    Options{Window: 2 * h}, groups: [][]string{{"a", "b", "c"}},
		},
		{
			name: "a long incident keeps the window open",
			incs: []pipeline.Incident{inc("a", 0, 10*h, task(taskA), nil), inc("b", h, 2*h, task(taskA), nil), inc("c", 11*h, 12*h, task(taskA), nil)},
			o:    Options{Window: 2 * h}, groups: [][]string{{"a", "b", "c"}},
		},
		{
			name: "task definition drift links to the task's alerts when the task's definition is known",
			incs: []pipeline.Incident{
				inc("drift", 0, 0, map[string]string{"account": "111122223333", "task_definition_arn": tdX}, nil),
				inc("alert", h, h, task(taskA), nil), inc("other", h, h, task(taskB), nil)},
			o:      Options{TaskDefinitions: map[string]string{taskA: tdX}},
			groups: [][]string{{"drift", "alert"}, {"other"}},
		},
		{
			name:   "two tasks of one task definition stay apart without an incident on it",
			incs:   []pipeline.Incident{inc("a", 0, h, task(taskA), nil), inc("b", h, 2*h, task(taskB), nil)},
			o:      Options{TaskDefinitions: map[string]string{taskA: tdX, taskB: tdX}},
			groups: [][]string{{"a"}, {"b"}},
		},
		{
			name: "a drifted task definition joins the alerts of two of its tasks",
			incs: []pipeline.Incident{
				inc("drift", 0, 0, map[string]string{"task_definition_arn": tdX}, nil),
				inc("a", h, h, task(taskA), nil), inc("b", 2*h, 2*h, task(taskB), nil)},
			o:      Options{TaskDefinitions: map[string]string{taskA: tdX, taskB: tdX}},
			groups: [][]string{{"drift", "a", "b"}},
		},
		{
			name: "a task's alert past the window of its task definition's drift stays apart",
			incs: []pipeline.Incident{
				inc("drift", 0, 0, map[string]string{"task_definition_arn": tdX}, nil), inc("alert", 3*h+time.Second, 4*h, task(taskA), nil)},
			o:      Options{Window: 3 * h, TaskDefinitions: map[string]string{taskA: tdX}},
			groups: [][]string{{"drift"}, {"alert"}},
		},
		{
			name: "task definition unknown: no link",
			incs: []pipeline.Incident{
				inc("drift", 0, 0, map[string]string{"task_definition_arn": tdX}, nil), inc("alert", h, h, task(taskA), nil)},
			groups: [][]string{{"drift"}, {"alert"}},
		},
		{
			name: "task definition in a field links",
			incs: []pipeline.Incident{
				inc("drift", 0, 0, map[string]string{"task_definition_arn": tdX}, nil),
				inc("alert", h, h, map[string]string{"x": "y"}, map[string]any{"task_definition_arn": tdX})},
			groups: [][]string{{"drift", "alert"}},
		},
		{
			name: "the principal that exec'd into two tasks joins them",
			incs: []pipeline.Incident{
				inc("execA", 0, h, task(taskA), map[string]any{"exec_principal": alice}),
				inc("shellA", h, h, task(taskA), nil),
				inc("execB", 2*h, 3*h, task(taskB), map[string]any{"exec_principal": alice}),
				inc("mineB", 4*h, 5*h, task(taskB), nil)},
			groups: [][]string{{"execA", "shellA", "execB", "mineB"}},
		},
		{
			name: "the same principal outside the window stays apart",
			incs: []pipeline.Incident{
				inc("execA", 0, h, task(taskA), map[string]any{"exec_principal": alice}),
				inc("execB", 30*h, 31*h, task(taskB), map[string]any{"exec_principal": alice})},
			groups: [][]string{{"execA"}, {"execB"}},
		},
		{
			name: "shared evidence links incidents without a common key",
			incs: []pipeline.Incident{
				inc("a", 0, h, map[string]string{"account": "1", "region": "r"}, nil, "ev1"),
				inc("b", 0, h, map[string]string{"account": "1", "cluster": "c"}, nil, "ev1"),
				inc("c", 0, h, map[string]string{"account": "1", "region": "r"}, nil, "ev2")},
			groups: [][]string{{"a", "b"}, {"c"}},
		},
		{
			name: "account-wide incidents do not link by account",
			incs: []pipeline.Incident{
				inc("a", 0, h, map[string]string{"account": "1", "region": "r"}, nil),
				inc("b", 0, h, map[string]string{"account": "1", "region": "r"}, nil)},
			groups: [][]string{{"a"}, {"b"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := Build(tt.incs, tt.o)
			var got [][]string
			for _, c := range cs {
				var ms []string
				for _, m := range c.Incidents {
					ms = append(ms, m.ID)
				}
				got = append(got, ms)
			}
			slices.SortFunc(got, func(a, b []string) int {
				ia := slices.IndexFunc(tt.incs, func(i pipeline.Incident) bool { return i.ID == a[0] })
				ib := slices.IndexFunc(tt.incs, func(i pipeline.Incident) bool { return i.ID == b[0] })
				return ia - ib
			})
			if !slicesEqual2(got, tt.groups) {
				t.Errorf("cases %v, want %v", got, tt.groups)
			}
		})
	}
}

func slicesEqual2(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// A later incident that joins keeps the case id; an earlier one takes
// over, and a merge keeps the earlier case's id.
func TestCaseIDStability(t *testing.T) {
	h := time.Hour
	a := inc("a", 2*h, 3*h, map[string]string{"task_arn": taskA}, nil)
	later := inc("later", 5*h, 6*h, map[string]string{"task_arn": taskA}, nil)
	earlier := inc("earlier", 0, h, map[string]string{"task_arn": taskA}, nil)
	alone := Build([]pipeline.Incident{a}, Options{})[0].ID
	if alone != ID("a") {
		t.Fatalf("id %s, want ID(a) %s", alone, ID("a"))
	}
	if got := Build([]pipeline.Incident{later, a}, Options{})[0].ID; got != alone {
		t.Errorf("a later incident changed the id: %s, want %s", got, alone)
	}
	if got := Build([]pipeline.Incident{a, earlier}, Options{})[0].ID; got != ID("earlier") {
		t.Errorf("an earlier incident: id %s, want %s", got, ID("earlier"))
	}
	// The input order never matters.
	x := Build([]pipeline.Incident{a, later, earlier}, Options{})
	y := Build([]pipeline.Incident{earlier, a, later}, Options{})
	bx, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	if !bytes.Equal(bx, by) {
		t.Errorf("input order changed the cases:\n%s\n%s", bx, by)
	}
}

func TestTactics(t *testing.T) {
	for _, tt := range []struct {
		tech string
		want []string
	}{
		{"T1059.004", []string{"execution"}},
		{"t1496", []string{"impact"}},
		{"T1562.008", []string{"defense-evasion"}},
		{"T1685.002", []string{"defense-impairment"}},
		{"T9999", nil},
	} {
		if got := TacticsOf(tt.tech); !slices.Equal(got, tt.want) {
			t.Errorf("TacticsOf(%s) = %v, want %v", tt.tech, got, tt.want)
		}
	}
	in := inc("a", 0, 0, nil, nil)
	in.Mitre = []string{"T1496", "T1609", "T9999"}
	in.Tags = []string{"attack.persistence", "drift"}
	in.Severity = pipeline.SeverityCritical
	c := Build([]pipeline.Incident{in, inc("b", 0, 0, nil, nil)}, Options{})[0]
	if want := []string{"execution", "persistence", "impact"}; !slices.Equal(c.Tactics, want) {
		t.Errorf("tactics %v, want %v", c.Tactics, want)
	}
	if want := []string{"T1496", "T1609", "T9999"}; !slices.Equal(c.Techniques, want) {
		t.Errorf("techniques %v, want %v", c.Techniques, want)
	}
}
