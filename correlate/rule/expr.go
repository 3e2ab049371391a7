package rule

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// envKind selects what an expression is compiled against.
type envKind int

const (
	envEvent    envKind = iota // Env
	envStep                    // Env + steps, `step.` prefix accepted
	envOutput                  // OutputEnv map
	envCloses                  // OutputEnv map + incident
	envTemporal                // alias → bool + count_fired
	envMetric                  // MetricEnv
)

// exprSpec describes one expression to compile.
type exprSpec struct {
	what    string // for messages: "where", "fields.dest", ...
	kind    envKind
	asBool  bool
	aliases []string // step aliases (output) or temporal aliases
	byNames []string // key names (output)
	// anyAlias skips step-alias checks (detect was broken).
	anyAlias bool
}

type macroDef struct {
	name string
	src  string
	f    *srcFile
	node *yaml.Node // value
	key  *yaml.Node
	tree *parser.Tree // nil when it does not parse
}

// reserved names cannot be macros.
var reservedNames = []string{"event", "entity", "raw", "lists", "fields", "steps", "step",
	"rule", "key", "agg", "signals", "count", "incident", "value", "baseline", "samples", "count_fired"}

// compiled is the result of compileExpr.
type compiled struct {
	prog *vm.Program
	tree ast.Node // checked, macros expanded, not optimised
	src  string
}

// Output env key sets, for member checks.
var (
	entityKeys = []string{"account", "region", "cluster", "service", "task_arn", "task_definition_arn",
		"task_definition_family", "container_id", "principal"}
	aggKeys    = []string{"count", "distinct", "sum", "avg", "value", "baseline", "for"}
	ruleKeys   = []string{"id", "title", "description", "severity", "mitre", "tags"}
	stepKeys   = []string{"signal", "source", "type", "id", "time", "severity", "raw", "fields", "entity"}
	outputKeys = []string{"rule", "key", "entity", "steps", "agg", "signals", "count", "event"}
)

func outputEnvShape(closes bool) map[string]any {
	m := make(map[string]any, 9)
	for _, k := range outputKeys {
		m[k] = map[string]any{}
	}
	m["count"] = 0
	if closes {
		m["incident"] = map[string]any{}
	}
	return m
}

// compileExpr compiles the string value of node n. Errors are reported with
// positions inside the expression; the result is nil on error.
func (l *loader) compileExpr(f *srcFile, n *yaml.Node, spec exprSpec) *compiled {
	src, ok := l.str(f, n, spec.what)
	if !ok {
		return nil
	}
	n = deref(n)
	if strings.TrimSpace(src) == "" {
		l.errf(f, n, "%s: empty expression", spec.what)
		return nil
	}
	cfg := conf.CreateNew()
	var env any
	switch spec.kind {
	case envEvent, envStep:
		env = Env{}
	case envOutput:
		env = outputEnvShape(false)
	case envCloses:
		env = outputEnvShape(true)
	case envTemporal:
		m := map[string]any{"count_fired": 0}
		for _, a := range spec.aliases {
			m[a] = false
		}
		env = m
	case envMetric:
		env = MetricEnv{}
	}
	if l.zones == nil {
		l.zones = &zoneCache{}
	}
	mx := &macroExpander{l: l, sc: f.scope(), lists: map[*ast.StringNode]bool{}}
	opts := []expr.Option{expr.Env(env), expr.Patch(mx), l.zones.option()}
	if spec.kind == envStep {
		opts = append(opts, expr.Patch(stepAlias{}))
	}
	if spec.asBool {
		opts = append(opts, expr.AsBool())
	}
	for _, o := range opts {
		o(cfg)
	}
	cfg.Check()
	tree, err := checker.ParseCheck(src, cfg)
	if err != nil {
		l.exprErr(f, n, spec.what, err)
		return nil
	}
	if !l.checkMembers(f, n, spec, tree.Node, mx.lists) || !l.checkZones(f, n, spec, tree.Node) {
		return nil
	}
	// Keep an unoptimised copy for type derivation: the optimiser rewrites
	// `in [...]` into constant sets.
	plain, _ := parser.Parse(src) // parse only; only read by derivation after expansion
	if plain != nil {
		ast.Walk(&plain.Node, &macroExpander{l: l, sc: f.scope()})
		if spec.kind == envStep {
			ast.Walk(&plain.Node, stepAlias{})
		}
	}
	if err := optimizer.Optimize(&tree.Node, cfg); err != nil {
		l.exprErr(f, n, spec.what, err)
		return nil
	}
	prog, err := compiler.Compile(tree, cfg)
	if err != nil {
		l.exprErr(f, n, spec.what, err)
		return nil
	}
	c := &compiled{prog: prog, src: src}
	if plain != nil {
		c.tree = plain.Node
	}
	return c
}

