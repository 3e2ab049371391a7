package sigma

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Matcher is a compiled Sigma rule.
type Matcher struct {
	rule        *Rule
	eval        func(doc map[string]any) bool
	fields      []string
	paths       []string // the dotted field names read, as written
	fullScan    bool
	constraints map[string][]string
	screen      [][]needle
}

// Rule returns the rule the matcher was compiled from.
func (m *Matcher) Rule() *Rule { return m.rule }

// Match reports whether the decoded JSON record matches the rule. doc holds
// what encoding/json decodes into any: map[string]any, []any, string,
// float64 (or json.Number), bool, nil.
func (m *Matcher) Match(doc map[string]any) bool { return m.eval(doc) }

// Fields returns the sorted top-level keys the rule reads (a dotted field
// a.b reads "a" and, for records with flattened keys, "a.b"). When FullScan
// is true the rule also reads every value (keyword search).
func (m *Matcher) Fields() []string { return slices.Clone(m.fields) }

// KeyPaths returns every sequence of record keys the rule can read, from
// the top level down: a field a.b.c is read as a→b→c and also through
// flattened keys (a.b→c, a→b.c, a.b.c). The value a sequence reaches is
// read whole. A projection of the record onto these paths matches exactly
// as the record does, unless FullScan.
func (m *Matcher) KeyPaths() [][]string {
	var out [][]string
	for _, name := range m.paths {
		segs := strings.Split(name, ".")
		// Each of the n-1 gaps between segments is a "." inside a key or
		// a step down: 2^(n-1) sequences (field names are short).
		for mask := 0; mask < 1<<(len(segs)-1); mask++ {
			seq := []string{segs[0]}
			for i := 1; i < len(segs); i++ {
				if mask&(1<<(i-1)) != 0 {
					seq[len(seq)-1] += "." + segs[i]
				} else {
					seq = append(seq, segs[i])
				}
			}
			out = append(out, seq)
		}
	}
	return out
}

// FullScan reports whether the rule searches keywords over all values.
func (m *Matcher) FullScan() bool { return m.fullScan }

// Constraints returns, for top-level fields the condition requires on every
// match, the lowercase (see Lower) values one of which the field's string
// form must equal. A field holding an array satisfies it when one element
// does; a field holding an object is never constrained this way, so a
// dispatcher must evaluate the rule when the field is not a scalar. An
// empty list means the rule can never match. Only exact equalities (with
// or without |cased) are used; nil when nothing is derivable.
func (m *Matcher) Constraints() map[string][]string {
	if m.constraints == nil {
		return nil
	}
	out := make(map[string][]string, len(m.constraints))
	for k, v := range m.constraints {
		out[k] = slices.Clone(v)
	}
	return out
}

// Compile compiles a parsed rule. The error is Diagnostics.
func Compile(r *Rule) (*Matcher, error) {
	if r.parsed != nil {
		return r.parsed, nil
	}
	m, ds := compileRule(r)
	if ds.HasErrors() {
		return nil, ds
	}
	return m, nil
}

type evalFn func(doc map[string]any) bool

// scalarFn tests one scalar leaf: s for strings (no boxing), x for the
// other JSON scalars (numbers, booleans).
type scalarFn struct {
	s func(string) bool
	x func(any) bool
}

func viaString(f func(string) bool) scalarFn {
	return scalarFn{s: f, x: func(v any) bool {
		s, ok := scalarString(v)
		return ok && f(s)
	}}
}

// cset is a set of constraints: field → allowed lowercase values (sorted),
// as a single-valued field sees them (a record's array can hold several:
// its users, dispatch by eventSource and eventName, read only fields
// CloudTrail never makes arrays).
type cset map[string][]string

type compiler struct {
	file     string
	ds       Diagnostics
	fields   map[string]bool
	fullScan bool
}

func (c *compiler) errAt(p Pos, format string, args ...any) {
	c.ds = append(c.ds, Diagnostic{Pos: p, Severity: SevError, Msg: fmt.Sprintf(format, args...)})
}

