package rule

import "testing"

// TestEveryKindIsSpecified: each kind has its detect key, parser and
// summary (a kind added before numKinds without them fails here), and the
// summary golden covers every kind.
func TestEveryKindIsSpecified(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds() {
		sp := k.spec()
		if sp.name == "" || sp.detect == nil || sp.summary == nil {
			t.Errorf("kind %d: incomplete spec %+v", k, sp)
		}
		if seen[sp.name] {
			t.Errorf("kind %d: name %q used twice", k, sp.name)
		}
		seen[sp.name] = true
	}
	if len(Kinds()) != int(numKinds)-1 || Kind(0).String() != "unknown" || numKinds.String() != "unknown" {
		t.Errorf("Kinds() = %v", Kinds())
	}
	set := mustLoad(t, "testdata/summary.yaml")
	has := map[Kind]bool{}
	for _, r := range set.Rules {
		has[r.Kind] = true
	}
	for _, k := range Kinds() {
		if !has[k] {
			t.Errorf("testdata/summary.yaml has no %s rule", k)
		}
	}
}