func (l *loader) exprErr(f *srcFile, n *yaml.Node, what string, err error) {
	var fe *file.Error
	if errors.As(err, &fe) {
		l.diag(SevError, l.exprPos(f, n, fe.From), "%s: %s%s", what, fe.Message, typoHint(fe.Message))
		return
	}
	l.errf(f, n, "%s: %v", what, err)
}

func (l *loader) exprErrAt(f *srcFile, n *yaml.Node, what string, loc file.Location, format string, args ...any) {
	l.diag(SevError, l.exprPos(f, n, loc.From), "%s: %s", what, fmt.Sprintf(format, args...))
}

// checkMembers catches what the type checker cannot: unknown lists (those
// the macro expander did not resolve), and unknown members of the
// map-shaped output environment.
func (l *loader) checkMembers(f *srcFile, n *yaml.Node, spec exprSpec, root ast.Node, lists map[*ast.StringNode]bool) bool {
	ok := true
	walk(root, func(nd ast.Node) {
		m, isMember := nd.(*ast.MemberNode)
		if !isMember {
			return
		}
		id, isIdent := m.Node.(*ast.IdentifierNode)
		prop, isStr := m.Property.(*ast.StringNode)
		if !isIdent || !isStr {
			return
		}
		var known []string
		what := id.Value
		switch {
		case id.Value == "lists":
			if !lists[prop] {
				l.exprErrAt(f, n, spec.what, m.Location(), "unknown list %q", prop.Value)
				ok = false
			}
			return
		case spec.kind == envOutput || spec.kind == envCloses:
			switch id.Value {
			case "entity":
				known = entityKeys
			case "agg":
				known = aggKeys
			case "rule":
				known = ruleKeys
			case "event":
				known = stepKeys
			case "key":
				known, what = spec.byNames, "key"
			case "steps":
				known, what = spec.aliases, "step alias"
				if spec.anyAlias || slices.Contains(known, prop.Value) {
					return
				}
				l.exprErrAt(f, n, spec.what, m.Location(), "unknown step alias %q (want one of: %s)%s", prop.Value, strings.Join(known, ", "), didYouMean("steps.", prop.Value, known))
				ok = false
				return
			default:
				return
			}
		default:
			return
		}
		if !slices.Contains(known, prop.Value) {
			l.exprErrAt(f, n, spec.what, m.Location(), "unknown %s field %q (want one of: %s)%s", what, prop.Value, strings.Join(known, ", "), didYouMean(id.Value+".", prop.Value, known))
			ok = false
		}
	})
	return ok
}

// walk calls fn for every node of the tree.
func walk(root ast.Node, fn func(ast.Node)) {
	if root == nil {
		return
	}
	ast.Walk(&root, visitFunc(fn))
}

type visitFunc func(ast.Node)

func (v visitFunc) Visit(n *ast.Node) { v(*n) }

// macroExpander replaces identifiers naming macros by the macro's tree and
// `lists.<name>` by the list's key in Set.Lists, both resolved in scope sc;
// a macro's body resolves in the scope of the file that defines it. The
// nodes get the identifier's location so that errors point at the use.
type macroExpander struct {
	l     *loader
	sc    scope
	stack []*macroDef
	lists map[*ast.StringNode]bool // the list references resolved; may be nil
}