type compiledSel struct {
	eval evalFn
	cons cset
	scr  screen
}

func compileRule(r *Rule) (*Matcher, Diagnostics) {
	c := &compiler{file: r.Pos.File, fields: map[string]bool{}}
	d := &r.Detection
	sels := map[string]*compiledSel{}
	selFn := func(name string) *compiledSel {
		if s, ok := sels[name]; ok {
			return s
		}
		s := c.selection(d.Selections[name])
		sels[name] = s
		return s
	}
	var evals []evalFn
	var cons cset
	var scr screen
	if len(d.Conditions) == 0 && !d.reported {
		c.errAt(d.Pos, "detection has no condition")
	}
	for i, cond := range d.Conditions {
		ast, err := parseCond(cond.Text, d.Selections, d.Order)
		if err != nil {
			p := cond.Pos
			msg := "condition: " + err.Error()
			if ce, ok := err.(*condError); ok {
				if cond.offCol >= 0 {
					p.Col += cond.offCol + ce.off
				} else {
					msg = fmt.Sprintf("condition (offset %d): %s", ce.off, ce.msg)
				}
			}
			c.errAt(p, "%s", msg)
			continue
		}
		fn, cs, ss := c.cond(ast, selFn)
		evals = append(evals, fn)
		if i == 0 {
			cons, scr = cs, ss
		} else {
			cons, scr = orC(cons, cs), orS(scr, ss)
		}
	}
	// Selections the condition does not use are still checked, but what
	// they read is not what the rule reads.
	fields, full := maps.Clone(c.fields), c.fullScan
	condOK := !c.ds.HasErrors()
	for _, name := range d.Order {
		if _, used := sels[name]; !used && condOK {
			c.ds = append(c.ds, Diagnostic{Pos: d.Selections[name].Pos, Severity: SevWarning,
				Msg: fmt.Sprintf("search identifier %q is not used by the condition", name)})
		}
		selFn(name)
	}
	c.fields, c.fullScan = fields, full
	if c.ds.HasErrors() || len(evals) == 0 {
		return nil, c.ds // no condition: ParseFile said so
	}
	eval := evals[0]
	if len(evals) > 1 {
		eval = orFns(evals)
	}
	m := &Matcher{rule: r, eval: eval, fullScan: c.fullScan, constraints: cons, screen: compileScreen(scr)}
	top := map[string]bool{}
	for name := range c.fields {
		m.paths = append(m.paths, name)
		for _, k := range newPath(name).keys[0] {
			top[k] = true
		}
	}
	for k := range top {
		m.fields = append(m.fields, k)
	}
	sort.Strings(m.fields)
	sort.Strings(m.paths)
	return m, c.ds
}

func orFns(fs []evalFn) evalFn {
	return func(doc map[string]any) bool {
		for _, f := range fs {
			if f(doc) {
				return true
			}
		}
		return false
	}
}

func andFns(fs []evalFn) evalFn {
	return func(doc map[string]any) bool {
		for _, f := range fs {
			if !f(doc) {
				return false
			}
		}
		return true
	}
}

func (c *compiler) cond(n condNode, sel func(string) *compiledSel) (evalFn, cset, screen) {
	switch n := n.(type) {
	case condIdent:
		s := sel(n.name)
		return s.eval, s.cons, s.scr
	case condNot:
		x, _, _ := c.cond(n.x, sel)
		return func(doc map[string]any) bool { return !x(doc) }, nil, nil
	case condAnd:
		l, lc, ls := c.cond(n.l, sel)
		r, rc, rs := c.cond(n.r, sel)
		return func(doc map[string]any) bool { return l(doc) && r(doc) }, andC(lc, rc), andS(ls, rs)
	case condOr:
		l, lc, ls := c.cond(n.l, sel)
		r, rc, rs := c.cond(n.r, sel)
		return func(doc map[string]any) bool { return l(doc) || r(doc) }, orC(lc, rc), orS(ls, rs)
	case condOf:
		fs := make([]evalFn, len(n.names))
		var cs cset
		var ss screen
		for i, name := range n.names {
			s := sel(name)
			fs[i] = s.eval
			switch {
			case i == 0:
				cs, ss = s.cons, s.scr
			case n.all:
				cs, ss = andC(cs, s.cons), andS(ss, s.scr)
			default:
				cs, ss = orC(cs, s.cons), orS(ss, s.scr)
			}
		}
		if len(fs) == 1 {
			return fs[0], cs, ss
		}
		if n.all {
			return andFns(fs), cs, ss
		}
		return orFns(fs), cs, ss
	}
	panic(fmt.Sprintf("sigma: unknown condition node %T", n))
}

