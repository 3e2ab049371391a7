package rule

import (
	"fmt"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
	"go.yaml.in/yaml/v3"
)

// References to signal fields and step aliases are checked once detect is
// compiled (the aliases and the signals of each step are then known):
// fields.x, steps.<as>, steps.<as>.fields.x, event.fields.x, ... in every
// expression and template of a rule. The type checker cannot do it, since
// fields and steps are maps. raw.* is JSON and never checked. A field is
// known when any signal of the step (of an any_of) extracts it.

// refCtx is what the references of one rule are checked against.
type refCtx struct {
	l       *loader
	c       *ruleCtx
	aliases map[string][]*Signal // step alias → its signals
	// evidence: the signals of evidence events (`event` in output);
	// resolve: of resolving events (`event` in resolve.closes); all: every
	// signal the rule keys (by expressions).
	evidence, resolve, all []*Signal
}

// envScope is what an event or step expression may read.
type envScope struct {
	what   string
	sigs   []*Signal // whose fields `fields.x` reads
	sigsOf string    // "step exec", for messages
	steps  []string  // aliases `steps.<as>` may name
	self   string    // the step's own alias
	// noSteps explains why steps holds nothing (when steps is empty).
	noSteps string
}

func (l *loader) checkRefs(c *ruleCtx, m *mapNode) {
	r := c.r
	rc := &refCtx{l: l, c: c, aliases: map[string][]*Signal{}, all: ruleSignals(r)}
	addStep := func(st *Step) {
		rc.aliases[st.As] = st.Signals
		if !st.Absent {
			for _, s := range st.Signals {
				if !slices.Contains(rc.evidence, s) {
					rc.evidence = append(rc.evidence, s)
				}
			}
		}
	}
	var lastSigs []*Signal // the signals of the event completing a hit
	switch {
	case r.Match != nil:
		addStep(r.Match)
	case r.Threshold != nil:
		addStep(&r.Threshold.Step)
	case r.Sequence != nil:
		for i := range r.Sequence.Steps {
			addStep(&r.Sequence.Steps[i])
			if !r.Sequence.Steps[i].Absent {
				lastSigs = r.Sequence.Steps[i].Signals
			}
		}
	case r.Temporal != nil:
		for i := range r.Temporal.Signals {
			addStep(&r.Temporal.Signals[i])
		}
	case r.Metric != nil:
		if r.Metric.Series != nil {
			rc.evidence = append(rc.evidence, r.Metric.Series)
		}
		if r.Metric.Join != nil {
			addStep(r.Metric.Join)
		}
	}
	if lastSigs == nil {
		lastSigs = rc.evidence
	}
	if r.Resolve != nil {
		rc.resolve = r.Resolve.Signals
	}
	kindName := r.Kind.String()
	notSeq := fmt.Sprintf("steps holds the earlier steps of a sequence only; in a %s rule it is always empty", kindName)

	// by expressions
	if items, ok := seqItems(m.get("by")); ok {
		for _, it := range items {
			if en := mapValue(it, "expr"); en != nil {
				rc.envExpr(en, envScope{what: "by.expr", sigs: rc.all, sigsOf: "rule " + r.ID, noSteps: "steps is only set in a sequence step's where"}, false)
			}
		}
	}
	// detect
	dn := mapValue(m.get("detect"), kindName)
	stepScope := func(what string, st *Step, earlier []string, noSteps string) envScope {
		return envScope{what: what, sigs: st.Signals, sigsOf: "step " + st.As, steps: earlier, noSteps: noSteps, self: st.As}
	}
	switch {
	case r.Match != nil:
		if wn := mapValue(dn, "where"); wn != nil {
			rc.envExpr(wn, stepScope("match.where", r.Match, nil, notSeq), true)
		}
	case r.Threshold != nil:
		if wn := mapValue(dn, "where"); wn != nil {
			rc.envExpr(wn, stepScope("threshold.where", &r.Threshold.Step, nil, notSeq), true)
		}
		for _, agg := range []string{"distinct", "sum", "avg"} {
			if fn := mapValue(mapValue(dn, agg), "field"); fn != nil {
				rc.envExpr(fn, stepScope("threshold."+agg+".field", &r.Threshold.Step, nil, notSeq), true)
			}
		}
	case r.Sequence != nil:
		items, _ := seqItems(mapValue(dn, "steps"))
		var earlier []string
		for i := range r.Sequence.Steps {
			st := &r.Sequence.Steps[i]
			if i < len(items) {
				if wn := mapValue(items[i], "where"); wn != nil {
					why := fmt.Sprintf("step %s is the first step: there is no earlier step", st.As)
					rc.envExpr(wn, stepScope(fmt.Sprintf("steps[%d].where", i), st, slices.Clone(earlier), why), true)
				}
			}
			if !st.Absent {
				earlier = append(earlier, st.As)
			}
		}
	case r.Temporal != nil:
		sm := mapValue(dn, "signals")
		for i := range r.Temporal.Signals {
			st := &r.Temporal.Signals[i]
			if wn := mapValue(mapValue(sm, st.As), "where"); wn != nil {
				rc.envExpr(wn, stepScope("temporal.signals."+st.As+".where", st, nil, notSeq), true)
			}
		}
	case r.Metric != nil && r.Metric.Join != nil:
		if wn := mapValue(mapValue(dn, "and_then"), "where"); wn != nil {
			rc.envExpr(wn, stepScope("and_then.where", r.Metric.Join, nil, notSeq), true)
		}
	}
	// output environment
	if items, ok := seqItems(m.get("severity_override")); ok {
		for _, it := range items {
			if wn := mapValue(it, "when"); wn != nil {
				rc.outputExpr(wn, "severity_override.when", false)
			}
		}
	}
	if cn := mapValue(m.get("resolve"), "closes"); cn != nil {
		rc.outputExpr(cn, "resolve.closes", true)
	}
	if items, ok := seqItems(m.get("exceptions")); ok {
		for _, it := range items {
			if fs, ok := seqItems(mapValue(it, "fields")); ok {
				for _, fn := range fs {
					rc.envExpr(fn, envScope{what: "exception field", sigs: lastSigs, sigsOf: "the event completing a hit", noSteps: "steps is only set in a sequence step's where"}, false)
				}
			}
		}
	}
	out := m.get("output")
	if fm := deref(mapValue(out, "fields")); fm != nil && fm.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(fm.Content); i += 2 {
			rc.outputExpr(fm.Content[i+1], "output.fields."+fm.Content[i].Value, false)
		}
	}
	for _, t := range []struct {
		n    *yaml.Node
		what string
	}{
		{m.get("title"), "title"},
		{mapValue(out, "summary"), "summary"},
		{mapValue(out, "remediation"), "remediation"},
		{mapValue(m.get("dedup"), "key"), "dedup.key"},
	} {
		if t.n != nil {
			rc.templateRefs(t.n, t.what)
		}
	}
}

