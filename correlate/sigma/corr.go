package sigma

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Correlation types (specification v2.1.0).
const (
	EventCount      = "event_count"
	ValueCount      = "value_count"
	ValueSum        = "value_sum"
	ValueAvg        = "value_avg"
	ValuePercentile = "value_percentile"
	Temporal        = "temporal"
	TemporalOrdered = "temporal_ordered"
)

var corrTypes = []string{EventCount, ValueCount, ValueSum, ValueAvg, ValuePercentile, Temporal, TemporalOrdered}

// Correlation is one Sigma correlation rule as written. It refers to other
// rules (detections or correlations) by id or name; package sigma does not
// resolve the references (they may live in other files).
type Correlation struct {
	Pos Pos // of the document
	Meta
	// Generate: the referred rules also run as stand-alone rules.
	Generate bool

	Type    string
	TypePos Pos
	// Rules are the referred rules' ids or names, in order.
	Rules []Ref
	// GroupBy are field names or aliases; HasGroupBy tells an absent
	// group-by (the whole rule is one group) from an empty one.
	GroupBy    []Ref
	HasGroupBy bool
	Timespan   time.Duration
	// Condition is nil when absent (temporal types: every referred rule).
	Condition *CorrCondition
	Aliases   []Alias
	// CorrPos is the position of the correlation section.
	CorrPos Pos

	// Node is the document's root mapping.
	Node *yaml.Node
}

// Ref is a name (a rule reference, a field, an alias) with its position.
type Ref struct {
	Name string
	Pos  Pos
}

// Alias maps a group-by name to a field per referred rule (by rule name).
type Alias struct {
	Name   string
	Pos    Pos
	Fields []AliasField
}

// AliasField is the field an alias stands for in the events of one rule.
type AliasField struct {
	Rule  string // the referred rule's name
	Field string
	Pos   Pos // of the rule name key
}

// CorrCondition is a correlation condition: every op that is set must hold
// (several form a range). Fields is the condition's field (value_* types);
// several fields form one tuple value.
type CorrCondition struct {
	Pos                       Pos
	GT, GTE, LT, LTE, EQ, NEQ *float64
	Fields                    []string
	FieldPos                  Pos
}

// LowerBoundsOnly reports whether the condition has only gt/gte ops: once
// it holds over a growing window, more events keep it true (for counts).
func (c *CorrCondition) LowerBoundsOnly() bool {
	return c.LT == nil && c.LTE == nil && c.EQ == nil && c.NEQ == nil
}

// Holds reports whether v satisfies every op that is set.
func (c *CorrCondition) Holds(v float64) bool {
	ok := func(p *float64, f func(b float64) bool) bool { return p == nil || f(*p) }
	return ok(c.GT, func(b float64) bool { return v > b }) &&
		ok(c.GTE, func(b float64) bool { return v >= b }) &&
		ok(c.LT, func(b float64) bool { return v < b }) &&
		ok(c.LTE, func(b float64) bool { return v <= b }) &&
		ok(c.EQ, func(b float64) bool { return v == b }) &&
		ok(c.NEQ, func(b float64) bool { return v != b })
}

// String renders the condition's ops ("gte 10, lt 20").
// holdsSomeCount reports whether some count (1, 2, ...) satisfies c.
func (c *CorrCondition) holdsSomeCount() bool {
	if c.EQ != nil {
		return *c.EQ >= 1 && *c.EQ == math.Trunc(*c.EQ) && c.Holds(*c.EQ)
	}
	// The least count the lower bounds allow, and the next (past a neq).
	k := 1.0
	if c.GT != nil {
		k = max(k, math.Floor(*c.GT)+1)
	}
	if c.GTE != nil {
		k = max(k, math.Ceil(*c.GTE))
	}
	return c.Holds(k) || c.Holds(k+1)
}

func (c *CorrCondition) String() string {
	var parts []string
	for _, op := range []struct {
		n string
		p *float64
	}{{"gt", c.GT}, {"gte", c.GTE}, {"lt", c.LT}, {"lte", c.LTE}, {"eq", c.EQ}, {"neq", c.NEQ}} {
		if op.p != nil {
			parts = append(parts, op.n+" "+strconv.FormatFloat(*op.p, 'f', -1, 64))
		}
	}
	return strings.Join(parts, ", ")
}

// correlation keys of the top level that ecscorr reads; any other key is
// warned about (Sigma allows custom fields) except the detection sections,
// which have no meaning in a correlation.
var corrTopKeys = map[string]bool{"title": true, "id": true, "name": true, "status": true, "description": true,
	"license": true, "author": true, "references": true, "date": true, "modified": true, "taxonomy": true,
	"falsepositives": true, "level": true, "tags": true, "related": true, "generate": true, "correlation": true}

