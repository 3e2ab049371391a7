package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
)

var update = flag.Bool("update", false, "rewrite golden files")

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(g), len(w)); i++ {
			var gl, wl string
			if i < len(g) {
				gl = g[i]
			}
			if i < len(w) {
				wl = w[i]
			}
			if gl != wl {
				t.Errorf("%s line %d differs from the golden file (run with -update after checking):\n got: %s\nwant: %s", name, i+1, gl, wl)
				return
			}
		}
	}
}

// The demo replay is the front door: its incidents are pinned exactly.
func TestReplayDemoGolden(t *testing.T) {
	code, out, errOut := runCmd(t, "replay", "--format", "jsonl", "../../testdata/demo")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	golden(t, "demo.golden.jsonl", []byte(out))

	var incs []pipeline.Incident
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var inc pipeline.Incident
		if err := json.Unmarshal([]byte(line), &inc); err != nil {
			t.Fatalf("bad jsonl line %q: %v", line, err)
		}
		incs = append(incs, inc)
	}
	// Whatever the golden says, these facts of the story must hold.
	byRule := map[string][]pipeline.Incident{}
	for _, inc := range incs {
		byRule[inc.Rule] = append(byRule[inc.Rule], inc)
		for _, ev := range inc.Events {
			if ev.ID == "a2c4e6f8b0d24f6a8c0e2a4c6e8f0a15@2023-07-10T11:56:00.000Z" {
				t.Errorf("incident %s (%s) uses the GuardDuty sample finding", inc.ID, inc.Rule)
			}
		}
	}
	taskA := "arn:aws:ecs:us-east-1:123837392027:task/payments-prod/4c1f0a2e9b7d4e5f8a6b3c2d1e0f9a8b"
	var chain *pipeline.Incident
	for i, inc := range incs {
		if inc.Key["task_arn"] == taskA && inc.Severity == pipeline.SeverityCritical {
			chain = &incs[i]
		}
	}
	if chain == nil {
		t.Fatalf("no critical incident on task A (ECS Exec → reverse shell → C&C)")
	}
	if len(chain.Events) < 3 {
		t.Errorf("chain incident has %d events, want every step's evidence", len(chain.Events))
	}
	if !strings.Contains(errOut, "records read  cloudtrail") || !strings.Contains(errOut, "2906") {
		t.Errorf("summary lacks the CloudTrail count:\n%s", errOut)
	}
	// The time span of what was read includes the records no rule reads
	// (the first and last CloudTrail calls); the correlated span is inside.
	if !strings.Contains(errOut, "  event time of the records read: 2023-07-10T09:58:12Z .. 2023-07-10T12:37:50Z\n  event time: 2023-07-10T10:00:00Z .. 2023-07-10T12:35:00Z (correlated)\n") {
		t.Errorf("summary lacks the event time spans:\n%s", errOut)
	}
}

// Replaying the same input twice gives byte-identical output: incident IDs
// are deterministic and nothing depends on file or goroutine order.
func TestReplayDeterministic(t *testing.T) {
	_, a, _ := runCmd(t, "replay", "../../testdata/demo")
	_, b, _ := runCmd(t, "replay", "../../testdata/demo/falco", "../../testdata/demo/eventbridge", "../../testdata/demo/container-insights", "../../testdata/demo/AWSLogs")
	if a != b || a == "" {
		t.Fatalf("replay output depends on argument order:\n%s\n---\n%s", a, b)
	}
}

func TestReplayUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"replay"}, 2, "no input paths"},
		{[]string{"replay", "--format", "xml", "."}, 2, "--format must be jsonl or table"},
		{[]string{"replay", "--since", "yesterday", "."}, 2, "--since"},
		{[]string{"replay", "no/such/dir"}, 2, "no such file or directory"},
		{[]string{"frobnicate"}, 2, "unknown command"},
	} {
		code, _, errOut := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d containing %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
}

