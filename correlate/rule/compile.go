package rule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ecscorr/ecscorr/pipeline"
)

var ruleKeysYAML = []string{"id", "title", "description", "status", "enabled", "severity",
	"severity_override", "mitre", "tags", "by", "detect", "resolve", "exceptions", "output",
	"dedup", "route", "max_keys"}

var statuses = []string{"experimental", "test", "stable", "deprecated"}

// DefaultMaxKeys and DefaultMaxEvents are the rule defaults.
const (
	DefaultMaxKeys   = 100_000
	DefaultMaxEvents = 50
)

// ruleCtx carries what later parts of a rule need from earlier ones.
type ruleCtx struct {
	f        *srcFile
	r        *Rule
	aliases  []string
	byNames  []string
	used     []string // signal names referenced by detect (for the hash)
	ok       bool
	aliasPos map[string]*yaml.Node
	// detectBroken: detect had errors, so the aliases are incomplete and
	// step-alias checks would only cascade.
	detectBroken bool
	// byFields: `by` expressions that read signal fields (checked against
	// the rule's signals once detect is compiled).
	byFields []byFieldsRef
}

func (c *ruleCtx) addAlias(l *loader, n *yaml.Node, a string) {
	if prev, dup := c.aliasPos[a]; dup {
		l.errf(c.f, n, "duplicate step alias %q (first at line %d)", a, prev.Line)
		c.ok = false
		return
	}
	c.aliasPos[a] = n
	c.aliases = append(c.aliases, a)
}

func (l *loader) compileRule(d *ruleDef) (*Rule, bool) {
	f := d.f
	m, ok := l.mapping(f, d.node, "rule "+d.id, ruleKeysYAML...)
	if !ok {
		return nil, false
	}
	r := &Rule{ID: d.id, Pos: l.pos(f, d.node), Status: "experimental", MaxKeys: DefaultMaxKeys, MaxEvents: DefaultMaxEvents}
	c := &ruleCtx{f: f, r: r, ok: true, aliasPos: map[string]*yaml.Node{}}
	bad := func() { c.ok = false }
	enabled := true

	if n := m.get("description"); n != nil {
		if s, ok := l.str(f, n, "description"); ok {
			r.Description = s
		}
	}
	if n := m.get("status"); n != nil {
		if s, ok := l.str(f, n, "status"); ok {
			if !slices.Contains(statuses, s) {
				l.errf(f, n, "unknown status %q (want one of: %s)", s, strings.Join(statuses, ", "))
				bad()
			}
			r.Status = s
		}
	}
	if n := m.get("enabled"); n != nil {
		if b, ok := l.boolean(f, n, "enabled"); ok {
			enabled = b
		} else {
			bad()
		}
	}
	if n := m.get("severity"); n == nil {
		l.errf(f, d.node, "rule %s: missing severity", d.id)
		bad()
	} else if sev, ok := l.severity(f, n); ok {
		r.Severity = sev
	} else {
		bad()
	}
	if n := m.get("mitre"); n != nil {
		if v, nodes, ok := l.strList(f, n, "mitre", false); ok {
			for i, t := range v {
				if !mitreRe.MatchString(t) {
					l.errf(f, nodes[i], "mitre: %q is not an ATT&CK technique id (T1234 or T1234.001)", t)
					bad()
				}
			}
			r.Mitre = v
		}
	}
	if n := m.get("tags"); n != nil {
		if v, _, ok := l.strList(f, n, "tags", false); ok {
			r.Tags = v
		}
	}
	l.ruleBy(c, m.get("by"))

	// detect
	if n := m.get("detect"); n == nil {
		l.errf(f, d.node, "rule %s: missing detect", d.id)
		bad()
		c.detectBroken = true
	} else {
		okBefore := c.ok
		c.ok = true
		l.ruleDetect(c, n)
		c.detectBroken = !c.ok
		c.ok = okBefore && c.ok
	}

	// Output expressions need the aliases of detect.
	if n := m.get("title"); n != nil {
		if s, ok := l.str(f, n, "title"); ok {
			r.TitleSrc = s
		}
	} else {
		r.TitleSrc = "{{ .rule.id }}"
	}
	outSpec := func(what string, asBool bool) exprSpec {
		return exprSpec{what: what, kind: envOutput, asBool: asBool, aliases: c.aliases, byNames: c.byNames, anyAlias: c.detectBroken}
	}
	if n := m.get("severity_override"); n != nil {
		items, _ := l.seq(f, n, "severity_override")
		for _, it := range items {
			om, ok := l.mapping(f, it, "severity_override item", "when", "severity")
			if !ok {
				bad()
				continue
			}
			var so SeverityOverride
			if wn := om.get("when"); wn == nil {
				l.errf(f, it, "severity_override: missing when")
				bad()
			} else if cp := l.compileExpr(f, wn, outSpec("severity_override.when", true)); cp != nil {
				so.When = cp.prog
			} else {
				bad()
			}
			if sn := om.get("severity"); sn == nil {
				l.errf(f, it, "severity_override: missing severity")
				bad()
			} else if sev, ok := l.severity(f, sn); ok {
				so.Severity = sev
			} else {
				bad()
			}
			r.Overrides = append(r.Overrides, so)
		}
	}
	if n := m.get("resolve"); n != nil {
		l.ruleResolve(c, n)
	}
	if !c.detectBroken {
		l.checkByFields(c)
	}
	if n := m.get("exceptions"); n != nil {
		l.ruleExceptions(c, n)
	}
	l.ruleOutput(c, m.get("output"), m.get("title"))
	if n := m.get("dedup"); n != nil {
		if dm, ok := l.mapping(f, n, "dedup", "key", "window"); ok {
			if kn := dm.get("key"); kn != nil {
				r.DedupKey = l.template(c, kn, "dedup.key")
			}
			if wn := dm.get("window"); wn != nil {
				if w, ok := l.duration(f, wn, "dedup.window"); ok {
					r.DedupWindow = w
				} else {
					bad()
				}
			}
		}
	}
	if n := m.get("route"); n != nil {
		if v, nodes, ok := l.strList(f, n, "route", false); ok {
			if l.opts.Sinks != nil {
				for i, s := range v {
					if !slices.Contains(l.opts.Sinks, s) {
						l.errf(f, nodes[i], "route: undefined sink %q (configured: %s)", s, strings.Join(l.opts.Sinks, ", "))
						bad()
					}
				}
			}
			r.Route = v
		}
	}
	if n := m.get("max_keys"); n != nil {
		if v, ok := l.integer(f, n, "max_keys", 1); ok {
			r.MaxKeys = v
		} else {
			bad()
		}
	}
	if !c.detectBroken {
		l.checkRefs(c, m)
	}
	if !c.ok {
		return nil, false
	}
	r.Hash = l.ruleHash(m, c.used)
	return r, enabled
}

