package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/correlate/rule"
)

// TestEveryKindIsImplemented: every kind the rule package knows has an
// engine implementation (the kind interface makes the compiler check each
// hook), and an engine refuses a rule of a kind it does not implement.
func TestEveryKindIsImplemented(t *testing.T) {
	for _, k := range rule.Kinds() {
		impl := kindOf(k)
		if impl == nil {
			t.Errorf("kind %s has no engine implementation (add kind_%s.go and a case in kindOf)", k, k)
			continue
		}
		if impl.ruleKind() != k {
			t.Errorf("kindOf(%s) implements %s", k, impl.ruleKind())
		}
		if sk := impl.storeKind(); sk == 0 {
			t.Errorf("kind %s: no store kind", k)
		}
	}
	bad := &rule.Rule{ID: "bad", Kind: rule.Kind(99)}
	_, err := New(context.Background(), newSet(nil, bad), nil, Options{Ephemeral: true})
	if err == nil || !strings.Contains(err.Error(), "rule bad: kind unknown is not implemented") {
		t.Errorf("unknown kind: %v", err)
	}
}
