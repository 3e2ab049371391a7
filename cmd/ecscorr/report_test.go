package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/report/cases"
)

// demoCases is which demo incidents form which case (report/cases pins
// the same on the JSONL; here the replay also knows the tasks' task
// definitions, which must not change the grouping).
var demoCases = map[string][]string{
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

func TestReplayCasesFormat(t *testing.T) {
	code, out, errOut := runCmd(t, "replay", "--quiet", "--format", "cases", "../../testdata/demo")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	got := map[string][]string{}
	var order []string
	var chain cases.Case
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var c cases.Case
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("bad case line %q: %v", line, err)
		}
		order = append(order, c.ID)
		for _, m := range c.Incidents {
			got[c.ID] = append(got[c.ID], m.ID)
		}
		if c.ID == "case-b397160c7bb840b54c73" {
			chain = c
		}
	}
	if len(got) != len(demoCases) {
		t.Errorf("%d cases, want %d", len(got), len(demoCases))
	}
	for id, want := range demoCases {
		if !slices.Equal(got[id], want) {
			t.Errorf("case %s: %v, want %v", id, got[id], want)
		}
	}
	if !slices.Equal(order[:3], []string{"case-b397160c7bb840b54c73", "case-be9907353d5703beafef", "case-8b204b724fd99cf86661"}) {
		t.Errorf("critical cases first: %v", order)
	}
	// The replay read task A's task definition from its state change.
	if !slices.Equal(chain.TaskDefinitions, []string{"arn:aws:ecs:us-east-1:123837392027:task-definition/checkout-api:14"}) {
		t.Errorf("exec chain task definitions %v", chain.TaskDefinitions)
	}
}

// The table shows cases first, each with its incidents under it; the
// jsonl output is not changed by cases (TestReplayDemoGolden).
func TestReplayTableShowsCases(t *testing.T) {
	code, out, errOut := runCmd(t, "replay", "--quiet", "--format", "table", "../../testdata/demo")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "10 cases, 15 incidents" {
		t.Errorf("first line %q", lines[0])
	}
	caseRe := regexp.MustCompile(`^CASE (CRITICAL|HIGH|MEDIUM) (case-[0-9a-f]{20})  .*  \d+ incidents?  \[[a-z,-]+\]$`)
	var cur string
	members := map[string]int{}
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "CASE "):
			m := caseRe.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("case line %q", l)
				continue
			}
			cur = m[2]
		case strings.HasPrefix(l, "  SEVERITY"), l == "":
		case strings.HasPrefix(l, "  "):
			members[cur]++
		default:
			t.Errorf("unexpected line %q", l)
		}
	}
	for id, ms := range demoCases {
		if members[id] != len(ms) {
			t.Errorf("case %s: %d rows, want %d", id, members[id], len(ms))
		}
	}
	if !strings.Contains(out, "CASE CRITICAL case-b397160c7bb840b54c73  task payments-prod/4c1f0a2e9b7d4e5f8a6b3c2d1e0f9a8b  2023-07-10 12:01:10 .. 12:09:40  2 incidents  [execution,command-and-control]\n  CRITICAL  2023-07-10 12:01:10  ecs-exec-reverse-shell-c2") {
		t.Errorf("the exec chain case is not as expected:\n%s", out)
	}
}

// replay --report writes the HTML beside the normal output, with every
// evidence event's position and record read again from the inputs;
// ecscorr report renders the same cases from the JSONL alone.
func TestReplayReport(t *testing.T) {
	dir := t.TempDir()
	jsonl, page := filepath.Join(dir, "incidents.jsonl"), filepath.Join(dir, "report.html")
	code, _, errOut := runCmd(t, "replay", "--quiet", "--out", jsonl, "--report", page, "../../testdata/demo")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	got, err := os.ReadFile(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "demo.golden.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("--report changed the jsonl output")
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	h := string(b)
	for _, s := range []string{`id="count-cases">10<`, `id="count-incidents">15<`, `id="cases-critical">3<`, `id="cases-high">6<`, `id="cases-medium">1<`, `id="files-read">7<`, `id="records-read">3547<`, `id="files-skipped">3<`} {
		if !strings.Contains(h, s) {
			t.Errorf("report lacks %s", s)
		}
	}
	// 39 evidence steps, each with where it was read and its record.
	if n := strings.Count(h, `<td class="where mono"><span title="`); n != 39 {
		t.Errorf("%d steps with a position, want 39", n)
	}
	if n := strings.Count(h, `<details class="raw">`); n != 39 {
		t.Errorf("%d raw records, want 39", n)
	}
	if strings.Contains(h, "not known") {
		t.Errorf("an evidence event was not found again in the inputs")
	}
	for _, s := range []string{
		`title="../../testdata/demo/falco/falco-events.jsonl:2">falco-events.jsonl:2<`,
		"ecs.amazonaws.com ExecuteCommand by arn:aws:sts::123837392027:assumed-role/DevOpsBreakGlass/mallory from 198.51.100.77",
	} {
		if !strings.Contains(h, s) {
			t.Errorf("report lacks %q", s)
		}
	}

	page2 := filepath.Join(dir, "from-jsonl.html")
	if code, _, errOut := runCmd(t, "report", "--out", page2, jsonl); code != 0 {
		t.Fatalf("report: exit %d\n%s", code, errOut)
	}
	b2, err := os.ReadFile(page2)
	if err != nil {
		t.Fatal(err)
	}
	h2 := string(b2)
	for _, s := range []string{`id="count-cases">10<`, `id="count-incidents">15<`, `id="cases-critical">3<`, "Not known: this report was made from an incidents file"} {
		if !strings.Contains(h2, s) {
			t.Errorf("report from the JSONL lacks %s", s)
		}
	}
	for id := range demoCases {
		if !strings.Contains(h, `id="`+id+`"`) || !strings.Contains(h2, `id="`+id+`"`) {
			t.Errorf("case %s missing from a report", id)
		}
	}
}

func TestReportUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"report"}, 2, "want one incidents file"},
		{[]string{"report", "no/such.jsonl"}, 1, "no such file"},
		{[]string{"replay", "--report", "/no/such/dir/r.html", "../../testdata/demo/falco"}, 1, "creating report"},
	} {
		code, _, errOut := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d containing %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
}

// A table row that is not one line (a title with a newline) cannot be
// grouped in place: the cases are listed, then the table as it is.
func TestCasesTableFallback(t *testing.T) {
	incs := []pipeline.Incident{{ID: "a", Rule: "r", Title: "two\nlines", Severity: pipeline.SeverityHigh, Key: map[string]string{"task_arn": "arn:aws:ecs:us-east-1:1:task/c/t"}}}
	var b bytes.Buffer
	if err := writeCasesTable(&b, cases.Build(incs, cases.Options{}), incs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, "CASE HIGH "+cases.ID("a")+"  task c/t  ") || !strings.Contains(out, "\n\nSEVERITY") || !strings.Contains(out, "two\nlines") {
		t.Errorf("fallback table:\n%s", out)
	}
}