func seqItems(n *yaml.Node) ([]*yaml.Node, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil, false
	}
	return n.Content, true
}

// ref is one maximal member chain of an expression: its names and, per
// name, the node that reads it (for positions).
type ref struct {
	path  []string
	nodes []ast.Node
}

// memberChain returns the chain of n (a.b["c"], ?. included), or nil.
func memberChain(n ast.Node) *ref {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return &ref{path: []string{n.Value}, nodes: []ast.Node{n}}
	case *ast.ChainNode:
		return memberChain(n.Node)
	case *ast.MemberNode:
		s, ok := n.Property.(*ast.StringNode)
		if !ok {
			return nil
		}
		r := memberChain(n.Node)
		if r == nil {
			return nil
		}
		r.path = append(r.path, s.Value)
		r.nodes = append(r.nodes, n)
		return r
	}
	return nil
}

// refs returns the maximal member chains of a tree.
func refs(root ast.Node) []*ref {
	inner := map[ast.Node]bool{}
	var members []ast.Node
	walk(root, func(n ast.Node) {
		m, ok := n.(*ast.MemberNode)
		if !ok {
			return
		}
		members = append(members, m)
		if memberChain(m) != nil {
			x := m.Node
			if ch, ok := x.(*ast.ChainNode); ok {
				x = ch.Node
			}
			inner[x] = true
		}
	})
	var out []*ref
	for _, m := range members {
		if inner[m] {
			continue
		}
		if r := memberChain(m); r != nil {
			out = append(out, r)
		}
	}
	return out
}