func TestRulesCheckReportsPositions(t *testing.T) {
	dir := t.TempDir()
	bad := `apiVersion: ecscorr/v1
kind: RuleFile
signals:
  - name: s1
    source: cloudtrail
    where: 'event.nosuchfield == "x"'
rules:
  - id: r1
    title: t
    severity: high
    tags: [drift]
    detect:
      match: {signal: missing_signal}
`
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd(t, "rules", "check", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{path + ":6:", "nosuchfield", path + ":13:", "missing_signal"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// Replay refuses to start on the same rules.
	code, _, errOut = runCmd(t, "replay", "--rules", path, "../../testdata/demo/falco")
	if code == 0 || !strings.Contains(errOut, "refusing to start") {
		t.Errorf("replay with broken rules: exit %d, stderr %q", code, errOut)
	}
}

func TestRulesCheckBuiltin(t *testing.T) {
	code, out, errOut := runCmd(t, "rules", "check")
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("built-in pack does not check clean: exit %d\n%s%s", code, out, errOut)
	}
}

func parseIncidents(t *testing.T, out string) map[string]pipeline.Incident {
	t.Helper()
	m := map[string]pipeline.Incident{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var inc pipeline.Incident
		if err := json.Unmarshal([]byte(line), &inc); err != nil {
			t.Fatalf("bad jsonl line %q: %v", line, err)
		}
		m[inc.ID] = inc
	}
	return m
}

// A replay cut in two at 12:05 with the state kept in Badger between the
// halves gives exactly the incidents of one uninterrupted run: the second
// half carries on the first half's sequences, windows, baselines, dedup
// keys and container map, and nothing is lost or doubled.
func TestReplayResumesFromState(t *testing.T) {
	_, whole, errOut := runCmd(t, "replay", "../../testdata/demo")
	want := parseIncidents(t, whole)
	if len(want) < 10 {
		t.Fatalf("only %d incidents in the whole run:\n%s", len(want), errOut)
	}
	dir := t.TempDir()
	code, first, errOut := runCmd(t, "replay", "--state", dir, "--until", "2023-07-10T12:05:00Z", "../../testdata/demo")
	if code != 0 {
		t.Fatalf("first half: exit %d\n%s", code, errOut)
	}
	code, second, errOut := runCmd(t, "replay", "--state", dir, "--since", "2023-07-10T12:05:00Z", "../../testdata/demo")
	if code != 0 {
		t.Fatalf("second half: exit %d\n%s", code, errOut)
	}
	got := parseIncidents(t, first)
	firstN := len(got)
	for id, inc := range parseIncidents(t, second) {
		got[id] = inc // the later state of an incident wins, as a sink upserts
	}
	if firstN == 0 || firstN == len(got) {
		t.Fatalf("the cut should split the incidents: %d before, %d in all", firstN, len(got))
	}
	if len(got) != len(want) {
		t.Errorf("%d incidents across the restart, %d in one run", len(got), len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("incident %s (%s) lost across the restart", id, w.Rule)
			continue
		}
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		if string(gb) != string(wb) {
			t.Errorf("incident %s differs across the restart:\n got %s\nwant %s", id, gb, wb)
		}
	}
}

// Bad input is counted, logged with its position, dead-lettered and
// skipped; the replay goes on and still finds the incident in the good
// records.
func TestReplayBadInputIsSkippedNotFatal(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("../../testdata/demo/falco/falco-events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(good), "\n")
	// A broken line and a record with a wrong type in the middle of real alerts.
	mixed := lines[0] + "{\"time\": \"2023-07-10T12:00:00Z\", \"rule\": \n" + `{"time": true, "rule": "x", "priority": "Notice", "output_fields": {}}` + "\n" + strings.Join(lines[1:], "")
	if err := os.WriteFile(filepath.Join(dir, "falco.jsonl"), []byte(mixed), 0o644); err != nil {
		t.Fatal(err)
	}
	// The dead-letter file sits inside the input folder on purpose: replay
	// must not read back what it writes (it once fed on its own records).
	dl := filepath.Join(dir, "dead.jsonl")
	code, out, errOut := runCmd(t, "replay", "--dead-letter", dl, dir, "../../testdata/demo/eventbridge")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "records skipped: 2") || !strings.Contains(errOut, "falco.jsonl:2") {
		t.Errorf("summary/log lacks the skipped records and their position:\n%s", errOut)
	}
	dead, err := os.ReadFile(dl)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(dead), "\n"); n != 2 {
		t.Errorf("dead-letter file has %d records, want 2:\n%s", n, dead)
	}
	// The good alerts still produce the pool-connection burst on task B.
	if !strings.Contains(out, `"rule":"ecs-mining-pool-connections-burst"`) {
		t.Errorf("incidents from the good records are missing:\n%s", out)
	}
}

