package ruletest

import (
	"context"
	"testing"
)

// A chained Sigma correlation runs under the rule-test runner like any
// rule file (testdata/sigma_corr_test.yaml).
func TestSigmaCorrelationRuleTest(t *testing.T) {
	res, err := RunFiles(context.Background(), []string{"testdata/sigma_corr_test.yaml"}, Options{})
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