var timespanRe = regexp.MustCompile(`^([0-9]+)([smhd])$`)

// maxTimespan bounds a correlation's timespan (state is kept that long).
const maxTimespan = 366 * 24 * time.Hour

func (p *parser) correlation(root *yaml.Node) *Correlation {
	c := &Correlation{Pos: p.pos(root), Node: root}
	kv := p.pairs(root, "correlation rule")
	has := map[string]bool{}
	for _, e := range kv {
		has[e[0].Value] = true
	}
	if !has["title"] {
		p.errf(root, "missing mandatory %q", "title")
	}
	for _, e := range kv {
		k, v := e[0], e[1]
		if p.meta(&c.Meta, k, v) {
			continue
		}
		switch k.Value {
		case "generate":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				p.errf(v, "generate must be true or false")
			} else {
				_ = v.Decode(&c.Generate)
			}
		case "correlation":
			p.corrSection(c, v)
		case "logsource", "detection":
			p.errf(k, "a correlation rule has no %s (it refers to detection rules in `correlation.rules`)", k.Value)
		default:
			if !corrTopKeys[k.Value] {
				p.warnf(k, "unknown key %q in a correlation rule; ignored", k.Value)
			}
		}
	}
	return c
}

func (p *parser) corrSection(c *Correlation, n *yaml.Node) {
	c.CorrPos = p.pos(n)
	if n.Kind != yaml.MappingNode {
		p.errf(n, "correlation must be a mapping")
		return
	}
	kv := p.pairs(n, "correlation")
	keys := map[string]*yaml.Node{}
	for _, e := range kv {
		keys[e[0].Value] = e[1]
	}
	for _, e := range kv {
		k, v := e[0], e[1]
		switch k.Value {
		case "type":
			c.Type = p.str(v, "correlation type")
			c.TypePos = p.pos(v)
			if c.Type != "" && !slices.Contains(corrTypes, c.Type) {
				p.errf(v, "unknown correlation type %q (%s)", c.Type, strings.Join(corrTypes, ", "))
				c.Type = ""
			}
		case "rules":
			c.Rules = p.refList(v, "rules", 2)
		case "group-by":
			c.HasGroupBy = true
			c.GroupBy = p.refList(v, "group-by", 1)
		case "timespan":
			c.Timespan = p.timespan(v)
		case "condition":
			c.Condition = p.corrCondition(v)
		case "aliases":
			c.Aliases = p.aliases(v)
		case "generate":
			p.errf(k, "generate belongs at the top level of the rule, not under correlation")
		default:
			p.errf(k, "unknown key %q in correlation (type, rules, group-by, timespan, condition, aliases)", k.Value)
		}
	}
	for _, req := range []string{"type", "rules", "timespan"} {
		if keys[req] == nil {
			p.errf(n, "correlation: missing mandatory %q", req)
		}
	}
	if c.Type == "" {
		return
	}
	valueType := strings.HasPrefix(c.Type, "value_")
	if !c.HasGroupBy {
		p.warnf(n, "correlation: %s has no group-by (the schema requires one): all events of the referred rules form one group", c.Type)
	}
	cond := c.Condition
	switch {
	case cond == nil && keys["condition"] != nil:
		// already reported
	case cond == nil && (c.Type == EventCount || valueType):
		p.errf(n, "correlation: %s needs a condition", c.Type)
	case cond != nil && valueType && len(cond.Fields) == 0:
		p.errf(p.node(keys["condition"]), "correlation: %s needs condition.field (the field whose values are aggregated)", c.Type)
	case cond != nil && !valueType && len(cond.Fields) > 0:
		p.errf(p.node(keys["condition"]), "correlation: condition.field is for the value_* types, not %s", c.Type)
	case cond != nil && len(cond.Fields) > 1 && c.Type != ValueCount:
		p.errf(p.node(keys["condition"]), "correlation: %s aggregates one field (only value_count counts tuples of several)", c.Type)
	}
	if (c.Type == Temporal || c.Type == TemporalOrdered) && len(c.Rules) == 1 {
		p.errf(keys["rules"], "correlation: %s needs at least two rules", c.Type)
	}
	if c.Type == TemporalOrdered && cond != nil {
		// The sequence needs every rule in order; only "all" is meaningful.
		all := cond.Holds(float64(len(c.Rules)))
		for i := 1; i < len(c.Rules); i++ {
			all = all && !cond.Holds(float64(i))
		}
		if !all {
			p.errf(p.node(keys["condition"]), "correlation: temporal_ordered matches every rule in order; a condition other than all %d rules (gte: %d) is not supported", len(c.Rules), len(c.Rules))
		}
	}
	if (c.Type == Temporal) && cond != nil && !cond.Holds(float64(len(c.Rules))) {
		holdsSome := false
		for i := 1; i <= len(c.Rules); i++ {
			holdsSome = holdsSome || cond.Holds(float64(i))
		}
		if !holdsSome {
			p.errf(p.node(keys["condition"]), "correlation: condition %s can never hold for %d rules", cond, len(c.Rules))
		}
	}
	if (c.Type == EventCount || c.Type == ValueCount || c.Type == Temporal) && cond != nil {
		for _, b := range []struct {
			op string
			v  *float64
		}{{"gt", cond.GT}, {"gte", cond.GTE}, {"lt", cond.LT}, {"lte", cond.LTE}, {"eq", cond.EQ}, {"neq", cond.NEQ}} {
			if b.v != nil && *b.v != math.Trunc(*b.v) {
				p.errf(p.node(keys["condition"]), "correlation: condition %s %v: %s compares a count, an integer (the schema's type)", b.op, *b.v, c.Type)
			}
		}
	}
	if (c.Type == EventCount || c.Type == ValueCount) && cond != nil && !cond.holdsSomeCount() {
		p.errf(p.node(keys["condition"]), "correlation: condition %s can never hold: %s counts from 1 (a window holds at least one event; \"none\" is not an event_count)", cond, c.Type)
	}
	if c.Type == ValuePercentile && cond != nil {
		for _, b := range []*float64{cond.GT, cond.GTE, cond.LT, cond.LTE, cond.EQ, cond.NEQ} {
			if b != nil && (*b < 0 || *b > 100) {
				p.errf(p.node(keys["condition"]), "correlation: value_percentile compares a percentage (0 to 100), not %v", *b)
				break
			}
		}
	}
	// Aliases are used in group-by (the loader checks the rule names).
	used := map[string]bool{}
	for _, g := range c.GroupBy {
		used[g.Name] = true
	}
	for _, a := range c.Aliases {
		if !used[a.Name] {
			p.ds = append(p.ds, Diagnostic{Pos: a.Pos, Severity: SevWarning, Msg: fmt.Sprintf("alias %q is not used in group-by", a.Name)})
		}
	}
}