// andC: both must hold; a field in both keeps the intersection.
func andC(a, b cset) cset {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	out := cset{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if w, ok := out[k]; ok {
			var x []string
			for _, s := range v {
				if slices.Contains(w, s) {
					x = append(x, s)
				}
			}
			if x == nil {
				x = []string{}
			}
			out[k] = x
		} else {
			out[k] = v
		}
	}
	return out
}

// orC: one must hold; only fields constrained on both sides survive.
func orC(a, b cset) cset {
	var out cset
	for k, v := range a {
		w, ok := b[k]
		if !ok {
			continue
		}
		if out == nil {
			out = cset{}
		}
		u := slices.Clone(v)
		for _, s := range w {
			if !slices.Contains(u, s) {
				u = append(u, s)
			}
		}
		sort.Strings(u)
		out[k] = u
	}
	return out
}

func (c *compiler) selection(s *Selection) *compiledSel {
	var groups []evalFn
	var cons cset
	var scr screen
	for gi, g := range s.Groups {
		type part struct {
			fn   evalFn
			cost int
		}
		var parts []part
		var gc cset
		var gs screen
		for _, it := range g {
			fn, cost, ic := c.item(it)
			if fn == nil {
				continue
			}
			parts = append(parts, part{fn, cost})
			gc = andC(gc, ic)
			gs = andS(gs, itemScreen(it))
		}
		// Cheap tests first: an AND of pure tests gives the same answer in
		// any order.
		sort.SliceStable(parts, func(i, j int) bool { return parts[i].cost < parts[j].cost })
		fs := make([]evalFn, len(parts))
		for i, p := range parts {
			fs[i] = p.fn
		}
		switch len(fs) {
		case 0:
			groups = append(groups, func(map[string]any) bool { return false })
		case 1:
			groups = append(groups, fs[0])
		case 2:
			a, b := fs[0], fs[1]
			groups = append(groups, func(doc map[string]any) bool { return a(doc) && b(doc) })
		default:
			groups = append(groups, andFns(fs))
		}
		if gi == 0 {
			cons, scr = gc, gs
		} else {
			cons, scr = orC(cons, gc), orS(scr, gs)
		}
	}
	if len(groups) == 1 {
		return &compiledSel{groups[0], cons, scr}
	}
	return &compiledSel{orFns(groups), cons, scr}
}

// modSpec is an item's modifiers, checked.
type modSpec struct {
	cased, all, neq bool
	typ             string // "", "re", "cidr", "lt", "lte", "gt", "gte", "exists", "fieldref"
	reFlags         string
	transforms      []string
	anchor          string // the one of contains/startswith/endswith used
}

var knownTransforms = map[string]bool{
	"contains": true, "startswith": true, "endswith": true,
	"base64": true, "base64offset": true,
	"utf16le": true, "wide": true, "utf16be": true, "utf16": true,
	"windash": true,
}

var refusedMods = map[string]string{
	"expand": "placeholders (|expand) need value lists this package does not have",
	"minute": "time modifiers are not supported", "hour": "time modifiers are not supported",
	"day": "time modifiers are not supported", "week": "time modifiers are not supported",
	"month": "time modifiers are not supported", "year": "time modifiers are not supported",
}

