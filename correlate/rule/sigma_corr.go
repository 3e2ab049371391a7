package rule

import (
	"strconv"
	"strings"

	"github.com/expr-lang/expr"

	"github.com/ecscorr/ecscorr/correlate/sigma"
)

// Sigma correlation rules. Every Sigma file is read first; then
// sigmaSignals resolves the correlations' references (by id or name,
// across files: unknown names, ambiguous names and cycles are errors at
// the reference) and adds the signals, and sigmaRules compiles each
// correlation to an engine kind:
//
//	event_count       threshold count
//	value_count       threshold distinct over the field (a tuple for several)
//	value_sum, _avg   threshold sum, avg (avg decided per window close)
//	value_percentile  threshold percentile, decided per window close
//	temporal          temporal (a lower-bound condition: on the number of
//	                  rules fired); an upper bound: threshold distinct
//	                  over the rule matched, decided per window close
//	temporal_ordered  sequence, in rules order, maxspan = timespan
//
// A condition with an upper bound (lt, lte, eq, neq) is decided when a
// window closes (Threshold.Close), lower bounds as soon as they hold; an
// average or a percentile, which a later event can lower or raise, always
// at the close.
// group-by fields (and aliases, per referred rule) are Go key functions
// over the raw record, resolved as the detection matcher resolves fields.
// A correlation that another one refers to feeds it through its Derived
// signal (sigma_<id>, never offered raw events). Rules referred to by
// correlations raise no incidents of their own unless a referring
// correlation says generate: true.

// sigmaSignals resolves the correlations and adds the Sigma signals: one
// per detection, one derived signal per correlation that another refers to.
func (l *loader) sigmaSignals() {
	l.resolveSigma()
	for _, d := range l.sigmas {
		var s *Signal
		switch {
		case d.r != nil:
			s = d.signal()
			l.lintSigma(d, s)
		case d.referred:
			// Fed by the engine when the correlation fires; no event type
			// or source reaches it (Never).
			s = &Signal{Name: d.sigName, Never: true, NeedsRaw: true, Pos: sigmaPos(d.c.Pos)}
		default:
			continue
		}
		s.Index = len(l.set.Signals)
		l.set.Signals = append(l.set.Signals, s)
		l.set.SignalsByName[s.Name] = s
	}
}

// sigmaRules adds the rules of the Sigma files: a match rule per detection
// that raises its own incidents, a rule per correlation.
func (l *loader) sigmaRules() {
	for _, d := range l.sigmas {
		switch {
		case d.r != nil && (!d.referred || d.generate):
			l.set.Rules = append(l.set.Rules, l.sigmaRule(d))
		case d.c != nil && d.refs != nil:
			if r := l.sigmaCorrRule(d); r != nil {
				l.set.Rules = append(l.set.Rules, r)
			}
		}
	}
}

// resolveSigma resolves every correlation's rules by id, then by name.
func (l *loader) resolveSigma() {
	byID := map[string]*sigmaDef{}
	byName := map[string]*sigmaDef{}
	for _, d := range l.sigmas {
		byID[d.id] = d
		name := d.name()
		if name == "" {
			continue
		}
		if prev := byName[name]; prev != nil {
			l.diag(SevError, d.pos(), "sigma: duplicate rule name %q (first defined at %s): correlations refer to rules by name", name, prev.pos())
			continue
		}
		byName[name] = d
	}
	for _, d := range l.sigmas {
		if d.c == nil {
			continue
		}
		ok := true
		var refs []*sigmaDef
		for _, ref := range d.c.Rules {
			t := byID[ref.Name]
			if t == nil {
				t = byName[ref.Name]
			}
			if t == nil {
				l.diag(SevError, sigmaPos(ref.Pos), "sigma: correlation %s refers to %q: no loaded Sigma rule has that id or name", d.id, ref.Name)
				ok = false
				continue
			}
			if i := indexOf(refs, t); i >= 0 {
				l.diag(SevError, sigmaPos(ref.Pos), "sigma: correlation %s refers to rule %s twice (%q and %q)", d.id, t.id, d.c.Rules[i].Name, ref.Name)
				ok = false
				continue
			}
			refs = append(refs, t)
		}
		if ok {
			d.refs = refs
		}
	}
	// Cycles: depth-first, reported at the reference that closes one.
	state := map[*sigmaDef]int{} // 1 on the path, 2 done
	var visit func(d *sigmaDef) bool
	visit = func(d *sigmaDef) bool {
		switch state[d] {
		case 1:
			return false
		case 2:
			return true
		}
		state[d] = 1
		for i, t := range d.refs {
			if t.c == nil {
				continue
			}
			if state[t] == 1 || !visit(t) {
				if state[t] == 1 {
					l.diag(SevError, sigmaPos(d.c.Rules[i].Pos), "sigma: correlation %s refers to %s, which refers back to it (a cycle)", d.id, t.id)
				}
				d.refs = nil
				state[d] = 2
				return false
			}
		}
		state[d] = 2
		return true
	}
	for _, d := range l.sigmas {
		if d.c != nil && d.refs != nil {
			visit(d)
		}
	}
	for _, d := range l.sigmas {
		if d.c == nil || d.refs == nil {
			continue
		}
		for _, t := range d.refs {
			t.referred = true
			t.generate = t.generate || d.c.Generate
		}
	}
}