var mitreRe = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)

func (l *loader) severity(f *srcFile, n *yaml.Node) (pipeline.Severity, bool) {
	s, ok := l.str(f, n, "severity")
	if !ok {
		return 0, false
	}
	sev, err := pipeline.ParseSeverity(s)
	if err != nil {
		l.errf(f, n, "%v", err)
		return 0, false
	}
	return sev, true
}

var byEntityFields = entityKeys

func (l *loader) ruleBy(c *ruleCtx, n *yaml.Node) {
	f := c.f
	if n == nil {
		c.r.By = []KeyField{{Name: "task_arn", Entity: "task_arn"}}
		c.byNames = []string{"task_arn"}
		return
	}
	items, ok := l.seq(f, n, "by")
	if !ok {
		c.ok = false
		return
	}
	if len(items) == 0 {
		l.errf(f, n, "by: at least one key field is required")
		c.ok = false
	}
	for _, it := range items {
		it = deref(it)
		var kf KeyField
		if it.Kind == yaml.ScalarNode {
			if !slices.Contains(byEntityFields, it.Value) {
				l.errf(f, it, "by: unknown entity field %q (want one of: %s, or {name, expr})", it.Value, strings.Join(byEntityFields, ", "))
				c.ok = false
				continue
			}
			kf = KeyField{Name: it.Value, Entity: it.Value}
		} else {
			bm, ok := l.mapping(f, it, "by item", "name", "expr")
			if !ok {
				c.ok = false
				continue
			}
			name, ok1 := l.str(f, bm.get("name"), "by.name")
			if ok1 && !identRe.MatchString(name) {
				l.errf(f, bm.get("name"), "by.name %q is not an identifier", name)
				ok1 = false
			}
			var cp *compiled
			if bm.get("expr") == nil {
				l.errf(f, it, "by: missing expr")
			} else {
				cp = l.compileExpr(f, bm.get("expr"), exprSpec{what: "by.expr", kind: envEvent})
			}
			if !ok1 || cp == nil {
				c.ok = false
				continue
			}
			kf = KeyField{Name: name, Expr: cp.prog}
			if names, reads := fieldRefs(cp.tree); reads {
				kf.ReadsFields = true
				c.byFields = append(c.byFields, byFieldsRef{node: bm.get("expr"), key: name, names: names})
			}
		}
		if slices.Contains(c.byNames, kf.Name) {
			l.errf(f, it, "by: duplicate key name %q", kf.Name)
			c.ok = false
			continue
		}
		c.byNames = append(c.byNames, kf.Name)
		c.r.By = append(c.r.By, kf)
	}
}

// signalRef resolves a signal name.
func (l *loader) signalRef(c *ruleCtx, n *yaml.Node, name string) *Signal {
	s := l.set.SignalsByName[name]
	if s == nil {
		if l.sigs[name] != nil {
			c.ok = false // defined but broken: already reported
			return nil
		}
		l.errf(c.f, n, "unknown signal %q", name)
		c.ok = false
		return nil
	}
	if !slices.Contains(c.used, name) {
		c.used = append(c.used, name)
	}
	return s
}

func (l *loader) signalList(c *ruleCtx, n *yaml.Node, what string, single bool) []*Signal {
	names, nodes, ok := l.strList(c.f, n, what, single)
	if !ok {
		c.ok = false
		return nil
	}
	if len(names) == 0 {
		l.errf(c.f, n, "%s: at least one signal is required", what)
		c.ok = false
	}
	var out []*Signal
	for i, name := range names {
		if s := l.signalRef(c, nodes[i], name); s != nil {
			out = append(out, s)
		}
	}
	return out
}

