package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// outputFilter selects the incidents replay writes (--severity, --rule,
// --task, --tag). Given kinds must all match; several values of one kind
// are alternatives. It never changes what is correlated or stored: the
// Runner's outbox and the state hold every incident.
type outputFilter struct {
	minSev pipeline.Severity // SeverityUnknown: any
	rules  []string          // ids or globs with *
	tasks  []string          // substrings of the key's task_arn (lower case)
	tags   []string          // normalised (see normTag)
	flags  []string          // the flags as given, for the summary
}

// newOutputFilter parses the filter flags; errors are usage errors.
func newOutputFilter(severity string, rulePats, tasks, tags []string) (*outputFilter, error) {
	f := &outputFilter{}
	if severity != "" {
		s, err := pipeline.ParseSeverity(severity)
		if err != nil {
			return nil, fmt.Errorf("--severity: %w", err)
		}
		f.minSev = s
		f.flags = append(f.flags, "--severity "+s.String())
	}
	for _, v := range rulePats {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				f.rules = append(f.rules, p)
			}
		}
	}
	if len(rulePats) > 0 && len(f.rules) == 0 {
		return nil, fmt.Errorf("--rule: want a rule id or a glob such as 'ecs-drift-*'")
	}
	if len(f.rules) > 0 {
		f.flags = append(f.flags, "--rule "+strings.Join(f.rules, ","))
	}
	for _, t := range tasks {
		if t = strings.TrimSpace(t); t == "" {
			return nil, fmt.Errorf("--task: want a task ARN or part of one (task id, cluster/id)")
		}
		f.tasks = append(f.tasks, strings.ToLower(t))
		f.flags = append(f.flags, "--task "+t)
	}
	for _, t := range tags {
		n := normTag(t)
		if n == "" {
			return nil, fmt.Errorf("--tag: want a tag (drift) or a MITRE ATT&CK id (T1078, attack.t1078)")
		}
		f.tags = append(f.tags, n)
		f.flags = append(f.flags, "--tag "+t)
	}
	return f, nil
}

// active reports whether any filter was given.
func (f *outputFilter) active() bool { return f != nil && len(f.flags) > 0 }

// describe is the filters as given, for the summary.
func (f *outputFilter) describe() string { return strings.Join(f.flags, " ") }

// checkRules is a usage error for a --rule pattern that matches none of
// the loaded rules: a typo would otherwise print nothing and exit 0.
func (f *outputFilter) checkRules(set *rule.Set) error {
	for _, p := range f.rules {
		found := false
		for _, rs := range [][]*rule.Rule{set.Rules, set.Disabled} {
			for _, r := range rs {
				if globMatch(p, r.ID) {
					found = true
				}
			}
		}
		if !found {
			return fmt.Errorf("--rule %s matches none of the %d loaded rules (see ecscorr rules list)", p, len(set.Rules))
		}
	}
	return nil
}

// keep reports whether inc passes every given filter.
func (f *outputFilter) keep(inc *pipeline.Incident) bool {
	if f == nil {
		return true
	}
	if f.minSev != pipeline.SeverityUnknown && inc.Severity < f.minSev {
		return false
	}
	if len(f.rules) > 0 && !anyOf(f.rules, func(p string) bool { return globMatch(p, inc.Rule) }) {
		return false
	}
	if len(f.tasks) > 0 {
		arn := strings.ToLower(inc.Key["task_arn"])
		if arn == "" || !anyOf(f.tasks, func(t string) bool { return strings.Contains(arn, t) }) {
			return false
		}
	}
	if len(f.tags) > 0 && !anyOf(f.tags, func(t string) bool { return hasTag(inc, t) }) {
		return false
	}
	return true
}

// apply returns the incidents f keeps, in order.
func (f *outputFilter) apply(incs []pipeline.Incident) []pipeline.Incident {
	if !f.active() {
		return incs
	}
	out := make([]pipeline.Incident, 0, len(incs))
	for i := range incs {
		if f.keep(&incs[i]) {
			out = append(out, incs[i])
		}
	}
	return out
}

func anyOf(vs []string, ok func(string) bool) bool {
	for _, v := range vs {
		if ok(v) {
			return true
		}
	}
	return false
}

// normTag folds a tag or MITRE id for comparison: lower case, without
// Sigma's "attack." prefix (attack.t1078 and T1078 are one thing).
func normTag(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.TrimPrefix(t, "attack.")
}

// hasTag: an incident tag equal to t, or a MITRE id equal to t or a
// sub-technique of it (t1562 matches T1562.008).
func hasTag(inc *pipeline.Incident, t string) bool {
	for _, tag := range inc.Tags {
		if normTag(tag) == t {
			return true
		}
	}
	for _, m := range inc.Mitre {
		m = normTag(m)
		if m == t || strings.HasPrefix(m, t+".") {
			return true
		}
	}
	return false
}

// globMatch matches s against a pattern where * is any run of characters
// (and nothing else is special: rule ids hold no other glob syntax).
func globMatch(pat, s string) bool {
	parts := strings.Split(pat, "*")
	if len(parts) == 1 {
		return pat == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// filterSink hands its sink (the file/stdout report) only what f keeps.
// It is the one hook between the filters and the formatters: whatever a
// formatter writes, it writes of these.
type filterSink struct {
	pipeline.Sink
	f *outputFilter
}

func (s filterSink) Deliver(ctx context.Context, incs []pipeline.Incident) error {
	return s.Sink.Deliver(ctx, s.f.apply(incs))
}
