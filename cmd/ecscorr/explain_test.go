package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// --explain says, for each incident, which signal each evidence event
// matched, the signal's condition and the values the record held; the
// incidents themselves are those of a plain replay.
func TestReplayExplain(t *testing.T) {
	code, out, errOut := runCmd(t, "replay", "--quiet", "--explain", "../../testdata/demo")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	golden, err := os.ReadFile("testdata/demo.golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := strings.Split(strings.TrimSpace(string(golden)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d incidents, want %d", len(lines), len(want))
	}
	explained := map[string][]string{}
	for i, l := range lines {
		var withWhy map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &withWhy); err != nil {
			t.Fatal(err)
		}
		var why []string
		if err := json.Unmarshal(withWhy["explain"], &why); err != nil || len(why) < 2 {
			t.Fatalf("incident %d: explain %s", i, withWhy["explain"])
		}
		delete(withWhy, "explain")
		var plain map[string]json.RawMessage
		if err := json.Unmarshal([]byte(want[i]), &plain); err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(withWhy)
		b, _ := json.Marshal(plain)
		if string(a) != string(b) {
			t.Errorf("incident %d differs from the plain replay:\n got %s\nwant %s", i, a, b)
		}
		var id, rule string
		json.Unmarshal(plain["id"], &id)
		json.Unmarshal(plain["rule"], &rule)
		explained[rule] = why
	}
	chain := strings.Join(explained["ecs-exec-reverse-shell-c2"], "\n")
	for _, s := range []string{
		"why: rule ecs-exec-reverse-shell-c2: sequence of 3 steps within 30m0s, by task_arn",
		"exec: cloudtrail ecs.amazonaws.com:ExecuteCommand 2023-07-10 12:01:10 at ../../testdata/demo/AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/123837392027_CloudTrail_us-east-1_20230710T1235Z_dEm0aTtAcKsToRy1.json.gz:1 matched signal ct_ecs_exec",
		`  condition: raw.eventSource == "ecs.amazonaws.com" && raw.eventName == "ExecuteCommand"`,
		`  saw: errorCode absent eventName="ExecuteCommand" eventSource="ecs.amazonaws.com"`,
		`  fields: command="/bin/sh" container="checkout-api" principal="arn:aws:sts::123837392027:assumed-role/DevOpsBreakGlass/mallory"`,
		"shell: falco Redirect STDOUT/STDIN to Network Connection in Container 2023-07-10 12:03:25 at ../../testdata/demo/falco/falco-events.jsonl:2 matched signal falco_reverse_shell",
		`  fields: cmdline="sh -i" dest="203.0.113.45:4444" process="sh"`,
		"c2: guardduty Backdoor:Runtime/C&CActivity.B 2023-07-10 12:09:40",
	} {
		if !strings.Contains(chain, s) {
			t.Errorf("the exec chain's explanation lacks %q:\n%s", s, chain)
		}
	}
	// A Sigma rule: its detection's position and the nested values it read.
	code, out, errOut = runCmd(t, "replay", "--quiet", "--explain", "--rules", "../../correlate/sigma/testdata/aws_cloudtrail/aws_cloudtrail_disable_logging.yml", "../../testdata/demo")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	first := strings.SplitN(out, "\n", 2)[0]
	for _, s := range []string{
		`"explain":["why: rule 4db60cc0-36fb-42b7-9b58-a5b53019fb74: match, each event on its own (Sigma rule at ../../correlate/sigma/testdata/aws_cloudtrail/aws_cloudtrail_disable_logging.yml:1:1)"`,
		`matched signal sigma_4db60cc0_36fb_42b7_9b58_a5b53019fb74","  condition: Sigma detection at ../../correlate/sigma/testdata/aws_cloudtrail/aws_cloudtrail_disable_logging.yml:1:1","  saw: eventName=\"`,
		`eventSource=\"cloudtrail.amazonaws.com\"`,
	} {
		if !strings.Contains(first, s) {
			t.Errorf("Sigma explanation lacks %q:\n%s", s, first)
		}
	}
}