func (rc *refCtx) errAt(n *yaml.Node, what string, node ast.Node, format string, args ...any) {
	rc.l.diag(SevError, rc.l.exprPos(rc.c.f, deref(n), node.Location().From), "%s: %s", what, fmt.Sprintf(format, args...))
	rc.c.ok = false
}

// envExpr checks an expression over Env (step: a step's where or a
// threshold field, where step.<x> means <x>).
func (rc *refCtx) envExpr(n *yaml.Node, sc envScope, step bool) {
	tree := rc.l.exprTree(rc.c.f, n, step)
	if tree == nil {
		return
	}
	for _, r := range refs(tree) {
		p := r.path
		switch {
		case len(p) >= 2 && p[0] == "fields":
			if msg := fieldsMsg(p[1], sc.sigs, sc.sigsOf, "fields."); msg != "" {
				rc.errAt(n, sc.what, r.nodes[1], "unknown field fields.%s: %s", p[1], msg)
			}
		case len(p) >= 2 && p[0] == "steps":
			if !slices.Contains(sc.steps, p[1]) {
				why := sc.noSteps
				if len(sc.steps) > 0 {
					why = "the earlier steps are " + strings.Join(sc.steps, ", ")
				}
				all := make([]string, 0, len(rc.aliases))
				for a := range rc.aliases {
					all = append(all, a)
				}
				hint := didYouMean("steps.", p[1], sc.steps)
				if hint == "" && len(sc.steps) > 0 {
					hint = didYouMean("steps.", p[1], all)
				}
				switch {
				case p[1] == sc.self:
					why = fmt.Sprintf("step %s is this step, and steps holds only earlier steps (read this step's event directly: raw, fields, entity, event)", p[1])
					hint = ""
				case slices.Contains(all, p[1]):
					why = fmt.Sprintf("step %s is not an earlier step here (%s)", p[1], why)
					hint = ""
				}
				rc.errAt(n, sc.what, r.nodes[1], "unknown step alias steps.%s: %s%s", p[1], why, hint)
				continue
			}
			rc.stepTail(n, sc.what, r, 0, rc.aliases[p[1]])
		}
	}
}

// stepTail checks steps.<as>.<key>[.<x>] starting at path index i (the
// index of "steps").
func (rc *refCtx) stepTail(n *yaml.Node, what string, r *ref, i int, sigs []*Signal) {
	p := r.path[i:]
	if len(p) < 3 {
		return
	}
	name := strings.Join(r.path[:i+3], ".")
	if !slices.Contains(stepKeys, p[2]) {
		rc.errAt(n, what, r.nodes[i+2], "unknown step field %s (want one of: %s)%s", name, strings.Join(stepKeys, ", "), didYouMean(strings.Join(r.path[:i+2], ".")+".", p[2], stepKeys))
		return
	}
	if len(p) < 4 {
		return
	}
	rc.fieldOrEntity(n, what, r, i+2, sigs, "step "+p[1])
}