var stepRefKeys = []string{"signal", "any_of", "as", "where"}

// stepRef reads signal/any_of/as/where of a step-like map. The caller has
// already checked the map's keys.
func (l *loader) stepRef(c *ruleCtx, m *mapNode, what, defAs string, requireSignal bool) Step {
	f := c.f
	var st Step
	sn, an := m.get("signal"), m.get("any_of")
	switch {
	case sn != nil && an != nil:
		l.errf(f, m.keys["any_of"], "%s: use either signal or any_of, not both", what)
		c.ok = false
	case sn != nil:
		if name, ok := l.str(f, sn, what+".signal"); ok {
			if s := l.signalRef(c, sn, name); s != nil {
				st.Signals = []*Signal{s}
			}
		} else {
			c.ok = false
		}
	case an != nil:
		st.Signals = l.signalList(c, an, what+".any_of", false)
	default:
		if requireSignal {
			l.errf(f, m.n, "%s: missing signal or any_of", what)
			c.ok = false
		}
	}
	st.As = defAs
	if an := m.get("as"); an != nil {
		if a, ok := l.str(f, an, what+".as"); ok {
			if !identRe.MatchString(a) {
				l.errf(f, an, "%s.as: %q is not an identifier", what, a)
				c.ok = false
			}
			st.As = a
		}
	}
	if wn := m.get("where"); wn != nil {
		if cp := l.compileExpr(f, wn, exprSpec{what: what + ".where", kind: envStep, asBool: true}); cp != nil {
			st.Where = cp.prog
		} else {
			c.ok = false
		}
	}
	return st
}

func (l *loader) ruleDetect(c *ruleCtx, n *yaml.Node) {
	f := c.f
	detectKinds := kindNames()
	dm, ok := l.mapping(f, n, "detect", detectKinds...)
	if !ok {
		c.ok = false
		return
	}
	if len(dm.order) != 1 {
		if len(dm.order) == 0 {
			l.errf(f, n, "detect: exactly one of %s is required, got none", strings.Join(detectKinds, ", "))
		} else {
			l.errf(f, dm.keys[dm.order[1]], "detect: exactly one of %s is required, got %s", strings.Join(detectKinds, ", "), strings.Join(dm.order, " and "))
		}
		c.ok = false
		return
	}
	name := dm.order[0]
	for _, k := range Kinds() {
		if sp := k.spec(); sp.name == name {
			c.r.Kind = k
			sp.detect(l, c, dm.get(name))
			return
		}
	}
}

func (l *loader) detectMatch(c *ruleCtx, body *yaml.Node) {
	mm, ok := l.mapping(c.f, body, "match", stepRefKeys...)
	if !ok {
		c.ok = false
		return
	}
	st := l.stepRef(c, mm, "match", "match", true)
	c.addAlias(l, body, st.As)
	c.r.Match = &st
}

var cmpKeys = []string{"gt", "gte", "lt", "lte", "eq"}

func (l *loader) detectThreshold(c *ruleCtx, n *yaml.Node) {
	f := c.f
	keys := append(slices.Clone(stepRefKeys), "window", "count", "distinct", "sum", "avg", "after_fire", "leaky")
	m, ok := l.mapping(f, n, "threshold", keys...)
	if !ok {
		c.ok = false
		return
	}
	th := &Threshold{ResetAfterFire: true}
	th.Step = l.stepRef(c, m, "threshold", "event", true)
	c.addAlias(l, n, th.Step.As)
	if ln := m.get("leaky"); ln != nil {
		l.thresholdLeaky(c, m, ln, th)
		c.r.Threshold = th
		return
	}
	if wn := m.get("window"); wn == nil {
		l.errf(f, n, "threshold: missing window")
		c.ok = false
	} else if w, ok := l.window(f, wn, "threshold.window"); ok {
		th.Window = w
		c.r.Retention = w
	} else {
		c.ok = false
	}
	var aggs []string
	for _, k := range []string{"count", "distinct", "sum", "avg"} {
		if m.has(k) {
			aggs = append(aggs, k)
		}
	}
	if len(aggs) != 1 {
		if len(aggs) == 0 {
			l.errf(f, n, "threshold: exactly one of count, distinct, sum, avg is required, got none")
		} else {
			l.errf(f, m.keys[aggs[1]], "threshold: exactly one of count, distinct, sum, avg is required, got %s", strings.Join(aggs, " and "))
		}
		c.ok = false
	} else {
		agg := aggs[0]
		th.Agg = map[string]AggKind{"count": AggCount, "distinct": AggDistinct, "sum": AggSum, "avg": AggAvg}[agg]
		known := cmpKeys
		if agg != "count" {
			known = append([]string{"field"}, cmpKeys...)
		}
		if agg == "distinct" {
			known = append(known, "evidence")
			th.DistinctEvidence = true
		}
		am, ok := l.mapping(f, m.get(agg), "threshold."+agg, known...)
		if ok {
			if agg != "count" {
				if fn := am.get("field"); fn == nil {
					l.errf(f, m.get(agg), "threshold.%s: missing field", agg)
					c.ok = false
				} else if cp := l.compileExpr(f, fn, exprSpec{what: "threshold." + agg + ".field", kind: envStep}); cp != nil {
					th.Field = cp.prog
				} else {
					c.ok = false
				}
			}
			if en := am.get("evidence"); en != nil {
				if s, ok := l.str(f, en, "threshold.distinct.evidence"); ok {
					switch s {
					case "distinct":
					case "all":
						th.DistinctEvidence = false
					default:
						l.errf(f, en, "threshold.distinct.evidence: want distinct or all, got %q", s)
						c.ok = false
					}
				} else {
					c.ok = false
				}
			}
			th.Cmp = l.cmp(c, am, m.get(agg), "threshold."+agg)
		} else {
			c.ok = false
		}
	}
	if an := m.get("after_fire"); an != nil {
		if s, ok := l.str(f, an, "after_fire"); ok {
			switch s {
			case "reset":
			case "keep":
				th.ResetAfterFire = false
			default:
				l.errf(f, an, "after_fire: want reset or keep, got %q", s)
				c.ok = false
			}
		}
	}
	c.r.Threshold = th
}

