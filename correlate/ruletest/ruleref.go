package ruletest

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/ecscorr/ecscorr/correlate/rule"
)

// checkRuleRefs refuses a test file whose expectations name a rule id the
// loaded rules do not define: a misspelt id would otherwise make
// `incidents: []` pass for ever. A disabled rule is defined.
func checkRuleRefs(f *File, set *rule.Set) error {
	var ids []string
	for _, r := range set.Rules {
		ids = append(ids, r.ID)
	}
	for _, r := range set.Disabled {
		ids = append(ids, r.ID)
	}
	known := make(map[string]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	var errs []error
	check := func(line int, test, id string) {
		if id == "" || known[id] || strings.Contains(id, "${") {
			return
		}
		// A Sigma rule that correlations refer to without generate: true
		// is loaded (its signal feeds them) and raises no incidents of its
		// own, which `rule: <its id>, incidents: []` asserts.
		if s := set.SignalsByName[rule.SigmaSignalName(id)]; s != nil {
			return
		}
		hint := ""
		if m := rule.Closest(id, ids); m != "" {
			hint = fmt.Sprintf("; did you mean %q?", m)
		}
		errs = append(errs, fmt.Errorf("%s:%d: test %q: unknown rule %q (the rule_files define no such rule)%s", f.path, line, test, id, hint))
	}
	for _, t := range f.Tests {
		for _, ex := range t.Expect {
			check(ex.line, t.Name, ex.Rule)
			if ex.Incidents == nil {
				continue
			}
			for _, inc := range *ex.Incidents {
				if inc.Rule != nil {
					check(ex.line, t.Name, *inc.Rule)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// compileRun compiles Options.Run (nil when empty).
func compileRun(run string) (*regexp.Regexp, error) {
	if run == "" {
		return nil, nil
	}
	re, err := regexp.Compile(run)
	if err != nil {
		return nil, fmt.Errorf("-run %q: %w", run, err)
	}
	return re, nil
}
