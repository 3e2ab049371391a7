package rule

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"go.yaml.in/yaml/v3"

	"github.com/ecscorr/ecscorr/pipeline"
)

// Load-time lint: rules that load but cannot work as written. These are
// warnings, not errors: the rule is valid, and a lint that knows less than
// the author (a new CloudTrail field, an unusual record) must not refuse a
// whole rule set.

// exprTree parses the expression of n and expands macros as compileExpr
// does (step: also step.<x> → <x>); nil when it does not parse (compileExpr
// reported that).
func (l *loader) exprTree(f *srcFile, n *yaml.Node, step bool) ast.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || strings.TrimSpace(n.Value) == "" {
		return nil
	}
	t, err := parser.Parse(n.Value)
	if err != nil {
		return nil
	}
	ast.Walk(&t.Node, &macroExpander{l: l, sc: f.scope()})
	if step {
		ast.Walk(&t.Node, stepAlias{})
	}
	return t.Node
}

// ---- signals ----------------------------------------------------------------

var (
	ctTypeRe = regexp.MustCompile(`^[A-Za-z0-9.-]+\.amazonaws\.com:[A-Za-z0-9_]+$`)
	gdTypeRe = regexp.MustCompile(`^[A-Za-z]+:[A-Za-z0-9]+/[^ ]+$`)
)

// typeSource names the source whose event types have the shape of t
// ("" when the shape is not distinctive, as Falco rule names are not).
func typeSource(t string) pipeline.Source {
	switch {
	case ctTypeRe.MatchString(t):
		return pipeline.SourceCloudTrail
	case strings.HasPrefix(t, "metrics/"):
		return pipeline.SourceContainerInsights
	case strings.HasPrefix(t, "ECS "):
		return pipeline.SourceECS
	case gdTypeRe.MatchString(t):
		return pipeline.SourceGuardDuty
	}
	return ""
}

var typeShapes = map[pipeline.Source]string{
	pipeline.SourceCloudTrail:        "eventSource:eventName, e.g. ecs.amazonaws.com:ExecuteCommand",
	pipeline.SourceContainerInsights: "metrics/<Type>, e.g. metrics/Task",
	pipeline.SourceECS:               "the EventBridge detail-type, e.g. ECS Task State Change",
	pipeline.SourceGuardDuty:         "the finding type, e.g. Execution:Runtime/ReverseShell",
}

// lintSignal warns about a signal that can never match: an event type of
// another source, or top-level where conjuncts that contradict.
func (l *loader) lintSignal(d *sigDef, s *Signal) {
	f := d.f
	typesNode, whereNode := mapValue(d.node, "types"), mapValue(d.node, "where")
	if s.Source != "" {
		var items []*yaml.Node
		if tn := deref(typesNode); tn != nil && tn.Kind == yaml.SequenceNode {
			items = tn.Content
		}
		for i, t := range s.Types {
			n := whereNode
			if i < len(items) {
				n = items[i]
			}
			other := typeSource(t)
			distinct := s.Source == pipeline.SourceCloudTrail || s.Source == pipeline.SourceContainerInsights
			switch {
			case other == s.Source:
			case other != "" && (s.Source != pipeline.SourceFalco || other == pipeline.SourceCloudTrail || other == pipeline.SourceContainerInsights):
				l.warnf(f, n, "signal %s: type %q is a %s event type, never a %s one (%s event types are %s): the signal can never match events of that type", d.name, t, other, s.Source, s.Source, typeShapes[s.Source])
			case other == "" && distinct:
				l.warnf(f, n, "signal %s: type %q is never a %s event type (they are %s): the signal can never match events of that type", d.name, t, s.Source, typeShapes[s.Source])
			}
		}
	}
	tree := l.exprTree(f, whereNode, false)
	if tree == nil {
		return
	}
	skip := map[string]bool{}
	if typesNode == nil { // derivation ran and warned about the type paths
		skip["event.type"] = true
		skip["raw.eventSource"], skip["raw.eventName"], skip["raw.rule"], skip["raw.type"] = true, true, true, true
	}
	type want struct {
		vals []string
		desc string
	}
	wants := map[string]*want{}
	for _, c := range conjuncts(tree) {
		path, vals, ok := equality(c)
		if !ok || skip[path] {
			continue
		}
		if path == "event.source" && s.Source != "" && !slices.Contains(vals, strconv.Quote(string(s.Source))) {
			l.diag(SevWarning, l.exprPos(f, deref(whereNode), c.Location().From), "signal %s: where can never match: it requires event.source %s, but the signal's source is %s", d.name, quoteList(vals), s.Source)
			return
		}
		if path == "event.type" && typesNode != nil && !slices.ContainsFunc(s.Types, func(t string) bool { return slices.Contains(vals, strconv.Quote(t)) }) {
			l.diag(SevWarning, l.exprPos(f, deref(whereNode), c.Location().From), "signal %s: where can never match: it requires event.type %s, which types: does not list", d.name, quoteList(vals))
			return
		}
		w := wants[path]
		if w == nil {
			wants[path] = &want{vals: vals, desc: quoteList(vals)}
			continue
		}
		var both []string
		for _, v := range w.vals {
			if slices.Contains(vals, v) {
				both = append(both, v)
			}
		}
		if len(both) == 0 {
			l.diag(SevWarning, l.exprPos(f, deref(whereNode), c.Location().From), "signal %s: where can never match: it requires %s to be %s and %s at once", d.name, path, w.desc, quoteList(vals))
			return
		}
		w.vals, w.desc = both, quoteList(both)
	}
}