func (l *loader) cmp(c *ruleCtx, m *mapNode, n *yaml.Node, what string) Cmp {
	var out Cmp
	set := 0
	for _, k := range cmpKeys {
		vn := m.get(k)
		if vn == nil {
			continue
		}
		v, ok := l.number(c.f, vn, what+"."+k)
		if !ok {
			c.ok = false
			continue
		}
		set++
		p := &v
		switch k {
		case "gt":
			out.GT = p
		case "gte":
			out.GTE = p
		case "lt":
			out.LT = p
		case "lte":
			out.LTE = p
		case "eq":
			out.EQ = p
		}
	}
	if set == 0 && c.ok {
		l.errf(c.f, n, "%s: missing comparison (one or more of gt, gte, lt, lte, eq)", what)
		c.ok = false
	}
	return out
}

func (l *loader) detectSequence(c *ruleCtx, n *yaml.Node) {
	f := c.f
	m, ok := l.mapping(f, n, "sequence", "maxspan", "steps", "until", "pending")
	if !ok {
		c.ok = false
		return
	}
	seq := &Sequence{}
	if mn := m.get("maxspan"); mn == nil {
		l.errf(f, n, "sequence: missing maxspan")
		c.ok = false
	} else if d, ok := l.window(f, mn, "sequence.maxspan"); ok {
		seq.MaxSpan = d
	} else {
		c.ok = false
	}
	if pn := m.get("pending"); pn != nil {
		if s, ok := l.str(f, pn, "pending"); ok {
			switch s {
			case "latest":
			case "earliest":
				seq.KeepEarliest = true
			default:
				l.errf(f, pn, "pending: want latest or earliest, got %q", s)
				c.ok = false
			}
		}
	}
	if un := m.get("until"); un != nil {
		seq.Until = l.signalList(c, un, "until", true)
	}
	sn := m.get("steps")
	if sn == nil {
		l.errf(f, n, "sequence: missing steps")
		c.ok = false
		c.r.Sequence = seq
		return
	}
	items, ok := l.seq(f, sn, "sequence.steps")
	if !ok {
		c.ok = false
		return
	}
	if len(items) < 2 {
		l.errf(f, sn, "sequence: at least 2 steps are required, got %d", len(items))
		c.ok = false
	}
	stepKeys := append(slices.Clone(stepRefKeys), "within", "min_count", "absent", "for")
	var lastFor time.Duration
	for i, it := range items {
		what := fmt.Sprintf("steps[%d]", i)
		sm, ok := l.mapping(f, it, "sequence step", stepKeys...)
		if !ok {
			c.ok = false
			continue
		}
		var st Step
		if abn := sm.get("absent"); abn != nil {
			if sm.has("signal") || sm.has("any_of") {
				l.errf(f, sm.keys["absent"], "%s: absent replaces signal/any_of; do not combine them", what)
				c.ok = false
			}
			st = l.stepRef(c, sm, what, fmt.Sprintf("step%d", i+1), false)
			st.Absent = true
			st.Signals = l.signalList(c, abn, what+".absent", true)
		} else {
			st = l.stepRef(c, sm, what, fmt.Sprintf("step%d", i+1), true)
		}
		c.addAlias(l, deref(it), st.As)
		if wn := sm.get("within"); wn != nil {
			if d, ok := l.window(f, wn, what+".within"); ok {
				st.Within = d
				if seq.MaxSpan > 0 && d > seq.MaxSpan {
					l.errf(f, wn, "%s.within %s exceeds maxspan %s", what, fmtDur(d), fmtDur(seq.MaxSpan))
					c.ok = false
				}
			} else {
				c.ok = false
			}
		}
		if mn := sm.get("min_count"); mn != nil {
			if v, ok := l.integer(f, mn, what+".min_count", 1); ok {
				st.MinCount = v
			} else {
				c.ok = false
			}
		}
		last := i == len(items)-1
		if fn := sm.get("for"); fn != nil {
			if !st.Absent || !last {
				l.errf(f, sm.keys["for"], "%s: for is only allowed on a trailing absent step", what)
				c.ok = false
			} else if d, ok := l.window(f, fn, what+".for"); ok {
				st.For = d
				lastFor = d
			} else {
				c.ok = false
			}
		}
		if st.Absent {
			switch {
			case i == 0:
				l.errf(f, sm.keys["absent"], "%s: a sequence cannot start with an absent step", what)
				c.ok = false
			case seq.Steps != nil && seq.Steps[len(seq.Steps)-1].Absent:
				l.errf(f, sm.keys["absent"], "%s: absent steps cannot be adjacent; an absent step needs a positive step on each side (or for, when last)", what)
				c.ok = false
			case last && !sm.has("for"):
				l.errf(f, sm.keys["absent"], "%s: a trailing absent step needs for: <duration>", what)
				c.ok = false
			}
		}
		seq.Steps = append(seq.Steps, st)
	}
	c.r.Retention = seq.MaxSpan + lastFor
	if c.r.Retention > l.opts.MaxRetention {
		l.errf(f, n, "sequence: maxspan + for = %s exceeds the retention limit %s", fmtDur(c.r.Retention), fmtDur(l.opts.MaxRetention))
		c.ok = false
	}
	c.r.Sequence = seq
}