// node returns n, or a placeholder when nil (positions of absent keys).
func (p *parser) node(n *yaml.Node) *yaml.Node {
	if n == nil {
		return &yaml.Node{}
	}
	return n
}

// refList reads a non-empty list of unique strings (minLen: the shortest
// allowed).
func (p *parser) refList(n *yaml.Node, key string, minLen int) []Ref {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" && key == "group-by" {
		p.warnf(n, "correlation group-by is a list in the schema; read as [%s]", n.Value)
		n = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{n}, Line: n.Line, Column: n.Column}
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errf(n, "correlation %s must be a non-empty list of strings", key)
		return nil
	}
	var out []Ref
	seen := map[string]bool{}
	for _, c := range n.Content {
		c = deref(c)
		if c.Kind != yaml.ScalarNode || c.Tag == "!!null" || c.Value == "" {
			p.errf(c, "correlation %s must be a list of strings", key)
			continue
		}
		if len(c.Value) < minLen {
			p.errf(c, "correlation %s: %q is too short", key, c.Value)
			continue
		}
		if seen[c.Value] {
			p.errf(c, "correlation %s: %q is listed twice", key, c.Value)
			continue
		}
		seen[c.Value] = true
		out = append(out, Ref{Name: c.Value, Pos: p.pos(c)})
	}
	return out
}

func (p *parser) timespan(n *yaml.Node) time.Duration {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errf(n, "timespan must be a string like 10m (a number and one of s, m, h, d)")
		return 0
	}
	m := timespanRe.FindStringSubmatch(n.Value)
	if m == nil {
		p.errf(n, "timespan %q: want a number and one of s, m, h, d in lowercase (e.g. 90m)", n.Value)
		return 0
	}
	x, err := strconv.ParseInt(m[1], 10, 64)
	unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[2]]
	if err != nil || x <= 0 || x > int64(maxTimespan/unit) {
		p.errf(n, "timespan %q must be more than 0 and at most 366d", n.Value)
		return 0
	}
	return time.Duration(x) * unit
}

