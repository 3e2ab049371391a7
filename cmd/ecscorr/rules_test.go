package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// docExample writes the complete example of docs/rules.md (which reuses
// the pack's macro ct_ok and list shells) into dir/my-rules/.
func docExample(t *testing.T, dir string) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	s = s[strings.Index(s, "## 9. Complete example"):]
	start := strings.Index(s, "```yaml\n") + len("```yaml\n")
	end := strings.Index(s[start:], "```")
	rulesDir := filepath.Join(dir, "my-rules")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rulesDir, "example.yaml"), []byte(s[start:start+end]), 0o644); err != nil {
		t.Fatal(err)
	}
	return rulesDir
}

func TestRulesCheckBuiltinPlusOwn(t *testing.T) {
	mine := docExample(t, t.TempDir())
	code, pack, errOut := runCmd(t, "rules", "check")
	if code != 0 {
		t.Fatalf("pack: exit %d\n%s", code, errOut)
	}
	code, out, errOut := runCmd(t, "rules", "check", "builtin", mine)
	if code != 0 || out != "ok: 25 signals, 14 rules\n" || pack != "ok: 22 signals, 13 rules\n" {
		t.Fatalf("exit %d, %q (pack %q)\n%s", code, out, pack, errOut)
	}
	if !strings.Contains(errOut, filepath.Join(mine, "example.yaml")+":8:3: note: macro ct_ok hides the built-in pack's macro") {
		t.Errorf("no note on ct_ok:\n%s", errOut)
	}
	// --builtin is the same as the PATH builtin.
	if code, out2, _ := runCmd(t, "rules", "check", "--builtin", mine); code != 0 || out2 != out {
		t.Errorf("--builtin: exit %d %q", code, out2)
	}
	// Without builtin, the example loads alone.
	if code, out3, _ := runCmd(t, "rules", "check", mine); code != 0 || out3 != "ok: 3 signals, 1 rules\n" {
		t.Errorf("alone: exit %d %q", code, out3)
	}
}