func indexOf(refs []*sigmaDef, d *sigmaDef) int {
	for i, r := range refs {
		if r == d {
			return i
		}
	}
	return -1
}

func (d *sigmaDef) pos() Pos {
	if d.r != nil {
		return sigmaPos(d.r.Pos)
	}
	return sigmaPos(d.c.Pos)
}

func (d *sigmaDef) name() string {
	if d.r != nil {
		return d.r.Name
	}
	return d.c.Name
}

// sigmaCorrRule compiles a resolved correlation.
func (l *loader) sigmaCorrRule(d *sigmaDef) *Rule {
	c := d.c
	out := sigmaBase(d)
	out.Retention = c.Timespan
	out.Silent = d.referred && !d.generate
	if d.referred {
		out.Derived = l.set.SignalsByName[d.sigName]
	}
	sigs := make([]*Signal, len(d.refs))
	for i, t := range d.refs {
		sigs[i] = l.set.SignalsByName[t.sigName]
		if sigs[i] == nil {
			return nil // its own errors are reported
		}
	}
	by, ok := l.sigmaGroupBy(d, sigs)
	if !ok {
		return nil
	}
	out.By = by
	var cmp Cmp
	if cond := c.Condition; cond != nil {
		cmp = Cmp{GT: cond.GT, GTE: cond.GTE, LT: cond.LT, LTE: cond.LTE, EQ: cond.EQ, NEQ: cond.NEQ}
	}
	switch c.Type {
	case sigma.EventCount, sigma.ValueCount, sigma.ValueSum, sigma.ValueAvg, sigma.ValuePercentile:
		th := &Threshold{Step: Step{Signals: sigs}, Window: c.Timespan, Cmp: cmp, ResetAfterFire: true,
			Close: !cmp.LowerBoundsOnly() || c.Type == sigma.ValuePercentile || c.Type == sigma.ValueAvg}
		switch c.Type {
		case sigma.EventCount:
			th.Agg = AggCount
		case sigma.ValueCount:
			th.Agg, th.DistinctEvidence, th.Value = AggDistinct, true, tupleValue(c.Condition.Fields)
		case sigma.ValueSum, sigma.ValueAvg:
			th.Agg, th.Value = AggSum, numberValue(c.Condition.Fields[0])
			if c.Type == sigma.ValueAvg {
				th.Agg = AggAvg
			}
		case sigma.ValuePercentile:
			th.Agg, th.Value = AggPercentile, tupleValue(c.Condition.Fields)
		}
		out.Kind, out.Threshold = KindThreshold, th
		if th.Close {
			l.fixedWindowNote(d.id, c)
		}
	case sigma.Temporal:
		if cond := c.Condition; cond != nil && !cond.LowerBoundsOnly() {
			// Not monotone in the rules fired: the number of distinct rules
			// of a window, decided at its close like the counts.
			out.Kind, out.Threshold = KindThreshold, &Threshold{Step: Step{Signals: sigs}, Window: c.Timespan,
				Cmp: cmp, ResetAfterFire: true, Close: true, Agg: AggDistinct, Value: signalValue}
			l.fixedWindowNote(d.id, c)
			break
		}
		if len(sigs) > 16 {
			l.diag(SevError, sigmaPos(c.Rules[16].Pos), "sigma: temporal correlation %s: at most 16 rules", d.id)
			return nil
		}
		tp := &Temporal{Window: c.Timespan}
		env := map[string]any{"count_fired": 0}
		for i, s := range sigs {
			as := stepName(d.refs[i], s)
			tp.Signals = append(tp.Signals, Step{As: as, Signals: []*Signal{s}})
			env[as] = false
		}
		// No condition: every rule; else the number of rules fired.
		if cond := c.Condition; cond != nil {
			src := cmpSrc(cmp)
			p, err := expr.Compile(src, expr.Env(env), expr.AsBool())
			if err != nil { // cannot happen: the source is generated
				l.diag(SevError, sigmaPos(cond.Pos), "sigma: condition %s: %v", src, err)
				return nil
			}
			tp.Condition = p
		}
		out.Kind, out.Temporal = KindTemporal, tp
	case sigma.TemporalOrdered:
		sq := &Sequence{MaxSpan: c.Timespan}
		for i, s := range sigs {
			sq.Steps = append(sq.Steps, Step{As: stepName(d.refs[i], s), Signals: []*Signal{s}})
		}
		out.Kind, out.Sequence = KindSequence, sq
	default:
		return nil
	}
	return out
}

// signalValue is the rule an event matched: a temporal condition counts
// the distinct rules fired.
func signalValue(sig *Signal, _ *Env) (string, float64, bool) { return sig.Name, 0, true }

// stepName is a referred rule's alias in steps and evidence: its Sigma
// name when it is an identifier, else its signal name.
func stepName(d *sigmaDef, s *Signal) string {
	if n := d.name(); identRe.MatchString(n) && !isReservedName(n) {
		return n
	}
	return s.Name
}

