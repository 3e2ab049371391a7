package ruletest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTest writes a test file beside a copy of testdata's rules and
// fixture.
func writeTest(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"rules.yaml", "exec.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "x_test.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A misspelt rule id used to make `incidents: []` pass for ever: it is
// refused with the line, the test and the closest id.
func TestUnknownRuleIsAnError(t *testing.T) {
	p := writeTest(t, `rule_files: [rules.yaml]
start_time: 2025-06-01T12:00:00Z
tests:
  - name: misspelt
    input_events: [{at: 1m, file: exec.json}]
    expect:
      - {eval_time: 2m, rule: t-exce, incidents: []}
      - {eval_time: 2m, rule: t-exec, incidents: [{rule: nope}]}
`)
	res, err := RunFiles(context.Background(), []string{p}, Options{})
	want := p + `:7: test "misspelt": unknown rule "t-exce" (the rule_files define no such rule); did you mean "t-exec"?` + "\n" +
		p + `:8: test "misspelt": unknown rule "nope" (the rule_files define no such rule)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if len(res.Files) != 0 {
		t.Errorf("files run: %d, want 0", len(res.Files))
	}
}

// Run is a regular expression over test names, as go test -run.
func TestRunRegexp(t *testing.T) {
	for _, tc := range []struct {
		run  string
		want []string
	}{
		{"", []string{"exec twice folds into one incident and escalates", "sustained CPU opens then resolves"}},
		{"^sustained", []string{"sustained CPU opens then resolves"}},
		{"exec|CPU", []string{"exec twice folds into one incident and escalates", "sustained CPU opens then resolves"}},
		{"escalates$", []string{"exec twice folds into one incident and escalates"}},
		{"nothing", nil},
	} {
		res, err := RunFiles(context.Background(), []string{"testdata/ok_test.yaml"}, Options{Run: tc.run})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tr := range res.Files[0].Tests {
			got = append(got, tr.Name)
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("run %q: ran %q, want %q", tc.run, got, tc.want)
		}
	}
	if _, err := RunFiles(context.Background(), []string{"testdata/ok_test.yaml"}, Options{Run: "("}); err == nil || !strings.HasPrefix(err.Error(), `-run "(": error parsing regexp`) {
		t.Errorf("bad regexp: err = %v", err)
	}
}