// conjuncts returns the top-level && operands of n.
func conjuncts(n ast.Node) []ast.Node {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "&&" || b.Operator == "and") {
		return append(conjuncts(b.Left), conjuncts(b.Right)...)
	}
	return []ast.Node{n}
}

// equality matches `path == lit`, `lit == path` and `path in [lits]` with
// string, bool or nil literals; vals are the literals (nil as "nil").
func equality(n ast.Node) (string, []string, bool) {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return "", nil, false
	}
	lit := func(n ast.Node) (string, bool) {
		switch n := n.(type) {
		case *ast.StringNode:
			return strconv.Quote(n.Value), true
		case *ast.BoolNode:
			return fmt.Sprint(n.Value), true
		case *ast.NilNode:
			return "nil", true
		}
		return "", false
	}
	switch b.Operator {
	case "==":
		for _, lr := range [][2]ast.Node{{b.Left, b.Right}, {b.Right, b.Left}} {
			if p := memberPath(lr[0]); p != nil {
				if v, ok := lit(lr[1]); ok {
					return strings.Join(p, "."), []string{v}, true
				}
			}
		}
	case "in":
		p := memberPath(b.Left)
		a, ok := b.Right.(*ast.ArrayNode)
		if p == nil || !ok {
			return "", nil, false
		}
		var vals []string
		for _, e := range a.Nodes {
			v, ok := lit(e)
			if !ok {
				return "", nil, false
			}
			vals = append(vals, v)
		}
		return strings.Join(p, "."), vals, true
	}
	return "", nil, false
}

// quoteList prints literal values (already quoted) as v or one of [a, b].
func quoteList(vals []string) string {
	if len(vals) == 1 {
		return vals[0]
	}
	return "one of [" + strings.Join(vals, ", ") + "]"
}

// ---- rules: keys CloudTrail events do not carry ------------------------------

// rareCT describes, for an entity field CloudTrail records rarely carry,
// which ECS calls carry it.
func rareCT(field string) (carries func(name string) bool, desc string, ok bool) {
	in := func(list []string) func(string) bool {
		return func(name string) bool {
			return slices.ContainsFunc(list, func(c string) bool { return strings.EqualFold(c, name) })
		}
	}
	switch field {
	case "task_arn":
		return in(ctTaskCalls), "a task only on the ECS calls " + andList(ctTaskCalls), true
	case "task_definition_arn", "task_definition_family":
		return in(ctTaskDefCalls), "a task definition only on the ECS calls " + andList(ctTaskDefCalls), true
	case "service":
		return in(ctServiceCalls), "a service only on the ECS calls " + andList(ctServiceCalls), true
	case "cluster":
		no := in(ctNoClusterCalls)
		return func(name string) bool { return !no(name) }, "a cluster only on the ECS calls that name one", true
	case "container_id":
		return func(string) bool { return false }, "never a container id", true
	}
	return nil, "", false
}

func andList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// signalTypes are the event types a signal can match (lower-cased when it
// dispatches case-insensitively); nil means every type of its source.
func signalTypes(s *Signal) ([]string, bool) {
	if len(s.FoldedTypes) > 0 {
		return s.FoldedTypes, true
	}
	if len(s.FoldedSources) > 0 || len(s.FoldedNames) > 0 || len(s.Types) == 0 {
		return nil, false
	}
	return s.Types, false
}

