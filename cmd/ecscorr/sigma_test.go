package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
)

const sigmaHQ = "../../correlate/sigma/testdata/aws_cloudtrail"

func TestRulesCheckSigma(t *testing.T) {
	if code, out, errOut := runCmd(t, "rules", "check", "builtin", sigmaHQ); code != 0 || out != "ok: 79 signals, 70 rules\n" {
		t.Errorf("builtin + SigmaHQ: exit %d %q\n%s", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, "rules", "check", sigmaHQ); code != 0 || out != "ok: 57 signals, 57 rules\n" {
		t.Errorf("SigmaHQ alone: exit %d %q\n%s", code, out, errOut)
	}
	// --rules, as replay and run take it, means a PATH.
	if code, out, errOut := runCmd(t, "rules", "check", "--rules", "builtin", "--rules", sigmaHQ); code != 0 || out != "ok: 79 signals, 70 rules\n" {
		t.Errorf("--rules builtin --rules SigmaHQ: exit %d %q\n%s", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("title: t\nid: 0b8b7e3c-0000-4000-8000-000000000001\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel:\n    eventName|nope: x\n  condition: sel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd(t, "rules", "check", "builtin", bad)
	if code != 1 || !strings.Contains(errOut, bad+":8:15: error: ") || !strings.Contains(errOut, "nope") {
		t.Errorf("unknown modifier: exit %d\n%s", code, errOut)
	}
}

// The demo replayed with the pack and the 57 SigmaHQ rules, through the
// real binary: the pack's incidents are the golden's byte for byte, and
// each Sigma rule raises exactly one incident per matching record, as many
// as package sigma's golden counts for the demo corpus.
func TestReplayBuiltinPlusSigmaHQ(t *testing.T) {
	bin := realBinary(t)
	out, err := exec.Command(bin, "replay", "--quiet", "--rules", "builtin", "--rules", sigmaHQ, "../../testdata/demo").Output()
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	var golden struct {
		Demo struct {
			Matches map[string]int
		}
	}
	data, err := os.ReadFile("../../correlate/sigma/testdata/demo_matches.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden.Demo.Matches) != 57 {
		t.Fatalf("%d rules in the golden, want 57", len(golden.Demo.Matches))
	}
	idRe := regexp.MustCompile(`(?m)^id: (\S+)`)
	want := map[string]int{} // Sigma id -> matches
	for file, n := range golden.Demo.Matches {
		src, err := os.ReadFile(filepath.Join(sigmaHQ, file))
		if err != nil {
			t.Fatal(err)
		}
		m := idRe.FindSubmatch(src)
		if m == nil {
			t.Fatalf("%s: no id", file)
		}
		want[string(m[1])] = n
	}
	got := map[string]int{}
	seen := map[string]bool{} // rule + event id
	var pack []string
	for _, line := range strings.SplitAfter(string(out), "\n") {
		if line == "" {
			continue
		}
		var inc pipeline.Incident
		if err := json.Unmarshal([]byte(line), &inc); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		if _, ok := want[inc.Rule]; !ok {
			pack = append(pack, line)
			continue
		}
		got[inc.Rule]++
		if len(inc.Events) != 1 || inc.Count != 1 {
			t.Errorf("%s: %d events, count %d; want one event per incident", inc.Rule, len(inc.Events), inc.Count)
			continue
		}
		k := inc.Rule + "/" + inc.Events[0].ID
		if seen[k] {
			t.Errorf("%s: event %s raised two incidents", inc.Rule, inc.Events[0].ID)
		}
		seen[k] = true
	}
	total := 0
	for id, n := range want {
		total += n
		if got[id] != n {
			t.Errorf("rule %s: %d incidents, want %d", id, got[id], n)
		}
	}
	if total != 115 {
		t.Errorf("golden total %d, want 115", total)
	}
	pinned, err := os.ReadFile("testdata/demo.golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(pack) != 15 || strings.Join(pack, "") != string(pinned) {
		t.Errorf("%d pack incidents; equal to the golden: %v", len(pack), strings.Join(pack, "") == string(pinned))
	}
	// Every event spilled to disk on its way through the sort: the Sigma
	// hits, kept without their records, come back with their verdicts.
	spilled, err := exec.Command(bin, "replay", "--quiet", "--sort-mem", "1", "--rules", "builtin", "--rules", sigmaHQ, "../../testdata/demo").Output()
	if err != nil {
		t.Fatalf("replay --sort-mem 1: %v", err)
	}
	if string(spilled) != string(out) {
		t.Errorf("replay with every event spilled differs: %d bytes, want %d", len(spilled), len(out))
	}
}

// rules test runs Sigma rules like any other: two matching records, two
// incidents (the record's task does not key them).
func TestRulesTestSigma(t *testing.T) {
	dir := t.TempDir()
	rec, err := os.ReadFile("../../correlate/ruletest/testdata/exec.json")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"exec.json": string(rec),
		"exec_sigma.yml": `title: ECS exec
id: 0b8b7e3c-0000-4000-8000-000000000002
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventSource: ECS.amazonaws.com
    eventName: executecommand
  condition: sel
level: high
`,
		"ok_test.yaml": `rule_files: [exec_sigma.yml]
start_time: 2025-06-01T12:00:00Z
tests:
  - name: one incident per matching record
    input_events:
      - {at: 1m, file: exec.json, set: {eventID: a}}
      - {at: 2m, file: exec.json, set: {eventID: b}}
    expect:
      - eval_time: 5m
        rule: 0b8b7e3c-0000-4000-8000-000000000002
        incidents:
          - {severity: high, count: 1, events: [a], title: ECS exec}
          - {severity: high, count: 1, events: [b], title: ECS exec}
`,
		"wrong_test.yaml": `rule_files: [exec_sigma.yml]
start_time: 2025-06-01T12:00:00Z
tests:
  - name: folded (wrong)
    input_events:
      - {at: 1m, file: exec.json, set: {eventID: a}}
      - {at: 2m, file: exec.json, set: {eventID: b}}
    expect:
      - eval_time: 5m
        rule: 0b8b7e3c-0000-4000-8000-000000000002
        incidents: [{count: 2, events: [a, b]}]
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errOut := runCmd(t, "rules", "test", filepath.Join(dir, "ok_test.yaml")); code != 0 {
		t.Errorf("ok: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, "rules", "test", filepath.Join(dir, "wrong_test.yaml")); code != 1 || !strings.Contains(out+errOut, "FAIL") {
		t.Errorf("wrong: exit %d\n%s%s", code, out, errOut)
	}
	// --rules loads the Sigma file for a test file that names no rule file.
	bare := filepath.Join(dir, "bare_test.yaml")
	if err := os.WriteFile(bare, []byte(strings.Replace(files["ok_test.yaml"], "rule_files: [exec_sigma.yml]\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCmd(t, "rules", "test", bare); code != 1 || !strings.Contains(errOut, "rule_files is empty (and no --rules given)") {
		t.Errorf("bare without --rules: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, "rules", "test", "--rules", filepath.Join(dir, "exec_sigma.yml"), bare); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("bare with --rules: exit %d\n%s%s", code, out, errOut)
	}
}

// A correlation window with an upper bound (lt) is decided by the end of
// the archive, its newest record, even when that record is relevant to
// no rule and is dropped before correlation: alice failed twice in her
// 5 minutes, bob three times; the archive goes on to 10:30 with a
// ListBuckets no rule reads. (Before, the window stayed undecided unless
// another loaded rule matched the last record.)
//
// Without the 10:30 record (cloudtrail-cut.json) the archive ends at
// 10:02, inside both windows: the replay decides them on the events they
// hold, as a query over the same records would, and says so.
func TestReplayDecidesWindowsToTheArchiveEnd(t *testing.T) {
	bin := realBinary(t)
	for _, data := range []string{"cloudtrail.json", "cloudtrail-cut.json"} {
		cmd := exec.Command(bin, "replay", "--rules", "testdata/sigma-end/rule.yml", "testdata/sigma-end/"+data)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("replay %s: %v\n%s", data, err, stderr.String())
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line == "" {
				continue
			}
			var inc pipeline.Incident
			if err := json.Unmarshal([]byte(line), &inc); err != nil {
				t.Fatal(err)
			}
			got = append(got, inc.Rule+" "+inc.Key["userIdentity.arn"]+" "+fmt.Sprint(inc.Count)+" "+inc.LastSeen.Format("15:04"))
		}
		if len(got) != 1 || got[0] != "c-lt arn:aws:iam::111122223333:user/alice 1 10:05" {
			t.Errorf("%s: incidents %q, want one c-lt for alice, last seen at its window's end", data, got)
		}
		decided := strings.Contains(stderr.String(), "windows open at the end of the input, decided on the events they held: 2")
		if want := data == "cloudtrail-cut.json"; decided != want {
			t.Errorf("%s: summary says windows were decided at the end: %v, want %v\n%s", data, decided, want, stderr.String())
		}
	}
}

// JSON integers beyond 2^53 keep their digits through the real binary:
// the Sigma matchers compare them exactly (equal, ordered, as text), the
// rule language compares them as numbers, and templates print them whole.
// thingId is 9007199254740993, 9007199254740992 (2^53),
// 9223372036854775807 and 12 in records 0 to 3; rounded to float64, the
// first equals the second, and the titles would read 9007199254740992
// and 9223372036854775808.
func TestReplayComparesLongIntegersExactly(t *testing.T) {
	bin := realBinary(t)
	dir := "testdata/sigma-numbers/"
	out, err := exec.Command(bin, "replay", "--quiet", "--rules", dir+"rules.yml", "--rules", dir+"ecscorr.yml", dir+"cloudtrail.json").Output()
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var inc pipeline.Incident
		if err := json.Unmarshal([]byte(line), &inc); err != nil {
			t.Fatal(err)
		}
		if len(inc.Events) != 1 {
			t.Fatalf("incident %s has %d events", inc.ID, len(inc.Events))
		}
		id := inc.Events[0].ID
		got = append(got, inc.Rule+" "+id[len(id)-1:]+" "+inc.Title)
	}
	want := []string{
		"e-gt 0 thing 9007199254740993",
		"n-eq 0 thing 9007199254740993",
		"n-gt 0 thing above 2^53",
		"n-text 0 thing ending 0993, as text",
		"e-gt 2 thing 9223372036854775807",
		"n-gt 2 thing above 2^53",
	}
	if !slices.Equal(got, want) {
		t.Errorf("incidents (rule, record, title):\n got %q\nwant %q", got, want)
	}
}