func (c *compiler) mods(it *Item) (modSpec, bool) {
	var m modSpec
	seen := map[string]bool{}
	ok := true
	for i, mod := range it.Modifiers {
		p := it.ModPos[i]
		if seen[mod] {
			c.errAt(p, "modifier %q given twice", mod)
			ok = false
			continue
		}
		seen[mod] = true
		switch {
		case mod == "cased":
			m.cased = true
		case mod == "all":
			m.all = true
		case mod == "neq":
			m.neq = true
		case mod == "i" || mod == "m" || mod == "s":
			if m.typ != "re" {
				c.errAt(p, "modifier %q is a sub-modifier of re and must follow it", mod)
				ok = false
			}
			m.reFlags += mod
		case knownTransforms[mod]:
			if m.typ != "" && !(m.typ == "fieldref" && (mod == "contains" || mod == "startswith" || mod == "endswith")) {
				c.errAt(p, "modifier %q cannot be combined with %q", mod, m.typ)
				ok = false
			}
			if mod == "contains" || mod == "startswith" || mod == "endswith" {
				if m.anchor != "" {
					c.errAt(p, "modifier %q cannot be combined with %q", mod, m.anchor)
					ok = false
				}
				m.anchor = mod
			}
			m.transforms = append(m.transforms, mod)
		case mod == "re" || mod == "cidr" || mod == "lt" || mod == "lte" || mod == "gt" || mod == "gte" || mod == "exists" || mod == "fieldref":
			if m.typ != "" {
				c.errAt(p, "modifier %q cannot be combined with %q", mod, m.typ)
				ok = false
			}
			if len(m.transforms) > 0 && !(mod == "fieldref" && m.anchor != "" && len(m.transforms) == 1) {
				c.errAt(p, "modifier %q cannot follow %q", mod, m.transforms[len(m.transforms)-1])
				ok = false
			}
			m.typ = mod
		case refusedMods[mod] != "":
			c.errAt(p, "unsupported modifier %q: %s", mod, refusedMods[mod])
			ok = false
		default:
			c.errAt(p, "unknown modifier %q", mod)
			ok = false
		}
	}
	if !ok {
		return m, false
	}
	switch {
	case m.all && len(it.Values) < 2:
		c.errAt(it.Pos, "modifier all needs a list of at least two values")
		ok = false
	case m.all && m.neq:
		c.errAt(it.Pos, "modifiers all and neq cannot be combined")
		ok = false
	case m.typ == "exists" && (m.all || m.neq || m.cased):
		c.errAt(it.Pos, "modifier exists stands alone")
		ok = false
	case (m.typ == "cidr" || m.typ == "lt" || m.typ == "lte" || m.typ == "gt" || m.typ == "gte") && m.cased:
		c.errAt(it.Pos, "modifier cased does not apply to %s", m.typ)
		ok = false
	}
	return m, ok
}

// cost ranks tests so that cheap ones run first in an AND.
const (
	costExact = iota
	costString
	costNested
	costHeavy
	costKeyword
)

