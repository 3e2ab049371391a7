package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/sigma"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/report"
	"github.com/ecscorr/ecscorr/sinks/file"
)

// explainer says why incidents fired (--explain): for each evidence event,
// the rule step and the signal it matched, that signal's condition, and
// the values of the record's fields the condition reads. Incidents keep
// references, not records, so the evidence is read again from the inputs
// (as --report does).
type explainer struct {
	set   *rule.Set
	rules map[string]*rule.Rule
	ev    map[report.EventKey]report.Event
}

// newExplainer reads the evidence of incs again from paths.
func newExplainer(ctx context.Context, set *rule.Set, paths []string, own map[string]bool, incs []pipeline.Incident, res *pipeline.Resolver, log *slog.Logger) (*explainer, error) {
	ev, err := readEvidence(ctx, paths, own, incs, res, log)
	if err != nil {
		return nil, fmt.Errorf("reading the evidence for --explain: %w", err)
	}
	x := &explainer{set: set, rules: map[string]*rule.Rule{}, ev: ev}
	for _, r := range set.Rules {
		x.rules[r.ID] = r
	}
	return x, nil
}

// maxSaw caps one shown value.
const maxSaw = 100

// lines explains one incident.
func (x *explainer) lines(inc pipeline.Incident) []string {
	r := x.rules[inc.Rule]
	if r == nil {
		return []string{"why: rule " + inc.Rule + " is not loaded"}
	}
	out := []string{"why: " + describeRule(r)}
	steps := ruleSteps(r)
	for _, ref := range inc.Events {
		when := ref.Time.UTC().Format(time.DateTime)
		e, ok := x.ev[report.EventKey{Source: ref.Source, ID: ref.ID}]
		where := ""
		if ok && e.Pos.File != "" {
			where = " at " + e.Pos.String()
		}
		head := fmt.Sprintf("%s: %s %s %s%s", stepName(ref.Step), ref.Source, ref.Type, when, where)
		if !ok || len(e.Raw) == 0 {
			out = append(out, head+" (record not read again: derived from another rule's incident, or not in the inputs)")
			continue
		}
		var raw map[string]any
		if json.Unmarshal(e.Raw, &raw) != nil {
			out = append(out, head+" (record is not a JSON object)")
			continue
		}
		env := &rule.Env{
			Event:  rule.EventEnv{ID: ref.ID, Source: string(ref.Source), Type: ref.Type, Time: ref.Time},
			Entity: rule.EntityEnvOf(e.Entity),
			Raw:    raw,
			Lists:  x.set.Lists,
		}
		matched := false
		for _, sig := range candidates(steps, ref.Step) {
			if ok, err := sig.Eval(env); err != nil || !ok {
				continue
			}
			matched = true
			out = append(out, head+" matched signal "+sig.Name)
			out = append(out, "  condition: "+condition(sig))
			if saw := sawValues(sig, raw); saw != "" {
				out = append(out, "  saw: "+saw)
			}
			if len(sig.Fields) > 0 {
				if fields, err := rule.EvalFields(sig, env, nil); err == nil {
					out = append(out, "  fields: "+fieldList(fields))
				}
			}
		}
		if !matched {
			out = append(out, head+" (no signal of the step matches it on its own: a step condition over earlier steps decided)")
		}
	}
	if len(inc.Fields) > 0 {
		out = append(out, "incident fields: "+fieldList(inc.Fields))
	}
	return out
}

func stepName(s string) string {
	if s == "" {
		return "event"
	}
	return s
}

func describeRule(r *rule.Rule) string {
	var by []string
	for _, k := range r.By {
		by = append(by, k.Name)
	}
	key := "each event on its own"
	if len(by) > 0 {
		key = "by " + strings.Join(by, ", ")
	}
	var what string
	switch {
	case r.Threshold != nil:
		what = fmt.Sprintf("threshold within %s", r.Threshold.Window)
	case r.Sequence != nil:
		what = fmt.Sprintf("sequence of %d steps within %s", len(r.Sequence.Steps), r.Sequence.MaxSpan)
	case r.Temporal != nil:
		what = fmt.Sprintf("temporal co-occurrence within %s", r.Temporal.Window)
	case r.Metric != nil:
		what = fmt.Sprintf("metric held for %s", r.Metric.For)
	default:
		what = "match"
	}
	s := fmt.Sprintf("rule %s: %s, %s", r.ID, what, key)
	if r.Origin == "sigma" {
		s += " (Sigma rule at " + r.Pos.String() + ")"
	}
	return s
}

// ruleSteps are the rule's steps by alias.
func ruleSteps(r *rule.Rule) []*rule.Step {
	var st []*rule.Step
	if r.Match != nil {
		st = append(st, r.Match)
	}
	if r.Threshold != nil {
		st = append(st, &r.Threshold.Step)
	}
	if r.Sequence != nil {
		for i := range r.Sequence.Steps {
			st = append(st, &r.Sequence.Steps[i])
		}
	}
	if r.Temporal != nil {
		for i := range r.Temporal.Signals {
			st = append(st, &r.Temporal.Signals[i])
		}
	}
	if r.Metric != nil {
		if r.Metric.Series != nil {
			st = append(st, &rule.Step{As: "series", Signals: []*rule.Signal{r.Metric.Series}})
		}
		if r.Metric.Join != nil {
			st = append(st, r.Metric.Join)
		}
	}
	return st
}

// candidates are the signals an evidence event of step alias may have
// matched: the step's, or every step's when the alias names none (evidence
// of a match rule, or a signal name).
func candidates(steps []*rule.Step, alias string) []*rule.Signal {
	var all []*rule.Signal
	for _, st := range steps {
		if st.As == alias {
			return st.Signals
		}
		for _, s := range st.Signals {
			if s.Name == alias {
				return []*rule.Signal{s}
			}
		}
		all = append(all, st.Signals...)
	}
	return all
}

func condition(sig *rule.Signal) string {
	if sig.Match != nil {
		return "Sigma detection at " + sig.Pos.String()
	}
	if sig.Where == nil {
		return "(every event of its types)"
	}
	return strings.Join(strings.Fields(sig.Where.Source().String()), " ")
}

// sawValues renders the record's values of the fields the signal reads.
func sawValues(sig *rule.Signal, raw map[string]any) string {
	var parts []string
	if sig.MatchPaths != nil {
		var names []string
		for _, p := range sig.MatchPaths {
			names = append(names, strings.Join(p, "."))
		}
		slices.Sort(names)
		for _, n := range slices.Compact(names) {
			vals := sigma.NewField(n).Values(raw, nil)
			if len(vals) == 0 {
				continue
			}
			parts = append(parts, n+"="+short(vals))
		}
		return strings.Join(parts, " ")
	}
	keys, all := engine.SignalRawKeys(sig)
	if all {
		return "(the whole record)"
	}
	for _, k := range keys {
		if v, ok := raw[k]; ok {
			parts = append(parts, k+"="+short(v))
		} else {
			parts = append(parts, k+" absent")
		}
	}
	return strings.Join(parts, " ")
}

func fieldList(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+short(m[k]))
	}
	return strings.Join(parts, " ")
}

func short(v any) string {
	if a, ok := v.([]any); ok && len(a) == 1 {
		v = a[0]
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return file.ShortenMiddle(string(b), maxSaw)
}
