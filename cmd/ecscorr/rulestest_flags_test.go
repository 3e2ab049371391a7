package main

import (
	"strings"
	"testing"
)

// rules test -run selects cases by a regular expression over their names;
// -v prints each case with what every eval_time saw.
func TestRulesTestRunAndVerbose(t *testing.T) {
	const file = "../../correlate/ruletest/testdata/ok_test.yaml"
	code, out, errOut := runCmd(t, "rules", "test", "-run", "^sustained", "-v", file)
	want := file + `
  ok    sustained CPU opens then resolves
        at 6m t-cpu-high: 0 incident(s), events []
        at 9m t-cpu-high: 1 incident(s), events [6]
        at 14m t-cpu-high: 1 incident(s), events [6]
PASS: 1 tests
`
	if code != 0 || out != want {
		t.Errorf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, out, want, errOut)
	}
	code, out, _ = runCmd(t, "rules", "test", file, "-run", "escalates")
	if code != 0 || out != file+"\n  ok    exec twice folds into one incident and escalates\nPASS: 1 tests\n" {
		t.Errorf("flag after the file: exit %d\n%s", code, out)
	}
	code, _, errOut = runCmd(t, "rules", "test", "-run", "(", file)
	if code != 1 || !strings.HasPrefix(errOut, `ecscorr rules test: -run "(": error parsing regexp`) {
		t.Errorf("bad regexp: exit %d, stderr %q", code, errOut)
	}
}
