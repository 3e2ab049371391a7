package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// One CloudTrail record dated 9999-12-31 (of a type the pack's rules
// match) once aborted a replay with --state ("Time.MarshalJSON: year
// outside of range") and wrote no incident. It is a bad record: counted,
// logged with its position, dead-lettered, skipped.
func TestReplayTimeOutOfRangeIsSkipped(t *testing.T) {
	_, want, errOut := runCmd(t, "replay", "../../testdata/demo")
	if strings.Count(want, "\n") < 10 {
		t.Fatalf("demo replay gave too few incidents:\n%s", errOut)
	}
	dir := t.TempDir()
	rec := `{"Records":[{"eventVersion":"1.08","eventID":"5a1e0c3d-7b2f-4e8a-9c1d-99999999999","eventTime":"9999-12-31T00:00:00Z","eventSource":"ecs.amazonaws.com","eventName":"UpdateClusterSettings","awsRegion":"us-east-1","recipientAccountId":"123837392027","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::123837392027:assumed-role/DevOpsBreakGlass/mallory","accountId":"123837392027"},"requestParameters":{"cluster":"payments-prod","settings":[{"name":"containerInsights","value":"disabled"}]},"responseElements":null}]}`
	in := filepath.Join(dir, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(in, "future.json")
	if err := os.WriteFile(bad, []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	dl := filepath.Join(dir, "dead.jsonl")
	code, out, errOut := runCmd(t, "replay", "--state", filepath.Join(dir, "state"), "--dead-letter", dl, "../../testdata/demo", in)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if out != want {
		t.Errorf("incidents differ from the demo's:\n got %s\nwant %s", out, want)
	}
	for _, s := range []string{"records skipped: 1\n", "time_out_of_range                        1\n", "pos=" + bad + ":1 ", "9999-12-31T00:00:00Z is after"} {
		if !strings.Contains(errOut, s) {
			t.Errorf("stderr lacks %q:\n%s", s, errOut)
		}
	}
	dead, err := os.ReadFile(dl)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(dead), "\n"); n != 1 || !strings.Contains(string(dead), `"reason":"event time 9999-12-31T00:00:00Z is after`) {
		t.Errorf("dead letters = %q, want the one record", dead)
	}
}