func (m *macroExpander) Visit(node *ast.Node) {
	if mem, ok := (*node).(*ast.MemberNode); ok {
		if prop := listRef(mem); prop != nil {
			if d := m.l.lookupList(m.sc, prop.Value); d != nil {
				prop.Value = m.l.listKey(d)
				if m.lists != nil {
					m.lists[prop] = true
				}
			}
		}
		return
	}
	id, ok := (*node).(*ast.IdentifierNode)
	if !ok {
		return
	}
	def := m.l.lookupMacro(m.sc, id.Value)
	if def == nil || def.tree == nil || slices.Contains(m.stack, def) {
		return
	}
	t, err := parser.Parse(def.src)
	if err != nil {
		return
	}
	sub := t.Node
	ast.Walk(&sub, &macroExpander{l: m.l, sc: def.f.scope(), stack: append(slices.Clip(m.stack), def), lists: m.lists})
	loc := id.Location()
	walk(sub, func(n ast.Node) { n.SetLocation(loc) })
	ast.Patch(node, sub)
}

// listRef returns the name node of `lists.<name>` or `step.lists.<name>`.
func listRef(m *ast.MemberNode) *ast.StringNode {
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		return nil
	}
	switch n := m.Node.(type) {
	case *ast.IdentifierNode:
		if n.Value == "lists" {
			return prop
		}
	case *ast.MemberNode:
		id, ok1 := n.Node.(*ast.IdentifierNode)
		p, ok2 := n.Property.(*ast.StringNode)
		if ok1 && ok2 && id.Value == "step" && p.Value == "lists" {
			return prop
		}
	}
	return nil
}

// stepAlias rewrites step.<x> to <x> in step expressions: the step is the
// event being evaluated.
type stepAlias struct{}

func (stepAlias) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok1 := m.Node.(*ast.IdentifierNode)
	p, ok2 := m.Property.(*ast.StringNode)
	if !ok1 || !ok2 || id.Value != "step" {
		return
	}
	switch p.Value {
	case "event", "entity", "raw", "fields", "lists":
		ast.Patch(node, &ast.IdentifierNode{Value: p.Value})
	}
}

// macroRefs returns the macros a tree refers to, resolved in scope sc.
func (l *loader) macroRefs(sc scope, t *parser.Tree) []*macroDef {
	var out []*macroDef
	walk(t.Node, func(n ast.Node) {
		if id, ok := n.(*ast.IdentifierNode); ok {
			if d := l.lookupMacro(sc, id.Value); d != nil && !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	})
	return out
}

// checkMacros parses every macro and reports cycles.
func (l *loader) checkMacros() {
	var defs []*macroDef
	for _, sc := range []scope{scopeUser, scopePack} {
		names := slices.Sorted(maps.Keys(l.macros[sc]))
		for _, name := range names {
			defs = append(defs, l.macros[sc][name])
		}
	}
	for _, d := range defs {
		t, err := parser.Parse(d.src)
		if err != nil {
			l.exprErr(d.f, d.node, "macro "+d.name, err)
			continue
		}
		d.tree = t
	}
	const (
		white = iota
		grey
		black
	)
	color := map[*macroDef]int{}
	var visit func(d *macroDef, path []*macroDef) bool
	visit = func(d *macroDef, path []*macroDef) bool {
		switch color[d] {
		case grey:
			i := slices.Index(path, d)
			var cyc []string
			for _, p := range path[i:] {
				cyc = append(cyc, p.name)
			}
			l.errf(d.f, d.node, "macro cycle: %s", strings.Join(append(cyc, d.name), " → "))
			return false
		case black:
			return true
		}
		color[d] = grey
		ok := true
		if d.tree != nil {
			for _, r := range l.macroRefs(d.f.scope(), d.tree) {
				if !visit(r, append(path, d)) {
					ok = false
					d.tree = nil // never expand a cyclic macro
					break
				}
			}
		}
		color[d] = black
		return ok
	}
	for _, d := range defs {
		visit(d, nil)
	}
}

// usesIdent reports whether the tree reads the top-level name.
func usesIdent(root ast.Node, name string) bool {
	found := false
	walk(root, func(n ast.Node) {
		if id, ok := n.(*ast.IdentifierNode); ok && id.Value == name {
			found = true
		}
	})
	return found
}

// ---- event type derivation -----------------------------------------------

// valueSet is a derived constraint on one value: ok=false means unconstrained.
type valueSet struct {
	ok   bool
	vals []string
}

// memberPath returns the dotted path of a.b["c"] chains, or nil.
func memberPath(n ast.Node) []string {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return []string{n.Value}
	case *ast.ChainNode:
		return memberPath(n.Node)
	case *ast.MemberNode:
		s, ok := n.Property.(*ast.StringNode)
		if !ok {
			return nil
		}
		p := memberPath(n.Node)
		if p == nil {
			return nil
		}
		return append(p, s.Value)
	}
	return nil
}