func (l *loader) detectTemporal(c *ruleCtx, n *yaml.Node) {
	f := c.f
	m, ok := l.mapping(f, n, "temporal", "window", "signals", "condition")
	if !ok {
		c.ok = false
		return
	}
	t := &Temporal{}
	if wn := m.get("window"); wn == nil {
		l.errf(f, n, "temporal: missing window")
		c.ok = false
	} else if d, ok := l.window(f, wn, "temporal.window"); ok {
		t.Window = d
		c.r.Retention = d
	} else {
		c.ok = false
	}
	sn := m.get("signals")
	if sn == nil {
		l.errf(f, n, "temporal: missing signals")
		c.ok = false
	} else if sm, ok := l.mapping(f, sn, "temporal.signals"); ok {
		if len(sm.order) < 2 {
			l.errf(f, sn, "temporal: at least 2 signals are required")
			c.ok = false
		}
		for _, alias := range sm.order {
			kn, vn := sm.keys[alias], sm.vals[alias]
			if !identRe.MatchString(alias) || alias == "count_fired" {
				l.errf(f, kn, "temporal alias %q is not an identifier (or is reserved)", alias)
				c.ok = false
				continue
			}
			var st Step
			if v := deref(vn); v.Kind == yaml.ScalarNode {
				if s := l.signalRef(c, v, v.Value); s != nil {
					st.Signals = []*Signal{s}
				}
			} else if am, ok := l.mapping(f, vn, "temporal signal "+alias, "signal", "any_of", "where", "min_count"); ok {
				st = l.stepRef(c, am, "temporal.signals."+alias, alias, true)
				if mn := am.get("min_count"); mn != nil {
					if v, ok := l.integer(f, mn, "temporal.signals."+alias+".min_count", 1); ok {
						st.MinCount = v
					} else {
						c.ok = false
					}
				}
			} else {
				c.ok = false
			}
			st.As = alias
			c.addAlias(l, kn, alias)
			t.Signals = append(t.Signals, st)
		}
	} else {
		c.ok = false
	}
	if cn := m.get("condition"); cn != nil {
		cp := l.compileExpr(f, cn, exprSpec{what: "temporal.condition", kind: envTemporal, asBool: true, aliases: c.aliases})
		if cp != nil {
			t.Condition = cp.prog
		} else {
			c.ok = false
		}
	}
	c.r.Temporal = t
}