// lintKey warns when every signal of a rule is a CloudTrail signal and its
// key needs an entity field the CloudTrail decoder fills only for some ECS
// calls: the events of the other calls have no key and are dropped. A
// task_arn part alone drops an event without a task; the other fields
// only when every part of the key is such a field (an empty key).
func (l *loader) lintKey(d *ruleDef, r *Rule) {
	sigs := ruleSignals(r)
	if len(sigs) == 0 || len(r.By) == 0 {
		return
	}
	for _, s := range sigs {
		if s.Source != pipeline.SourceCloudTrail {
			return
		}
	}
	var parts []string
	task, allRare := false, true
	for _, kf := range r.By {
		if kf.Expr != nil {
			allRare = false
			continue
		}
		if _, _, ok := rareCT(kf.Entity); !ok {
			allRare = false
			continue
		}
		if kf.Entity == "task_arn" {
			task = true
		}
		parts = append(parts, kf.Entity)
	}
	switch {
	case task:
		parts = []string{"task_arn"}
	case !allRare:
		return
	}
	carried := func(t string) bool {
		src, name, _ := strings.Cut(t, ":")
		if !strings.EqualFold(src, "ecs.amazonaws.com") {
			return false
		}
		for _, p := range parts {
			if c, _, _ := rareCT(p); c(name) {
				return true
			}
		}
		return false
	}
	var bad string
	for _, s := range sigs {
		types, _ := signalTypes(s)
		if types == nil {
			bad = fmt.Sprintf("signal %s (every CloudTrail event type)", s.Name)
			break
		}
		if i := slices.IndexFunc(types, func(t string) bool { return !carried(t) }); i >= 0 {
			bad = fmt.Sprintf("signal %s (%s)", s.Name, types[i])
			break
		}
	}
	if bad == "" {
		return
	}
	var descs []string
	for _, p := range parts {
		_, desc, _ := rareCT(p)
		if !slices.Contains(descs, desc) {
			descs = append(descs, desc)
		}
	}
	n, key := mapValue(d.node, "by"), "by ["+strings.Join(byNames(r), ", ")+"]"
	if n == nil {
		n, key = mapValue(d.node, "id"), "by [task_arn] (the default)"
	}
	what := "it"
	if len(parts) > 1 {
		what = "any of them"
	}
	l.warnf(d.f, deref(n), "rule %s is keyed %s, but all its signals are CloudTrail signals, and CloudTrail records carry account, region and principal, and %s: events of %s without %s have no key and are dropped (counted in NoKey); key by [account, region] or [principal], or by {name, expr} over raw (e.g. the request's resource)",
		r.ID, key, strings.Join(descs, "; "), bad, what)
}

func byNames(r *Rule) []string {
	out := make([]string, len(r.By))
	for i, kf := range r.By {
		out[i] = kf.Name
	}
	return out
}

// ---- Sigma: detections that can never match ------------------------------------

// lintSigma warns about a Sigma detection no CloudTrail record can match:
// contradictory eventSource/eventName literals, or a required field that
// CloudTrail records do not have.
func (l *loader) lintSigma(d *sigmaDef, s *Signal) {
	if s.Never {
		var fields []string
		for k, v := range d.m.Constraints() {
			if len(v) == 0 {
				fields = append(fields, k)
			}
		}
		slices.Sort(fields)
		l.diag(SevWarning, sigmaPos(d.r.Detection.Pos), "sigma: rule %s can never match: its condition requires %s to equal contradictory values (a record has one value)", d.id, strings.Join(fields, " and "))
		return
	}
	for _, rf := range d.m.Required() {
		segs := strings.Split(rf.Field, ".")
		var msg string
		switch {
		case !slices.Contains(cloudTrailFields, segs[0]):
			msg = fmt.Sprintf("its detection requires field %s, which CloudTrail records do not have", segs[0])
			if h := ctFieldHints[segs[0]]; h != "" {
				msg += " (" + h + ")"
			} else if m := closest(segs[0], cloudTrailFields); m != "" {
				msg += "; did you mean " + m + "?"
			}
		case segs[0] == "userIdentity" && len(segs) > 1 && !slices.Contains(userIdentityFields, segs[1]):
			msg = fmt.Sprintf("its detection requires field %s, and a CloudTrail userIdentity has no member %s", rf.Field, segs[1])
			if m := closest(segs[1], userIdentityFields); m != "" {
				msg += "; did you mean userIdentity." + m + "?"
			}
		default:
			continue
		}
		l.diag(SevWarning, sigmaPos(rf.Pos), "sigma: rule %s can never match: %s", d.id, msg)
	}
}

// ---- did you mean ---------------------------------------------------------------

// closest returns the candidate nearest to name (equal ignoring case, or
// within an edit distance of 2 and less than a third of its length ... at
// least 1), or "".
func closest(name string, cands []string) string {
	best, bestD := "", 1<<30
	for _, c := range cands {
		if c == name {
			continue
		}
		if strings.EqualFold(c, name) {
			return c
		}
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= max(1, min(2, len([]rune(name))/3)) {
		return best
	}
	return ""
}

// editDistance is the Damerau (optimal string alignment) distance.
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}

// didYouMean is "; did you mean X?" for the closest candidate, or "".
func didYouMean(prefix, name string, cands []string) string {
	if m := closest(name, cands); m != "" {
		return "; did you mean " + prefix + m + "?"
	}
	return ""
}

var noFieldRe = regexp.MustCompile(`^type rule\.(EntityEnv|EventEnv) has no field (\w+)`)

// typoHint is "; did you mean ...?" for a type checker's unknown entity.*
// or event.* member.
func typoHint(msg string) string {
	m := noFieldRe.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	if m[1] == "EntityEnv" {
		return didYouMean("entity.", m[2], entityKeys)
	}
	return didYouMean("event.", m[2], []string{"id", "source", "type", "time", "severity", "sample"})
}

// Closest returns the candidate nearest to name (a typo: equal ignoring
// case, or a small edit distance), or "": for "did you mean" hints.
func Closest(name string, cands []string) string { return closest(name, cands) }