// item compiles one item; fn is nil after an error.
func (c *compiler) item(it *Item) (evalFn, int, cset) {
	m, ok := c.mods(it)
	if !ok {
		return nil, 0, nil
	}
	keyword := it.Field == ""
	var fp *fieldPath
	if keyword {
		c.fullScan = true
		if m.typ == "exists" || m.typ == "fieldref" {
			c.errAt(it.Pos, "modifier %s needs a field name", m.typ)
			return nil, 0, nil
		}
	} else {
		if strings.HasPrefix(it.Field, ".") || strings.HasSuffix(it.Field, ".") || strings.Contains(it.Field, "..") {
			c.errAt(it.Pos, "field name %q has an empty dotted segment", it.Field)
			return nil, 0, nil
		}
		fp = newPath(it.Field)
		c.fields[it.Field] = true
	}
	cost := costString
	if fp != nil && fp.n > 1 {
		cost = costNested
	}

	// null: absent or null (the parser refuses null in a list).
	for _, v := range it.Values {
		if v.Kind == KindNull {
			if len(it.Modifiers) > 0 || keyword {
				c.errAt(v.Pos, "null takes no modifiers and needs a field")
				return nil, 0, nil
			}
			return fp.isNull, cost, nil
		}
	}

	switch m.typ {
	case "exists":
		if len(it.Values) != 1 || it.Values[0].Kind != KindBool {
			c.errAt(it.Pos, "exists takes true or false")
			return nil, 0, nil
		}
		if it.Values[0].Bool {
			return fp.exists, cost, nil
		}
		return func(doc map[string]any) bool { return !fp.exists(doc) }, cost, nil
	case "fieldref":
		return c.fieldref(it, fp, m)
	}

	// One closure list per value (its variants ORed).
	perValue := make([][]scalarFn, 0, len(it.Values))
	// exact: the field equals one of literal values (an |all of them:
	// each, which a single-valued field can only do when they are one).
	exact := m.typ == "" && len(m.transforms) == 0 && !m.neq && !keyword && fp.n == 1
	var lits []string
	for _, v := range it.Values {
		fns, err := c.valueFns(v, m, keyword)
		if err != nil {
			c.errAt(v.Pos, "%v", err)
			return nil, 0, nil
		}
		perValue = append(perValue, fns)
		if exact {
			switch {
			case v.Kind == KindString && !parsePattern(v.Text).hasWildcards():
				lits = append(lits, Lower(parsePattern(v.Text).literal()))
			case v.Kind == KindBool:
				lits = append(lits, v.Text)
			default:
				exact = false
			}
		}
	}
	if m.typ != "" {
		cost = costHeavy
	}
	var cons cset
	if exact {
		sort.Strings(lits)
		lits = slices.Compact(lits)
		if m.all {
			if len(lits) > 1 {
				lits = []string{} // contradictory for a single-valued field
			}
		} else {
			cost = costExact
		}
		cons = cset{it.Field: lits}
	}

	var fn evalFn
	switch {
	case keyword && m.all:
		fn = func(doc map[string]any) bool {
			for _, fns := range perValue {
				if !leafAny(doc, fns) {
					return false
				}
			}
			return true
		}
		cost = costKeyword
	case keyword:
		all := slices.Concat(perValue...)
		fn = func(doc map[string]any) bool { return leafAny(doc, all) }
		cost = costKeyword
	case m.all:
		fn = func(doc map[string]any) bool {
			for _, fns := range perValue {
				if !fp.any(doc, fns) {
					return false
				}
			}
			return true
		}
	default:
		all := slices.Concat(perValue...)
		if fp.n == 1 && len(all) == 1 {
			key, f := fp.name, all[0]
			fn = func(doc map[string]any) bool {
				v, ok := doc[key]
				if !ok {
					return false
				}
				if s, ok := v.(string); ok {
					return f.s(s)
				}
				return leafAny(v, all)
			}
		} else {
			fn = func(doc map[string]any) bool { return fp.any(doc, all) }
		}
	}
	if m.neq {
		pos := fn
		fn = func(doc map[string]any) bool { return !pos(doc) }
	}
	return fn, cost, cons
}