func (l *loader) detectMetric(c *ruleCtx, n *yaml.Node) {
	f := c.f
	m, ok := l.mapping(f, n, "metric", "series", "value", "expr", "for", "baseline", "missing", "gap", "and_then")
	if !ok {
		c.ok = false
		return
	}
	mt := &Metric{ValueField: "value", ResetOnGap: true, Gap: 3 * time.Minute}
	mt.Baseline.Stat = BaselineP95
	mt.Baseline.Over = 7 * 24 * time.Hour
	if vn := m.get("value"); vn != nil {
		if s, ok := l.str(f, vn, "value"); ok {
			mt.ValueField = s
		}
	}
	if sn := m.get("series"); sn == nil {
		l.errf(f, n, "metric: missing series")
		c.ok = false
	} else if name, ok := l.str(f, sn, "series"); ok {
		if s := l.signalRef(c, sn, name); s != nil {
			mt.Series = s
			if !slices.ContainsFunc(s.Fields, func(ne NamedExpr) bool { return ne.Name == mt.ValueField }) {
				l.errf(f, sn, "metric: series signal %q has no field %q (define it under the signal's fields)", name, mt.ValueField)
				c.ok = false
			}
		}
	}
	if en := m.get("expr"); en == nil {
		l.errf(f, n, "metric: missing expr")
		c.ok = false
	} else if cp := l.compileExpr(f, en, exprSpec{what: "metric.expr", kind: envMetric, asBool: true}); cp != nil {
		mt.Expr = cp.prog
	} else {
		c.ok = false
	}
	if fn := m.get("for"); fn != nil {
		if d, ok := l.window(f, fn, "metric.for"); ok {
			mt.For = d
		} else {
			c.ok = false
		}
	}
	if bn := m.get("baseline"); bn != nil {
		if bm, ok := l.mapping(f, bn, "metric.baseline", "stat", "over", "min_samples"); ok {
			if sn := bm.get("stat"); sn != nil {
				if s, ok := l.str(f, sn, "baseline.stat"); ok {
					switch s {
					case "p95":
						mt.Baseline.Stat = BaselineP95
					case "mean":
						mt.Baseline.Stat = BaselineMean
					case "max":
						mt.Baseline.Stat = BaselineMax
					default:
						l.errf(f, sn, "baseline.stat: want p95, mean or max, got %q", s)
						c.ok = false
					}
				}
			}
			if on := bm.get("over"); on != nil {
				if d, ok := l.duration(f, on, "baseline.over"); ok {
					if d > MaxBaselineOver {
						l.errf(f, on, "baseline.over %s exceeds the baseline limit %s", fmtDur(d), fmtDur(MaxBaselineOver))
						c.ok = false
					}
					mt.Baseline.Over = d
				} else {
					c.ok = false
				}
			}
			if mn := bm.get("min_samples"); mn != nil {
				if v, ok := l.integer(f, mn, "baseline.min_samples", 0); ok {
					mt.Baseline.MinSamples = v
				} else {
					c.ok = false
				}
			}
		} else {
			c.ok = false
		}
	}
	if mn := m.get("missing"); mn != nil {
		if s, ok := l.str(f, mn, "missing"); ok {
			switch s {
			case "reset":
			case "hold":
				mt.ResetOnGap = false
			default:
				l.errf(f, mn, "missing: want reset or hold, got %q", s)
				c.ok = false
			}
		}
	}
	if gn := m.get("gap"); gn != nil {
		if d, ok := l.window(f, gn, "metric.gap"); ok {
			mt.Gap = d
		} else {
			c.ok = false
		}
	}
	c.r.Retention = mt.For
	if jn := m.get("and_then"); jn != nil {
		keys := append(slices.Clone(stepRefKeys), "within")
		if jm, ok := l.mapping(f, jn, "metric.and_then", keys...); ok {
			st := l.stepRef(c, jm, "and_then", "join", true)
			c.addAlias(l, deref(jn), st.As)
			if wn := jm.get("within"); wn == nil {
				l.errf(f, jn, "and_then: missing within")
				c.ok = false
			} else if d, ok := l.window(f, wn, "and_then.within"); ok {
				st.Within = d
				c.r.Retention = max(c.r.Retention, d)
			} else {
				c.ok = false
			}
			mt.Join = &st
		} else {
			c.ok = false
		}
	}
	c.r.Metric = mt
}

func (l *loader) ruleResolve(c *ruleCtx, n *yaml.Node) {
	f := c.f
	m, ok := l.mapping(f, n, "resolve", "signal", "any_of", "metric_clears", "closes", "keep_firing_for")
	if !ok {
		c.ok = false
		return
	}
	rs := &Resolve{}
	if sn, an := m.get("signal"), m.get("any_of"); sn != nil && an != nil {
		l.errf(f, m.keys["any_of"], "resolve: use either signal or any_of, not both")
		c.ok = false
	} else if sn != nil {
		rs.Signals = l.signalList(c, sn, "resolve.signal", true)
	} else if an != nil {
		rs.Signals = l.signalList(c, an, "resolve.any_of", false)
	}
	if mn := m.get("metric_clears"); mn != nil {
		if b, ok := l.boolean(f, mn, "metric_clears"); ok {
			rs.MetricClears = b
			if b && c.r.Kind != KindMetric && c.r.Kind != 0 {
				l.errf(f, mn, "resolve.metric_clears is only valid for metric rules (this is a %s rule)", c.r.Kind)
				c.ok = false
			}
		}
	}
	if !m.has("signal") && !m.has("any_of") && !rs.MetricClears {
		l.errf(f, n, "resolve: one of signal, any_of or metric_clears: true is required")
		c.ok = false
	}
	if cn := m.get("closes"); cn != nil {
		sp := exprSpec{what: "resolve.closes", kind: envCloses, asBool: true, aliases: c.aliases, byNames: c.byNames, anyAlias: c.detectBroken}
		if cp := l.compileExpr(f, cn, sp); cp != nil {
			rs.Closes = cp.prog
		} else {
			c.ok = false
		}
	}
	if kn := m.get("keep_firing_for"); kn != nil {
		if d, ok := l.window(f, kn, "keep_firing_for"); ok {
			rs.KeepFiringFor = d
		} else {
			c.ok = false
		}
	}
	c.r.Resolve = rs
}

var exceptionComps = []string{"==", "!=", "in", "startsWith", "endsWith", "contains"}