func samePath(n ast.Node, path []string) bool {
	return slices.Equal(memberPath(n), path)
}

func stringLits(n ast.Node) ([]string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return []string{n.Value}, true
	case *ast.ArrayNode:
		out := make([]string, 0, len(n.Nodes))
		for _, e := range n.Nodes {
			s, ok := e.(*ast.StringNode)
			if !ok {
				return nil, false
			}
			out = append(out, s.Value)
		}
		return out, true
	case *ast.ConstantNode:
		if v := reflect.ValueOf(n.Value); v.Kind() == reflect.String {
			return []string{v.String()}, true
		}
	}
	return nil, false
}

// derive computes the values path can take when n is true.
func derive(n ast.Node, path []string) valueSet {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return valueSet{}
	}
	switch b.Operator {
	case "&&", "and":
		x, y := derive(b.Left, path), derive(b.Right, path)
		switch {
		case x.ok && y.ok:
			var out []string
			for _, v := range x.vals {
				if slices.Contains(y.vals, v) {
					out = append(out, v)
				}
			}
			return valueSet{ok: true, vals: out}
		case x.ok:
			return x
		default:
			return y
		}
	case "||", "or":
		x, y := derive(b.Left, path), derive(b.Right, path)
		if x.ok && y.ok {
			out := slices.Clone(x.vals)
			for _, v := range y.vals {
				if !slices.Contains(out, v) {
					out = append(out, v)
				}
			}
			return valueSet{ok: true, vals: out}
		}
		return valueSet{}
	case "==":
		if samePath(b.Left, path) {
			if s, ok := b.Right.(*ast.StringNode); ok {
				return valueSet{ok: true, vals: []string{s.Value}}
			}
		}
		if samePath(b.Right, path) {
			if s, ok := b.Left.(*ast.StringNode); ok {
				return valueSet{ok: true, vals: []string{s.Value}}
			}
		}
	case "in":
		if samePath(b.Left, path) {
			if a, ok := b.Right.(*ast.ArrayNode); ok {
				if vals, ok := stringLits(a); ok {
					return valueSet{ok: true, vals: vals}
				}
			}
		}
	}
	return valueSet{}
}

// deriveTypes derives a signal's event types from its where tree.
func deriveTypes(src string, tree ast.Node) ([]string, bool) {
	et := derive(tree, []string{"event", "type"})
	// The type is the format's type members joined (format.Format).
	var st valueSet
	if f, ok := format.ForSource(pipeline.Source(src)); ok && len(f.TypeFields) > 0 {
		st = valueSet{ok: true, vals: []string{f.TypePrefix}}
		for i, field := range f.TypeFields {
			vs := derive(tree, []string{"raw", field})
			if !vs.ok {
				st = valueSet{}
				break
			}
			var next []string
			for _, a := range st.vals {
				for _, b := range vs.vals {
					if i > 0 {
						b = ":" + b
					}
					next = append(next, a+b)
				}
			}
			st.vals = next
		}
	}
	var out valueSet
	switch {
	case et.ok && st.ok:
		out.ok = true
		for _, v := range et.vals {
			if slices.Contains(st.vals, v) {
				out.vals = append(out.vals, v)
			}
		}
	case et.ok:
		out = et
	default:
		out = st
	}
	if !out.ok {
		return nil, false
	}
	sort.Strings(out.vals)
	return slices.Compact(out.vals), true
}