// valueFns compiles one value into the closures of its variants.
func (c *compiler) valueFns(v Value, m modSpec, keyword bool) ([]scalarFn, error) {
	switch m.typ {
	case "re":
		if v.Kind != KindString {
			return nil, fmt.Errorf("re takes a string")
		}
		re, err := compileRegexp(v.Text, m.reFlags)
		if err != nil {
			return nil, err
		}
		match := re.MatchString
		// A literal every match must hold rejects most values before the
		// regexp runs.
		// Case-folded literals only when ASCII without k and s: RE2 folds
		// those with U+212A and U+017F, which Lower does not.
		if lit, fold := requiredLiteral(re); lit != "" && (!fold || asciiNoKS(lit)) {
			if fold {
				lit = Lower(lit)
				match = func(s string) bool { return containsFold(s, lit) && re.MatchString(s) }
			} else {
				match = func(s string) bool { return strings.Contains(s, lit) && re.MatchString(s) }
			}
		}
		return []scalarFn{viaString(match)}, nil
	case "cidr":
		pfx, err := netip.ParsePrefix(v.Text)
		if err != nil {
			a, err2 := netip.ParseAddr(v.Text)
			if err2 != nil {
				return nil, fmt.Errorf("cidr: %q is not a network (%v)", v.Text, err)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		pfx = pfx.Masked()
		return []scalarFn{{s: func(s string) bool {
			a, err := netip.ParseAddr(s)
			return err == nil && pfx.Contains(a.WithZone("").Unmap())
		}, x: func(any) bool { return false }}}, nil
	case "lt", "lte", "gt", "gte":
		if v.Kind != KindNumber {
			return nil, fmt.Errorf("%s takes a number, not %q", m.typ, v.Text)
		}
		lit := newNumLit(v)
		var want func(c int) bool
		switch m.typ {
		case "lt":
			want = func(c int) bool { return c < 0 }
		case "lte":
			want = func(c int) bool { return c <= 0 }
		case "gt":
			want = func(c int) bool { return c > 0 }
		default:
			want = func(c int) bool { return c >= 0 }
		}
		return []scalarFn{{s: func(s string) bool {
			c, ok := lit.cmpString(s)
			return ok && want(c)
		}, x: func(x any) bool {
			c, ok := lit.cmp(x)
			return ok && want(c)
		}}}, nil
	}
	// Plain numbers compare numerically with numbers and by string form
	// with strings.
	if v.Kind == KindNumber && len(m.transforms) == 0 && !keyword {
		lit, text := newNumLit(v), v.Text
		return []scalarFn{{s: func(s string) bool { return eqFold(s, text) }, x: func(x any) bool {
			c, ok := lit.cmp(x)
			return ok && c == 0
		}}}, nil
	}
	vs := []pattern{parsePattern(v.Text)}
	if keyword && m.anchor == "" {
		// Keywords search the whole record: a keyword is found inside a value.
		vs[0] = append(append(pattern{{kind: '*'}}, vs[0]...), seg{kind: '*'})
	}
	for _, t := range m.transforms {
		var err error
		if vs, err = transform(t, vs); err != nil {
			return nil, err
		}
	}
	fns := make([]scalarFn, 0, len(vs))
	for _, p := range vs {
		fns = append(fns, viaString(stringMatcher(p, m.cased)))
	}
	return fns, nil
}

func compileRegexp(expr, flags string) (*regexp.Regexp, error) {
	// RE2 rejects what it cannot run (lookaround, backreferences, atomic
	// groups, possessive quantifiers, \Z, \G...). \v compiles in both but
	// means vertical whitespace in PCRE and only U+000B in RE2.
	for i := 0; i+1 < len(expr); i++ {
		if expr[i] == '\\' {
			if expr[i+1] == 'v' {
				return nil, fmt.Errorf("re %q: \\v means vertical whitespace in PCRE but a vertical tab in Go's RE2; write [\\n\\v\\f\\r]", expr)
			}
			i++
		}
	}
	src := expr
	if flags != "" {
		src = "(?" + flags + ")" + expr
	}
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("re %q cannot be evaluated by Go's RE2 engine (no lookaround, backreferences, atomic groups or possessive quantifiers): %w", expr, err)
	}
	return re, nil
}

func asciiNoKS(s string) bool {
	for i := 0; i < len(s); i++ {
		c := lowerASCII(s[i])
		if c >= 0x80 || c == 'k' || c == 's' {
			return false
		}
	}
	return true
}

// requiredLiteral returns the longest literal of the regexp's top-level
// concatenation (every match contains it) and whether it is case-folded.
func requiredLiteral(re *regexp.Regexp) (string, bool) {
	t, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return "", false
	}
	t = t.Simplify()
	subs := []*syntax.Regexp{t}
	if t.Op == syntax.OpConcat {
		subs = t.Sub
	}
	best, fold := "", false
	for _, sub := range subs {
		if sub.Op == syntax.OpLiteral && len(string(sub.Rune)) > len(best) {
			best, fold = string(sub.Rune), sub.Flags&syntax.FoldCase != 0
		}
	}
	return best, fold
}