func (l *loader) ruleExceptions(c *ruleCtx, n *yaml.Node) {
	f := c.f
	items, ok := l.seq(f, n, "exceptions")
	if !ok {
		c.ok = false
		return
	}
	var names []string
	for _, it := range items {
		m, ok := l.mapping(f, it, "exception", "name", "fields", "comps", "values", "reason", "expires")
		if !ok {
			c.ok = false
			continue
		}
		ex := Exception{Pos: l.pos(f, deref(it))}
		if nn := m.get("name"); nn == nil {
			l.errf(f, it, "exception: missing name")
			c.ok = false
		} else if s, ok := l.str(f, nn, "exception name"); ok {
			if slices.Contains(names, s) {
				l.errf(f, nn, "duplicate exception name %q", s)
				c.ok = false
			}
			names = append(names, s)
			ex.Name = s
		}
		var fieldNodes []*yaml.Node
		if fn := m.get("fields"); fn == nil {
			l.errf(f, it, "exception %s: missing fields", ex.Name)
			c.ok = false
		} else if fs, ok := l.seq(f, fn, "exception fields"); ok {
			fieldNodes = fs
			for _, x := range fs {
				if cp := l.compileExpr(f, x, exprSpec{what: "exception field", kind: envEvent}); cp != nil {
					ex.Fields = append(ex.Fields, cp.prog)
				} else {
					c.ok = false
				}
			}
		} else {
			c.ok = false
		}
		if cn := m.get("comps"); cn != nil {
			comps, nodes, ok := l.strList(f, cn, "comps", false)
			if ok {
				for i, s := range comps {
					if !slices.Contains(exceptionComps, s) {
						l.errf(f, nodes[i], "comps: unknown comparison %q (want one of: %s)", s, strings.Join(exceptionComps, ", "))
						c.ok = false
					}
				}
				if len(comps) != len(fieldNodes) {
					l.errf(f, cn, "exception %s: %d comps for %d fields", ex.Name, len(comps), len(fieldNodes))
					c.ok = false
				}
				ex.Comps = comps
			}
		} else {
			for range fieldNodes {
				ex.Comps = append(ex.Comps, "==")
			}
		}
		if vn := m.get("values"); vn == nil {
			l.errf(f, it, "exception %s: missing values", ex.Name)
			c.ok = false
		} else if rows, ok := l.seq(f, vn, "exception values"); ok {
			for _, row := range rows {
				rv, err := scalarValue(row)
				vals, isList := rv.([]any)
				if err != nil || !isList {
					l.errf(f, row, "exception %s: each values row must be a list with one value per field", ex.Name)
					c.ok = false
					continue
				}
				if len(vals) != len(fieldNodes) {
					l.errf(f, row, "exception %s: row has %d values for %d fields", ex.Name, len(vals), len(fieldNodes))
					c.ok = false
					continue
				}
				for i, v := range vals {
					op := ""
					if i < len(ex.Comps) {
						op = ex.Comps[i]
					}
					switch op {
					case "in":
						if _, ok := v.([]any); !ok {
							l.errf(f, row, "exception %s: value %d is compared with in and must be a list", ex.Name, i+1)
							c.ok = false
						}
					case "startsWith", "endsWith", "contains":
						// Compare is false for anything but two strings.
						if _, ok := v.(string); !ok {
							l.errf(f, row, "exception %s: value %d is compared with %s and must be a string (quote it)", ex.Name, i+1, op)
							c.ok = false
						}
					}
				}
				ex.Values = append(ex.Values, vals)
			}
		} else {
			c.ok = false
		}
		if rn := m.get("reason"); rn == nil {
			l.errf(f, it, "exception %s: missing reason (every exception must say why it exists)", ex.Name)
			c.ok = false
		} else if s, ok := l.str(f, rn, "reason"); ok && strings.TrimSpace(s) != "" {
			ex.Reason = s
		} else {
			if ok {
				l.errf(f, rn, "exception %s: empty reason", ex.Name)
			}
			c.ok = false
		}
		if en := m.get("expires"); en == nil {
			l.errf(f, it, "exception %s: missing expires (a date, e.g. 2026-12-31)", ex.Name)
			c.ok = false
		} else if s, ok := l.str(f, en, "expires"); ok {
			t, err := parseExpiry(s)
			if err != nil {
				l.errf(f, en, "exception %s: expires: %v", ex.Name, err)
				c.ok = false
			} else {
				ex.Expires = t
				if !l.opts.Now.Before(t) {
					l.warnf(f, en, "exception %s of rule %s expired on %s; it no longer applies", ex.Name, c.r.ID, s)
				}
			}
		}
		c.r.Exceptions = append(c.r.Exceptions, ex)
	}
}

// parseExpiry accepts YYYY-MM-DD (end of that day, UTC) or RFC 3339.
func parseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.Add(24 * time.Hour), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("invalid date %q (want YYYY-MM-DD or RFC 3339)", s)
}

func (l *loader) ruleOutput(c *ruleCtx, n, titleNode *yaml.Node) {
	f := c.f
	r := c.r
	if titleNode != nil {
		r.Title = l.template(c, titleNode, "title")
	} else {
		r.Title, _ = NewTemplate("title", r.TitleSrc)
	}
	if n == nil {
		return
	}
	m, ok := l.mapping(f, n, "output", "summary", "remediation", "runbook", "fields", "evidence")
	if !ok {
		c.ok = false
		return
	}
	if sn := m.get("summary"); sn != nil {
		r.Summary = l.template(c, sn, "summary")
	}
	if rn := m.get("remediation"); rn != nil {
		r.Remediation = l.template(c, rn, "remediation")
	}
	if rn := m.get("runbook"); rn != nil {
		if s, ok := l.str(f, rn, "runbook"); ok {
			r.Runbook = s
		}
	}
	if fn := m.get("fields"); fn != nil {
		if fm, ok := l.mapping(f, fn, "output fields"); ok {
			for _, name := range fm.order {
				sp := exprSpec{what: "output.fields." + name, kind: envOutput, aliases: c.aliases, byNames: c.byNames, anyAlias: c.detectBroken}
				if cp := l.compileExpr(f, fm.vals[name], sp); cp != nil {
					r.Fields = append(r.Fields, NamedExpr{Name: name, Prog: cp.prog, Src: cp.src})
				} else {
					c.ok = false
				}
			}
		}
	}
	if en := m.get("evidence"); en != nil {
		if em, ok := l.mapping(f, en, "evidence", "max_events"); ok {
			if mn := em.get("max_events"); mn != nil {
				if v, ok := l.integer(f, mn, "max_events", 1); ok {
					r.MaxEvents = v
				} else {
					c.ok = false
				}
			}
		}
	}
}