func (p *parser) corrCondition(n *yaml.Node) *CorrCondition {
	if n.Kind != yaml.MappingNode {
		p.errf(n, "correlation condition must be a mapping of gt, gte, lt, lte, eq, neq (and field)")
		return nil
	}
	c := &CorrCondition{Pos: p.pos(n)}
	ops := 0
	good := true
	for _, e := range p.pairs(n, "condition") {
		k, v := e[0], e[1]
		var dst **float64
		switch k.Value {
		case "gt":
			dst = &c.GT
		case "gte":
			dst = &c.GTE
		case "lt":
			dst = &c.LT
		case "lte":
			dst = &c.LTE
		case "eq":
			dst = &c.EQ
		case "neq":
			dst = &c.NEQ
		case "field":
			c.FieldPos = p.pos(v)
			if v.Kind == yaml.SequenceNode {
				for _, r := range p.refList(v, "condition field", 1) {
					c.Fields = append(c.Fields, r.Name)
				}
			} else if s := p.str(v, "condition field"); s != "" {
				c.Fields = []string{s}
			} else {
				good = false
			}
			continue
		default:
			p.errf(k, "unknown key %q in correlation condition (gt, gte, lt, lte, eq, neq, field)", k.Value)
			good = false
			continue
		}
		val, ok := p.value(v)
		if !ok || val.Kind != KindNumber || math.IsInf(val.Num, 0) || math.IsNaN(val.Num) {
			if ok {
				p.errf(v, "condition %s must be a number", k.Value)
			}
			good = false
			continue
		}
		x := val.Num
		*dst = &x
		ops++
	}
	if ops == 0 && good {
		p.errf(n, "correlation condition needs one of gt, gte, lt, lte, eq, neq")
		return nil
	}
	if !good {
		return nil
	}
	// A range that no number satisfies is a mistake, not a rule.
	lo, hi := math.Inf(-1), math.Inf(1)
	loIn, hiIn := true, true
	if c.GT != nil {
		lo, loIn = *c.GT, false
	}
	if c.GTE != nil && *c.GTE > lo {
		lo, loIn = *c.GTE, true
	}
	if c.LT != nil {
		hi, hiIn = *c.LT, false
	}
	if c.LTE != nil && *c.LTE < hi {
		hi, hiIn = *c.LTE, true
	}
	if lo > hi || lo == hi && !(loIn && hiIn) || c.EQ != nil && !c.Holds(*c.EQ) {
		p.errf(n, "correlation condition %s can never hold", c)
		return nil
	}
	return c
}

func (p *parser) aliases(n *yaml.Node) []Alias {
	if n.Kind != yaml.MappingNode {
		p.errf(n, "aliases must be a mapping: alias → {rule name: field}")
		return nil
	}
	var out []Alias
	for _, e := range p.pairs(n, "aliases") {
		k, v := e[0], e[1]
		a := Alias{Name: k.Value, Pos: p.pos(k)}
		if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
			p.errf(v, "alias %q must map rule names to field names", k.Value)
			continue
		}
		for _, f := range p.pairs(v, "alias "+k.Value) {
			s := p.str(f[1], "alias field")
			if s == "" {
				continue
			}
			a.Fields = append(a.Fields, AliasField{Rule: f[0].Value, Field: s, Pos: p.pos(f[0])})
		}
		out = append(out, a)
	}
	return out
}

// Field resolves a dotted Sigma field name in decoded records exactly as
// the detection matcher does: through nested objects and arrays, and
// through flattened dotted keys ("a.b": 1).
type Field struct{ fp *fieldPath }

// NewField returns the resolver of a field name.
func NewField(name string) *Field { return &Field{fp: newPath(name)} }

// Name is the field name.
func (f *Field) Name() string { return f.fp.name }

// TopKeys are the top-level keys of a record the field can read.
func (f *Field) TopKeys() []string { return slices.Clone(f.fp.keys[0]) }

// Values appends to dst every non-null value the field reaches in doc
// (arrays flattened; an object is one value) and returns it.
func (f *Field) Values(doc map[string]any, dst []any) []any {
	f.fp.walk(doc, func(v any, present bool) bool {
		if present && v != nil {
			dst = append(dst, v)
		}
		return false
	})
	return dst
}

// Strings returns the distinct string forms (as a plain detection
// comparison reads them) of the scalar values the field reaches, in
// record order; objects and nulls are skipped.
func (f *Field) Strings(doc map[string]any) []string {
	var out []string
	var buf [4]any
	for _, v := range f.Values(doc, buf[:0]) {
		s, ok := scalarString(v)
		if ok && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Number is the value's number as a numeric detection comparison (lt,
// gte, ...) reads it: JSON numbers and strings that parse as numbers.
func Number(v any) (float64, bool) {
	f, ok := toFloat(v)
	if !ok || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}