// fieldref compiles an item whose values name fields: the item's field
// matches when one of its values equals (or contains, starts or ends with)
// one of the values a named field holds; a list of names is ORed like any
// list (ANDed under all).
func (c *compiler) fieldref(it *Item, fp *fieldPath, m modSpec) (evalFn, int, cset) {
	var refs []*fieldPath
	for _, v := range it.Values {
		if v.Kind != KindString || v.Text == "" {
			c.errAt(v.Pos, "fieldref takes field names")
			return nil, 0, nil
		}
		if strings.HasPrefix(v.Text, ".") || strings.HasSuffix(v.Text, ".") || strings.Contains(v.Text, "..") {
			c.errAt(v.Pos, "field name %q has an empty dotted segment", v.Text)
			return nil, 0, nil
		}
		refs = append(refs, newPath(v.Text))
		c.fields[v.Text] = true
	}
	fold := !m.cased
	var cmp func(a, b string) bool
	switch {
	case m.anchor == "contains" && fold:
		cmp = containsFold
	case m.anchor == "contains":
		cmp = strings.Contains
	case m.anchor == "startswith" && fold:
		cmp = prefixFold
	case m.anchor == "startswith":
		cmp = strings.HasPrefix
	case m.anchor == "endswith" && fold:
		cmp = suffixFold
	case m.anchor == "endswith":
		cmp = strings.HasSuffix
	case fold:
		cmp = eqFold
	default:
		cmp = func(a, b string) bool { return a == b }
	}
	matchRef := func(doc map[string]any, ref *fieldPath) bool {
		var buf [4]string
		vals := buf[:0]
		ref.walk(doc, func(v any, present bool) bool {
			if present {
				vals = appendLeaves(vals, v)
			}
			return false
		})
		if len(vals) == 0 {
			return false
		}
		return fp.walk(doc, func(v any, present bool) bool {
			if !present {
				return false
			}
			s, ok := scalarString(v)
			if !ok {
				return false
			}
			for _, r := range vals {
				if cmp(s, r) {
					return true
				}
			}
			return false
		})
	}
	fn := func(doc map[string]any) bool {
		for _, ref := range refs {
			if matchRef(doc, ref) != m.all {
				return !m.all
			}
		}
		return m.all
	}
	if m.neq {
		pos := fn
		fn = func(doc map[string]any) bool { return !pos(doc) }
	}
	return fn, costHeavy, nil
}

func appendLeaves(out []string, v any) []string {
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			out = appendLeaves(out, x)
		}
	case []any:
		for _, x := range v {
			out = appendLeaves(out, x)
		}
	default:
		if s, ok := scalarString(v); ok {
			out = append(out, s)
		}
	}
	return out
}

// scalarString is the string form a plain comparison uses.
func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		if v {
			return "true", true
		}
		return "false", true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case json.Number:
		return string(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	}
	return "", false
}

// toFloat is the number a numeric comparison uses: numbers, and strings that
// parse as numbers.
func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil && !math.IsNaN(f)
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case float32:
		return float64(v), true
	case uint64:
		return float64(v), true
	}
	return 0, false
}

// leafAny reports whether a scalar leaf of v (v itself, array elements,
// object values, recursively) satisfies one of fns.
func leafAny(v any, fns []scalarFn) bool {
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			if leafAny(x, fns) {
				return true
			}
		}
		return false
	case []any:
		for _, x := range v {
			if leafAny(x, fns) {
				return true
			}
		}
		return false
	case string:
		for _, f := range fns {
			if f.s(v) {
				return true
			}
		}
		return false
	case nil:
		return false
	}
	for _, f := range fns {
		if f.x(v) {
			return true
		}
	}
	return false
}