func isReservedName(n string) bool {
	for _, r := range reservedNames {
		if n == r {
			return true
		}
	}
	return false
}

// cmpSrc is the temporal condition over count_fired.
func cmpSrc(c Cmp) string {
	var parts []string
	add := func(op string, p *float64) {
		if p != nil {
			parts = append(parts, "count_fired "+op+" "+strconv.FormatFloat(*p, 'f', -1, 64))
		}
	}
	add(">", c.GT)
	add(">=", c.GTE)
	add("<", c.LT)
	add("<=", c.LTE)
	add("==", c.EQ)
	add("!=", c.NEQ)
	return strings.Join(parts, " && ")
}

// sigmaGroupBy turns group-by into Go key functions. A plain field is read
// from every referred rule's events; an alias names its field per rule.
func (l *loader) sigmaGroupBy(d *sigmaDef, sigs []*Signal) ([]KeyField, bool) {
	c := d.c
	aliases := map[string]sigma.Alias{}
	for _, a := range c.Aliases {
		aliases[a.Name] = a
	}
	ok := true
	// Which referred rule an alias entry names: the reference as written,
	// or the rule's name or id.
	refOf := func(name string) int {
		for i, t := range d.refs {
			if c.Rules[i].Name == name || t.name() == name || t.id == name {
				return i
			}
		}
		return -1
	}
	for _, a := range c.Aliases {
		for _, f := range a.Fields {
			if refOf(f.Rule) < 0 {
				l.diag(SevError, sigmaPos(f.Pos), "sigma: alias %q: %q is not one of correlation %s's rules (aliases name them by name)", a.Name, f.Rule, d.id)
				ok = false
			}
		}
	}
	var by []KeyField
	for _, g := range c.GroupBy {
		a, isAlias := aliases[g.Name]
		if !isAlias {
			f := sigma.NewField(g.Name)
			by = append(by, KeyField{Name: g.Name, Value: func(_ *Signal, env *Env) []string { return f.Strings(env.Raw) }})
			continue
		}
		perSig := map[*Signal]*sigma.Field{}
		for _, af := range a.Fields {
			if i := refOf(af.Rule); i >= 0 {
				perSig[sigs[i]] = sigma.NewField(af.Field)
			}
		}
		for i, s := range sigs {
			if perSig[s] == nil {
				l.diag(SevError, sigmaPos(a.Pos), "sigma: alias %q gives no field for rule %q of correlation %s (group-by %s would never match its events)", a.Name, c.Rules[i].Name, d.id, g.Name)
				ok = false
			}
		}
		by = append(by, KeyField{Name: g.Name, ReadsFields: true, Value: func(sig *Signal, env *Env) []string {
			if f := perSig[sig]; f != nil {
				return f.Strings(env.Raw)
			}
			return nil
		}})
	}
	return by, ok
}

// tupleValue is the value of value_count and value_percentile: the
// field's string form, or for several fields the tuple of them. A field
// reaching several values (an array) contributes them all, in record
// order, as one value; a missing field means no value.
func tupleValue(fields []string) func(*Signal, *Env) (string, float64, bool) {
	fs := make([]*sigma.Field, len(fields))
	for i, f := range fields {
		fs[i] = sigma.NewField(f)
	}
	return func(_ *Signal, env *Env) (string, float64, bool) {
		var b strings.Builder
		for i, f := range fs {
			vs := f.Strings(env.Raw)
			if len(vs) == 0 {
				return "", 0, false
			}
			if i > 0 {
				b.WriteByte(0x1f)
			}
			b.WriteString(strings.Join(vs, "\x1e"))
		}
		return b.String(), 0, true
	}
}

// numberValue is the value of value_sum and value_avg: the field must
// reach exactly one value, a number or a string holding one; anything else
// (absent, null, an array, text) is no value.
func numberValue(field string) func(*Signal, *Env) (string, float64, bool) {
	f := sigma.NewField(field)
	return func(_ *Signal, env *Env) (string, float64, bool) {
		var buf [2]any
		vs := f.Values(env.Raw, buf[:0])
		if len(vs) != 1 {
			return "", 0, false
		}
		x, ok := sigma.Number(vs[0])
		return "", x, ok
	}
}

// fixedWindowNote says what the specification asks a backend to say when
// its time frames have boundaries ("should issue a warning"): a window
// decided at its close opens at a key's first event, so events of one
// frame of timespan split across two windows are not counted together
// (a false negative the sliding lower-bound windows do not have). A note:
// for the rule's author (rules check), not every replay.
func (l *loader) fixedWindowNote(id string, c *sigma.Correlation) {
	pos := c.CorrPos
	if c.Condition != nil {
		pos = c.Condition.Pos
	}
	l.diag(SevNote, sigmaPos(pos), "sigma: correlation %s is decided per window [first event, first event + %s), a window opening at the next event after it closes, not over every time frame: events split across two windows are not counted together (an upper bound, an average or a percentile cannot be decided as events arrive; conditions of lower bounds only slide)", id, c.Timespan)
}