// Two records with one CloudTrail eventID but other content: the first in
// event order is applied, the other is counted, logged and dead-lettered
// with both positions; a plain repeat is counted as a repeat.
func TestReplayConflictingDuplicateIDs(t *testing.T) {
	dir := t.TempDir()
	rec := func(name, user string) string {
		return `{"eventVersion":"1.08","eventID":"5e1c7e1e-0000-4000-8000-000000000001","eventTime":"2024-05-01T10:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"` + name +
			`","awsRegion":"eu-west-1","recipientAccountId":"111122223333","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/` + user +
			`","accountId":"111122223333"},"requestParameters":{"name":"main"},"sourceIPAddress":"203.0.113.9"}`
	}
	lines := rec("StopLogging", "alice") + "\n" + rec("StopLogging", "alice") + "\n" + rec("StopLogging", "mallory") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "trail.jsonl"), []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	dl := filepath.Join(t.TempDir(), "dead.jsonl")
	code, out, errOut := runCmd(t, "replay", "--dead-letter", dl, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	for _, want := range []string{
		"events already applied (repeated, or in the kept --state): 1\n",
		"events reusing an applied id with other content (dead-lettered): 1\n",
		"events correlated: 1 ",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("summary lacks %q:\n%s", want, errOut)
		}
	}
	incs := parseIncidents(t, out)
	if len(incs) != 1 {
		t.Fatalf("%d incidents, want 1:\n%s", len(incs), out)
	}
	b, err := os.ReadFile(dl)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		File, Reason, ID string
		Line             int
		First            struct{ Line int }
		Sample           string
	}
	if err := json.Unmarshal(b, &d); err != nil || bytes.Count(b, []byte("\n")) != 1 {
		t.Fatalf("dead letters: %v\n%s", err, b)
	}
	// Raw bytes break the tie ("alice" sorts before "mallory"): line 1 is
	// applied, line 2 repeats it, line 3 conflicts with it.
	if d.Reason != "conflicting_duplicate" || d.ID != "5e1c7e1e-0000-4000-8000-000000000001" || d.Line != 3 || d.First.Line != 1 {
		t.Errorf("dead letter %+v, want the conflict at line 3 against line 1", d)
	}
	if !strings.Contains(d.Sample, "user/mallory") {
		t.Errorf("dead-lettered copy is not mallory's: %s", d.Sample)
	}
}

// A rerun over a state that already holds the input applies nothing again:
// the same incidents, byte for byte, no event counted twice or late.
func TestReplayRerunOverStateIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	code, first, errOut := runCmd(t, "replay", "--state", dir, "../../testdata/demo")
	if code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, errOut)
	}
	code, second, errOut := runCmd(t, "replay", "--state", dir, "../../testdata/demo")
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s", code, errOut)
	}
	if second != first {
		t.Errorf("rerun reports other incidents:\n got %s\nwant %s", second, first)
	}
	for _, want := range []string{"events correlated: 0 ", "events already applied (repeated, or in the kept --state): 677\n", "engine: 0 events, 0 late"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("rerun summary lacks %q:\n%s", want, errOut)
		}
	}
}

// An unwritable --out stops the run before it commits anything, and the
// next run reports every incident.
func TestReplayUnwritableOutCommitsNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	code, _, errOut := runCmd(t, "replay", "--state", dir, "--out", filepath.Join(t.TempDir(), "missing", "out.jsonl"), "../../testdata/demo")
	if code != 1 || !strings.Contains(errOut, "no such file or directory") {
		t.Fatalf("exit %d, want 1 with the reason\n%s", code, errOut)
	}
	_, whole, _ := runCmd(t, "replay", "../../testdata/demo")
	code, again, errOut := runCmd(t, "replay", "--state", dir, "../../testdata/demo")
	if code != 0 || again != whole {
		t.Fatalf("exit %d; the run after the failure reports %d incidents, want %d\n%s", code, len(parseIncidents(t, again)), len(parseIncidents(t, whole)), errOut)
	}
}