// fieldPath resolves a dotted field name through nested objects and arrays.
// At each level the longest-first run of segments is looked up as one key
// too, so records with flattened dotted keys ("a.b": 1) resolve as well.
type fieldPath struct {
	name string
	n    int
	keys [][]string // keys[i][k] = segs[i..i+k] joined by "."
}

func newPath(name string) *fieldPath {
	segs := strings.Split(name, ".")
	fp := &fieldPath{name: name, n: len(segs), keys: make([][]string, len(segs))}
	for i := range segs {
		for j := i + 1; j <= len(segs); j++ {
			fp.keys[i] = append(fp.keys[i], strings.Join(segs[i:j], "."))
		}
	}
	return fp
}

// walk calls cb with every value the path reaches (arrays flattened; an
// empty array counts as no value) and with present=false once for each
// branch where the path reaches nothing. It stops as soon as cb returns
// true, and reports whether it did.
func (fp *fieldPath) walk(doc map[string]any, cb func(v any, present bool) bool) bool {
	return fp.walkAt(doc, 0, cb)
}

func (fp *fieldPath) walkAt(m map[string]any, i int, cb func(any, bool) bool) bool {
	found := false
	for k, key := range fp.keys[i] {
		v, ok := m[key]
		if !ok {
			continue
		}
		found = true
		if j := i + k + 1; j == fp.n {
			if emit(v, cb) {
				return true
			}
		} else if fp.descend(v, j, cb) {
			return true
		}
	}
	if !found {
		return cb(nil, false)
	}
	return false
}

func emit(v any, cb func(any, bool) bool) bool {
	a, ok := v.([]any)
	if !ok {
		return cb(v, true)
	}
	if len(a) == 0 {
		return cb(nil, false)
	}
	for _, e := range a {
		if emit(e, cb) {
			return true
		}
	}
	return false
}

func (fp *fieldPath) descend(v any, j int, cb func(any, bool) bool) bool {
	switch v := v.(type) {
	case map[string]any:
		return fp.walkAt(v, j, cb)
	case []any:
		if len(v) == 0 {
			return cb(nil, false)
		}
		for _, e := range v {
			if fp.descend(e, j, cb) {
				return true
			}
		}
		return false
	}
	return cb(nil, false)
}

// any reports whether a value the path reaches satisfies one of fns.
func (fp *fieldPath) any(doc map[string]any, fns []scalarFn) bool {
	if fp.n == 1 {
		v, ok := doc[fp.name]
		return ok && leafAny(v, fns)
	}
	return fp.walk(doc, func(v any, present bool) bool { return present && leafAny(v, fns) })
}

// isNull: the field is absent or null (on some branch, through arrays).
func (fp *fieldPath) isNull(doc map[string]any) bool {
	if fp.n == 1 {
		v, ok := doc[fp.name]
		if !ok || v == nil {
			return true
		}
		if _, isArr := v.([]any); !isArr {
			return false
		}
	}
	return fp.walk(doc, func(v any, present bool) bool { return !present || v == nil })
}

// exists: the path reaches a key, whatever its value: null, "" and an
// empty array are present (the spec: "only verifies the presence of a
// field, not its value, be it empty or null"). On the way down, arrays are
// crossed element by element, so a.b exists when some element of a has b.
func (fp *fieldPath) exists(doc map[string]any) bool {
	if fp.n == 1 {
		_, ok := doc[fp.name]
		return ok
	}
	return fp.existsAt(doc, 0)
}

func (fp *fieldPath) existsAt(m map[string]any, i int) bool {
	for k, key := range fp.keys[i] {
		v, ok := m[key]
		if !ok {
			continue
		}
		if j := i + k + 1; j == fp.n || fp.existsIn(v, j) {
			return true
		}
	}
	return false
}

func (fp *fieldPath) existsIn(v any, j int) bool {
	switch v := v.(type) {
	case map[string]any:
		return fp.existsAt(v, j)
	case []any:
		for _, e := range v {
			if fp.existsIn(e, j) {
				return true
			}
		}
	}
	return false
}
