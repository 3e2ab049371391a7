package engine

import (
	"fmt"

	"github.com/ecscorr/ecscorr/correlate/rule"
)

// maxKeyFanout bounds the keys one event can join under when `by`
// expressions return lists; the rest is dropped and counted.
const maxKeyFanout = 64

// keyVals is one group key of the current event.
type keyVals struct {
	key  string
	vals []string
}

// processRule offers the current event's hits to a rule, once per group
// key. When the rule's `by` reads signal fields, the key is computed per
// hit with that hit's fields, so each signal can join on its own value;
// otherwise once per event. A list-valued key part joins the event once per
// element.
func (e *Engine) processRule(rt *ruleRT) {
	if !rt.byFields {
		var rh ruleHits
		e.collect(rt, &rh)
		keys := e.groupKeys(rt, nil)
		if len(keys) == 0 {
			e.stats.rules[rt.idx].noKey++
			return
		}
		for _, k := range keys {
			e.runRule(rt, k.key, k.vals, &rh)
		}
		return
	}
	type group struct {
		keyVals
		rh ruleHits
	}
	var groups []*group
	index := make(map[string]*group)
	noKey := false
	for i := range e.hits {
		h := &e.hits[i]
		if !hasRole(e.sigRoles[h.sig.Index], rt.idx) {
			continue
		}
		keys := e.groupKeys(rt, h.fields)
		if len(keys) == 0 {
			noKey = true
			continue
		}
		for _, k := range keys {
			g := index[k.key]
			if g == nil {
				g = &group{keyVals: k}
				index[k.key] = g
				groups = append(groups, g)
			}
			addHit(e.sigRoles[h.sig.Index], rt.idx, h, &g.rh)
		}
	}
	if noKey {
		e.stats.rules[rt.idx].noKey++
	}
	for _, g := range groups {
		e.runRule(rt, g.key, g.vals, &g.rh)
	}
}

func hasRole(roles []roleRef, ri int) bool {
	for _, rr := range roles {
		if rr.rule == ri {
			return true
		}
	}
	return false
}

// addHit files one hit under its roles in rule ri (as collect does for all
// hits of the event).
func addHit(roles []roleRef, ri int, h *sigHit, rh *ruleHits) {
	for _, rr := range roles {
		if rr.rule != ri {
			continue
		}
		switch rr.kind {
		case roleStep:
			dup := false
			for _, s := range rh.steps {
				if s.step == rr.step {
					dup = true // any_of: the first matching signal names the step
					break
				}
			}
			if !dup {
				rh.steps = append(rh.steps, stepHit{rr.step, h})
			}
		case roleUntil:
			rh.until = true
		case roleResolve:
			if rh.resolve == nil {
				rh.resolve = h
			}
		case roleSeries:
			rh.series = h
		case roleJoin:
			if rh.join == nil {
				rh.join = h
			}
		}
	}
}

func (e *Engine) runRule(rt *ruleRT, key string, vals []string, rh *ruleHits) {
	if rh.resolve != nil {
		e.resolveSignal(rt, key, rh.resolve)
	}
	switch rt.r.Kind {
	case rule.KindMatch:
		e.onMatch(rt, key, vals, rh)
	case rule.KindThreshold:
		e.onThreshold(rt, key, vals, rh)
	case rule.KindSequence:
		e.onSequence(rt, key, vals, rh)
	case rule.KindTemporal:
		e.onTemporal(rt, key, vals, rh)
	case rule.KindMetric:
		e.onMetric(rt, key, vals, rh)
	}
}

// groupKeys computes the rule's keys for the current event, with fields
// as `fields` (nil when `by` does not read them). It returns none when a
// task-keyed rule sees no task ARN, or when every key part is empty. A key
// part whose expression returns a list contributes each distinct non-empty
// element; several list parts combine (cartesian product, in order), cut
// at maxKeyFanout keys.
func (e *Engine) groupKeys(rt *ruleRT, fields map[string]any) []keyVals {
	by := rt.r.By
	if len(by) == 0 {
		return []keyVals{{}}
	}
	parts := make([][]string, len(by))
	for i, kf := range by {
		if kf.Expr == nil {
			v := entityField(&e.env.Entity, kf.Entity)
			if kf.Entity == "task_arn" && v == "" {
				return nil
			}
			parts[i] = []string{v}
			continue
		}
		e.ensureRaw()
		e.env.Fields = fields
		out, err := e.vm.Run(kf.Expr, &e.env)
		e.env.Fields = nil
		if err != nil {
			e.stats.evalErrors++
			out = nil
		}
		parts[i] = keyStrings(out)
	}
	combos := []keyVals{{}}
	cut := false
	for _, p := range parts {
		next := make([]keyVals, 0, len(combos)*len(p))
		for _, c := range combos {
			for _, v := range p {
				if len(next) == maxKeyFanout {
					cut = true
					break
				}
				vals := make([]string, len(c.vals), len(c.vals)+1)
				copy(vals, c.vals)
				next = append(next, keyVals{vals: append(vals, v)})
			}
		}
		combos = next
	}
	if cut {
		e.stats.rules[rt.idx].fanOverflow++
		e.logOnce("fanout:"+rt.r.ID, "list-valued key cut; extra keys dropped and counted", "rule", rt.r.ID, "max", maxKeyFanout)
	}
	out := combos[:0]
	for _, c := range combos {
		empty := true
		for _, v := range c.vals {
			if v != "" {
				empty = false
				break
			}
		}
		if empty {
			continue
		}
		c.key = joinKey(c.vals)
		out = append(out, c)
	}
	return out
}

// keyStrings turns a key expression's result into key values: a list gives
// its distinct non-empty elements (in order), anything else one value.
func keyStrings(v any) []string {
	var list []any
	switch x := v.(type) {
	case nil:
		return []string{""}
	case []any:
		list = x
	case []string:
		list = make([]any, len(x))
		for i, s := range x {
			list[i] = s
		}
	default:
		return []string{fmt.Sprint(v)}
	}
	out := make([]string, 0, len(list))
	for _, el := range list {
		if el == nil {
			continue
		}
		s := fmt.Sprint(el)
		if s == "" {
			continue
		}
		dup := false
		for _, o := range out {
			if o == s {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return []string{""}
	}
	return out
}

func joinKey(vals []string) string {
	if len(vals) == 1 {
		return vals[0]
	}
	n := 0
	for _, v := range vals {
		n += len(v) + 1
	}
	b := make([]byte, 0, n)
	for i, v := range vals {
		if i > 0 {
			b = append(b, 0x1f)
		}
		b = append(b, v...)
	}
	return string(b)
}