// fieldOrEntity checks <...>.fields.<x> or <...>.entity.<x>, where
// r.path[i] is "fields" or "entity".
func (rc *refCtx) fieldOrEntity(n *yaml.Node, what string, r *ref, i int, sigs []*Signal, sigsOf string) {
	if i+1 >= len(r.path) {
		return
	}
	name := strings.Join(r.path[:i+2], ".")
	x := r.path[i+1]
	switch r.path[i] {
	case "fields":
		if msg := fieldsMsg(x, sigs, sigsOf, strings.Join(r.path[:i+1], ".")+"."); msg != "" {
			rc.errAt(n, what, r.nodes[i+1], "unknown field %s: %s", name, msg)
		}
	case "entity":
		if !slices.Contains(entityKeys, x) {
			rc.errAt(n, what, r.nodes[i+1], "unknown entity field %s (want one of: %s)%s", name, strings.Join(entityKeys, ", "), didYouMean(strings.Join(r.path[:i+1], ".")+".", x, entityKeys))
		}
	}
}

// outputExpr checks an expression over the output environment (closes:
// resolve.closes, with incident and the resolving event). checkMembers has
// checked the first level below the root (steps.<as>, event.<key>, ...).
func (rc *refCtx) outputExpr(n *yaml.Node, what string, closes bool) {
	tree := rc.l.exprTree(rc.c.f, n, false)
	if tree == nil {
		return
	}
	for _, r := range refs(tree) {
		start := 0
		if closes && r.path[0] == "incident" {
			if len(r.path) < 2 {
				continue
			}
			// checkMembers does not look below incident: check it all.
			rest := r.path[1:]
			if msg := checkOutputChain(rest, rc.c.aliases, rc.c.byNames); msg != "" {
				bad := 2 // the name below the root
				switch {
				case !slices.Contains(outputKeys, rest[0]):
					bad = 1
				case rest[0] == "steps" && len(rest) > 2 && slices.Contains(rc.c.aliases, rest[1]):
					bad = 3
				}
				// Template-style .root in checkOutputChain's text: incident.root here.
				msg = strings.ReplaceAll(msg, " ."+rest[0], " incident."+rest[0])
				rc.errAt(n, what, r.nodes[min(bad, len(r.nodes)-1)], "%s", msg)
				continue
			}
			start = 1
		}
		rc.outputRef(n, what, r, start, closes && start == 0)
	}
}

// outputRef checks the part of r below the output root at index i
// (resolving: `event` is the resolving event).
func (rc *refCtx) outputRef(n *yaml.Node, what string, r *ref, i int, resolving bool) {
	p := r.path[i:]
	switch {
	case len(p) >= 2 && p[0] == "steps":
		sigs, ok := rc.aliases[p[1]]
		if !ok {
			return // reported by checkMembers / checkOutputChain
		}
		if i == 0 && len(p) >= 3 && !slices.Contains(stepKeys, p[2]) {
			rc.stepTail(n, what, r, i, sigs)
			return
		}
		if len(p) >= 4 {
			rc.fieldOrEntity(n, what, r, i+2, sigs, "step "+p[1])
		}
	case len(p) >= 3 && p[0] == "event" && slices.Contains(stepKeys, p[1]):
		sigs, of := rc.evidence, "the rule's steps"
		if resolving {
			sigs, of = rc.resolve, "resolve"
		}
		rc.fieldOrEntity(n, what, r, i+1, sigs, of)
	}
}

// fieldsMsg explains why none of sigs extracts name ("" when one does).
func fieldsMsg(name string, sigs []*Signal, of, prefix string) string {
	var have []string
	for _, s := range sigs {
		for _, f := range s.Fields {
			if f.Name == name {
				return ""
			}
			if !slices.Contains(have, f.Name) {
				have = append(have, f.Name)
			}
		}
	}
	var msg string
	switch {
	case len(sigs) == 1 && len(have) == 0:
		msg = fmt.Sprintf("signal %s extracts no fields", sigs[0].Name)
	case len(sigs) == 1:
		msg = fmt.Sprintf("signal %s extracts only %s", sigs[0].Name, strings.Join(have, ", "))
	case len(have) == 0:
		msg = fmt.Sprintf("no signal of %s extracts any field", of)
	default:
		msg = fmt.Sprintf("no signal of %s extracts it (they extract %s)", of, strings.Join(have, ", "))
	}
	return msg + didYouMean(prefix, name, have)
}

