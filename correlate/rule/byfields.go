package rule

import (
	"slices"

	"github.com/expr-lang/expr/ast"
	"go.yaml.in/yaml/v3"
)

// byFieldsRef is a `by` expression that reads signal fields.
type byFieldsRef struct {
	node  *yaml.Node
	key   string
	names []string // fields.<name> it reads, in order
}

// fieldRefs returns the fields.<name> members a tree reads, and whether it
// reads `fields` at all.
func fieldRefs(root ast.Node) (names []string, reads bool) {
	walk(root, func(nd ast.Node) {
		if id, ok := nd.(*ast.IdentifierNode); ok && id.Value == "fields" {
			reads = true
		}
		m, ok := nd.(*ast.MemberNode)
		if !ok {
			return
		}
		id, ok1 := m.Node.(*ast.IdentifierNode)
		p, ok2 := m.Property.(*ast.StringNode)
		if ok1 && ok2 && id.Value == "fields" && !slices.Contains(names, p.Value) {
			names = append(names, p.Value)
		}
	})
	return names, reads
}

// ruleSignals lists the signals whose events the engine keys for a rule
// (steps, until, metric series and join, resolve), in order, without
// repeats.
func ruleSignals(r *Rule) []*Signal {
	var out []*Signal
	add := func(ss ...*Signal) {
		for _, s := range ss {
			if s != nil && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	switch {
	case r.Match != nil:
		add(r.Match.Signals...)
	case r.Threshold != nil:
		add(r.Threshold.Step.Signals...)
	case r.Sequence != nil:
		for _, st := range r.Sequence.Steps {
			add(st.Signals...)
		}
		add(r.Sequence.Until...)
	case r.Temporal != nil:
		for _, st := range r.Temporal.Signals {
			add(st.Signals...)
		}
	case r.Metric != nil:
		add(r.Metric.Series)
		if r.Metric.Join != nil {
			add(r.Metric.Join.Signals...)
		}
	}
	if r.Resolve != nil {
		add(r.Resolve.Signals...)
	}
	return out
}

// checkByFields notes the signals of a rule that do not extract a field
// its `by` reads: their events get no value for that key part, and when
// the whole key is empty they are skipped and counted in Stats.NoKey.
func (l *loader) checkByFields(c *ruleCtx) {
	if len(c.byFields) == 0 {
		return
	}
	sigs := ruleSignals(c.r)
	for _, ref := range c.byFields {
		for _, s := range sigs {
			for _, name := range ref.names {
				if slices.ContainsFunc(s.Fields, func(f NamedExpr) bool { return f.Name == name }) {
					continue
				}
				if fieldsMsg(name, sigs, "", "") != "" {
					continue // no signal extracts it: an error (checkRefs)
				}
				l.diag(SevNote, l.pos(c.f, deref(ref.node)), "by %s reads fields.%s, which signal %s does not extract: its events have no value there (an event with an empty key is skipped and counted in NoKey)", ref.key, name, s.Name)
			}
		}
	}
}