// template parses a rule template and executes it once on a sample
// environment.
func (l *loader) template(c *ruleCtx, n *yaml.Node, what string) *template.Template {
	s, ok := l.str(c.f, n, what)
	if !ok {
		c.ok = false
		return nil
	}
	t, chains, err := parseTemplate(what, s)
	if err != nil {
		l.errf(c.f, n, "%s: %s", what, cleanTmplErr(err))
		c.ok = false
		return nil
	}
	for _, ch := range chains {
		if len(ch) > 1 && ch[0] == "steps" && c.detectBroken {
			continue
		}
		if msg := checkOutputChain(ch, c.aliases, c.byNames); msg != "" {
			l.errf(c.f, n, "%s: %s", what, msg)
			c.ok = false
			return nil
		}
	}
	if _, err := Render(t, sampleOutputEnv(c.r, c.aliases, c.byNames)); err != nil {
		l.errf(c.f, n, "%s: %s", what, cleanTmplErr(err))
		c.ok = false
		return nil
	}
	if f := compileFast(t); f != nil {
		if c.r.fast == nil {
			c.r.fast = map[*template.Template]*fastTemplate{}
		}
		c.r.fast[t] = f
	}
	return t
}

// checkOutputChain checks .a.b against the output environment's shape.
func checkOutputChain(ch []string, aliases, byNames []string) string {
	if len(ch) == 0 {
		return ""
	}
	if !slices.Contains(outputKeys, ch[0]) {
		return fmt.Sprintf("unknown field .%s (want one of: %s)%s", ch[0], strings.Join(outputKeys, ", "), didYouMean(".", ch[0], outputKeys))
	}
	if len(ch) < 2 {
		return ""
	}
	var known []string
	what := ch[0] + " field"
	switch ch[0] {
	case "entity":
		known = entityKeys
	case "agg":
		known = aggKeys
	case "rule":
		known = ruleKeys
	case "event":
		known = stepKeys
	case "key":
		known = byNames
	case "steps":
		known, what = aliases, "step alias"
		if len(ch) > 2 && !slices.Contains(stepKeys, ch[2]) && slices.Contains(aliases, ch[1]) {
			return fmt.Sprintf("unknown step field .steps.%s.%s (want one of: %s)%s", ch[1], ch[2], strings.Join(stepKeys, ", "), didYouMean(".steps."+ch[1]+".", ch[2], stepKeys))
		}
	default:
		return ""
	}
	if !slices.Contains(known, ch[1]) {
		return fmt.Sprintf("unknown %s .%s.%s (want one of: %s)%s", what, ch[0], ch[1], strings.Join(known, ", "), didYouMean("."+ch[0]+".", ch[1], known))
	}
	return ""
}

func cleanTmplErr(err error) string {
	return strings.TrimPrefix(err.Error(), "template: ")
}

// ruleHash hashes the canonical detect and by sections plus the canonical
// definitions of the signals they use.
func (l *loader) ruleHash(m *mapNode, used []string) string {
	h := sha256.New()
	var b strings.Builder
	b.WriteString("detect=")
	canonical(&b, m.get("detect"))
	b.WriteString(";by=")
	canonical(&b, m.get("by"))
	names := slices.Clone(used)
	sort.Strings(names)
	for _, name := range names {
		b.WriteString(";signal=")
		if d := l.sigs[name]; d != nil {
			canonical(&b, d.node)
		}
	}
	h.Write([]byte(b.String()))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// canonical writes a formatting-independent rendering of a YAML node:
// mapping keys sorted, scalars quoted.
func canonical(b *strings.Builder, n *yaml.Node) {
	n = deref(n)
	if n == nil {
		b.WriteString("null")
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			canonical(b, c)
		}
	case yaml.ScalarNode:
		b.WriteString(strconv.Quote(n.Value))
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			canonical(b, c)
		}
		b.WriteByte(']')
	case yaml.MappingNode:
		type kv struct {
			k string
			v *yaml.Node
		}
		var kvs []kv
		for i := 0; i+1 < len(n.Content); i += 2 {
			kvs = append(kvs, kv{n.Content[i].Value, n.Content[i+1]})
		}
		sort.Slice(kvs, func(i, j int) bool { return kvs[i].k < kvs[j].k })
		b.WriteByte('{')
		for i, e := range kvs {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Quote(e.k))
			b.WriteByte(':')
			canonical(b, e.v)
		}
		b.WriteByte('}')
	}
}