// templateRefs checks the field paths a template reads from the root
// below what checkOutputChain checks: .steps.<as>.fields.<x>,
// .steps.<as>.entity.<x>, .event.fields.<x>, .event.entity.<x>.
func (rc *refCtx) templateRefs(n *yaml.Node, what string) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return
	}
	src := n.Value
	t, err := template.New(what).Funcs(FuncMap()).Parse(src)
	if err != nil {
		return
	}
	for _, fn := range rootFieldNodes(t) {
		id := fn.Ident
		// Offsets (in runes) of each name, for positions.
		// A chain's Pos is that of its second name's dot (text/template
		// parses .a.b.c as the field .a chained with .b.c).
		offs := make([]int, len(id))
		off := int(fn.Pos)
		if len(id) > 1 {
			off -= 1 + len(id[0])
		}
		for k, s := range id {
			off++ // the dot
			offs[k] = off
			off += len(s)
		}
		at := func(k int) int { return utf8.RuneCountInString(src[:min(offs[k], len(src))]) }
		errAt := func(k int, format string, args ...any) {
			rc.l.diag(SevError, rc.l.exprPos(rc.c.f, n, at(k)), "%s: %s", what, fmt.Sprintf(format, args...))
			rc.c.ok = false
		}
		check := func(k int, sigs []*Signal, of string) {
			if k+1 >= len(id) {
				return
			}
			name := "." + strings.Join(id[:k+2], ".")
			switch id[k] {
			case "fields":
				if msg := fieldsMsg(id[k+1], sigs, of, "."+strings.Join(id[:k+1], ".")+"."); msg != "" {
					errAt(k+1, "unknown field %s: %s", name, msg)
				}
			case "entity":
				if !slices.Contains(entityKeys, id[k+1]) {
					errAt(k+1, "unknown entity field %s (want one of: %s)%s", name, strings.Join(entityKeys, ", "), didYouMean("."+strings.Join(id[:k+1], ".")+".", id[k+1], entityKeys))
				}
			}
		}
		switch {
		case len(id) >= 4 && id[0] == "steps":
			if sigs, ok := rc.aliases[id[1]]; ok {
				check(2, sigs, "step "+id[1])
			}
		case len(id) >= 3 && id[0] == "event":
			check(1, rc.evidence, "the rule's steps")
		}
	}
}

// rootFieldNodes returns the field nodes (.a.b.c, with their positions)
// of t that are read while dot is still the root environment (outside
// with/range bodies).
func rootFieldNodes(t *template.Template) []*parse.FieldNode {
	var out []*parse.FieldNode
	var pipe func(p *parse.PipeNode)
	pipe = func(p *parse.PipeNode) {
		if p == nil {
			return
		}
		for _, cmd := range p.Cmds {
			for _, a := range cmd.Args {
				switch a := a.(type) {
				case *parse.FieldNode:
					out = append(out, a)
				case *parse.PipeNode:
					pipe(a)
				}
			}
		}
	}
	var node func(n parse.Node, root bool)
	branch := func(b *parse.BranchNode, root, bodyRoot bool) {
		if root {
			pipe(b.Pipe)
		}
		node(b.List, bodyRoot)
		if b.ElseList != nil {
			node(b.ElseList, root)
		}
	}
	node = func(n parse.Node, root bool) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				node(c, root)
			}
		case *parse.ActionNode:
			if root {
				pipe(n.Pipe)
			}
		case *parse.IfNode:
			branch(&n.BranchNode, root, root)
		case *parse.RangeNode:
			branch(&n.BranchNode, root, false)
		case *parse.WithNode:
			branch(&n.BranchNode, root, false)
		case *parse.TemplateNode:
			if root {
				pipe(n.Pipe)
			}
		}
	}
	if t.Tree != nil {
		node(t.Tree.Root, true)
	}
	return out
}