// The pack plus the docs' example gives the pack's incidents byte for byte,
// plus the example's own.
func TestReplayBuiltinPlusOwn(t *testing.T) {
	mine := docExample(t, t.TempDir())
	code, both, errOut := runCmd(t, "replay", "--rules", "builtin", "--rules", mine, "../../testdata/demo")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	want, err := os.ReadFile("testdata/demo.golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var pack, own []string
	for _, line := range strings.SplitAfter(both, "\n") {
		if strings.Contains(line, `"rule":"my-ecs-exec-reverse-shell-c2"`) {
			own = append(own, line)
		} else {
			pack = append(pack, line)
		}
	}
	if strings.Join(pack, "") != string(want) || len(own) != 1 {
		t.Errorf("%d own incidents; pack incidents equal the golden: %v", len(own), strings.Join(pack, "") == string(want))
	}
}

// A real folder named builtin is ./builtin; the bare word is the pack.
func TestRulesFolderNamedBuiltin(t *testing.T) {
	demo, err := filepath.Abs("../../testdata/demo")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	docExample(t, dir)
	if err := os.Rename(filepath.Join(dir, "my-rules"), filepath.Join(dir, "builtin")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rules", "check", "./builtin"}, "ok: 3 signals, 1 rules\n"},
		{[]string{"rules", "check", "builtin"}, "ok: 22 signals, 13 rules\n"},
		{[]string{"rules", "check", "builtin", "./builtin"}, "ok: 25 signals, 14 rules\n"},
	} {
		if code, out, errOut := runCmd(t, tc.args...); code != 0 || out != tc.want {
			t.Errorf("%v: exit %d %q\n%s", tc.args, code, out, errOut)
		}
	}
	const warning = "ecscorr: warning: builtin is the embedded pack, not the folder builtin here; give ./builtin to load that folder\n"
	if _, _, errOut := runCmd(t, "rules", "check", "builtin"); !strings.HasPrefix(errOut, warning) {
		t.Errorf("no warning about the folder builtin:\n%s", errOut)
	}
	if _, _, errOut := runCmd(t, "rules", "check", "./builtin"); strings.Contains(errOut, "warning") {
		t.Errorf("warning for ./builtin:\n%s", errOut)
	}
	// In a rule test next to the folder, ./builtin is the folder too: the
	// pack's reverse-shell rule is not loaded, so the alert raises nothing.
	const fixture = "falco-redirect-stdout-network.constructed.json"
	data, err := os.ReadFile(filepath.Join(demo, "../../rules/builtin/fixtures", fixture))
	if err != nil {
		t.Fatal(err)
	}
	test := "rule_files: [./builtin]\ntests:\n  - name: folder\n    input_events: [{at: 1m, file: " + fixture + "}]\n    expect: [{eval_time: 2m, incidents: []}]\n"
	if err := os.WriteFile(fixture, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("folder_test.yaml", []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCmd(t, "rules", "test", "folder_test.yaml"); code != 0 {
		t.Errorf("rules test with ./builtin: exit %d\n%s%s", code, out, errOut)
	}
	if err := os.WriteFile("pack_test.yaml", []byte(strings.Replace(test, "./builtin", "builtin", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCmd(t, "rules", "test", "pack_test.yaml"); code != 1 || !strings.Contains(out, "unexpected incident") {
		t.Errorf("rules test with the pack: exit %d\n%s", code, out)
	}
	code, out, errOut := runCmd(t, "replay", "--rules", "./builtin", demo)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"rule":"my-ecs-exec-reverse-shell-c2"`) {
		t.Errorf("replay --rules ./builtin: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "replay", "--help")
	if code != 0 || !strings.Contains(errOut, "a folder named builtin is ./builtin") {
		t.Errorf("replay --help: exit %d\n%s", code, errOut)
	}
}

// A rule test loads builtin plus the user's rules through the same loader.
func TestRulesTestBuiltinPlusOwn(t *testing.T) {
	dir := t.TempDir()
	docExample(t, dir)
	const fixture = "falco-redirect-stdout-network.constructed.json"
	data, err := os.ReadFile("../../rules/builtin/fixtures/" + fixture)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fixture), data, 0o644); err != nil {
		t.Fatal(err)
	}
	test := filepath.Join(dir, "mine_test.yaml")
	body := `rule_files: [builtin, my-rules/]
start_time: 2025-06-01T12:00:00Z
tests:
  - name: the pack's reverse shell fires; the example's sequence waits
    entities: {T1: "arn:aws:ecs:eu-west-1:111122223333:task/prod/0f1e2d3c4b5a69788776655443322110"}
    input_events:
      - {at: 1m, file: ` + fixture + `, set: {'output_fields.container\.label[com\.amazonaws\.ecs\.task-arn]': "${T1}"}}
    expect:
      - eval_time: 2m
        rule: ecs-reverse-shell
        incidents: [{severity: high, key: {task_arn: "${T1}"}}]
      - {eval_time: 2m, rule: my-ecs-exec-reverse-shell-c2, incidents: []}
`
	if err := os.WriteFile(test, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "rules", "test", test)
	if code != 0 || !strings.HasSuffix(out, "PASS: 1 tests\n") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

// An empty rules folder or file is an error naming it, never 0 rules.
func TestReplayEmptyRules(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	blank := filepath.Join(dir, "blank.yaml")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blank, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{empty, blank} {
		code, out, errOut := runCmd(t, "replay", "--rules", p, "../../testdata/demo/falco")
		if code != 1 || out != "" || !strings.HasPrefix(errOut, p+": error: ") || !strings.Contains(errOut, "refusing to start") {
			t.Errorf("--rules %s: exit %d, stdout %q, stderr:\n%s", p, code, out, errOut)
		}
	}
}

// --dead-letter must not overwrite --out: a usage error, nothing written.
func TestReplayDeadLetterIsNotOut(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "incidents.jsonl")
	if err := os.WriteFile(out, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out, filepath.Join(dir, "link.jsonl")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, dl := range []string{out, "incidents.jsonl", "./sub/../incidents.jsonl", "link.jsonl"} {
		if err := os.MkdirAll("sub", 0o755); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCmd(t, "replay", "--out", out, "--dead-letter", dl, dir)
		want := "ecscorr replay: --dead-letter and --out name the same file " + dl + ": dead letters would overwrite the incidents\n"
		if code != 2 || errOut != want {
			t.Errorf("--dead-letter %s: exit %d, stderr %q", dl, code, errOut)
		}
	}
	if data, _ := os.ReadFile(out); string(data) != "keep\n" {
		t.Errorf("--out was written: %q", data)
	}
	if code, _, errOut := runCmd(t, "replay", "--out", out, "--dead-letter", filepath.Join(dir, "dl.jsonl"), "sub"); code != 0 {
		t.Errorf("different files: exit %d\n%s", code, errOut)
	}
}
