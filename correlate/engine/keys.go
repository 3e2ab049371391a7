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
		// Reused: the kinds read it during the call only (an interface
		// call would otherwise move it to the heap on every event).
		rh := &e.rh
		*rh = ruleHits{steps: rh.steps[:0]}
		e.collect(rt, rh)
		keys := e.groupKeys(rt, nil, nil)
		if len(keys) == 0 {
			e.stats.rules[rt.idx].noKey++
			return
		}
		for _, k := range keys {
			e.runRule(rt, k.key, k.vals, rh)
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
		keys := e.groupKeys(rt, h.fields, h.sig)
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
	rt.kind.process(e, rt, key, vals, rh)
}

// groupKeys computes the rule's keys for the current event, with fields
// as `fields` (nil when `by` does not read them). It returns none when a
// task-keyed rule sees no task ARN, or when every key part is empty. A key
// part whose expression returns a list contributes each distinct non-empty
// element; several list parts combine (cartesian product, in order), cut
// at maxKeyFanout keys. A Value part (Go code, sig the hit's signal when
// keys are per hit) that yields no value means no key at all.
func (e *Engine) groupKeys(rt *ruleRT, fields map[string]any, sig *rule.Signal) []keyVals {
	by := rt.r.By
	out := rt.keyBuf[:0]
	if len(by) == 0 {
		rt.keyBuf = append(out, keyVals{})
		return rt.keyBuf
	}
	vals := make([]string, len(by))
	var lists [][]string // set only when an expression returned a list
	for i, kf := range by {
		if kf.Value != nil {
			e.ensureRaw()
			vs := kf.Value(sig, &e.env)
			switch len(vs) {
			case 0:
				return nil
			case 1:
				vals[i] = vs[0]
			default:
				if lists == nil {
					lists = make([][]string, len(by))
				}
				lists[i] = vs
			}
			continue
		}
		if kf.Expr == nil {
			vals[i] = rule.EntityField(&e.env.Entity, kf.Entity)
			if kf.Entity == "task_arn" && vals[i] == "" {
				return nil
			}
			continue
		}
		e.needRaw() // the event's projection holds what `by` reads
		e.env.Fields = fields
		v, err := e.vm.Run(kf.Expr, &e.env)
		e.env.Fields = nil
		if err != nil {
			e.stats.evalErrors++
			continue
		}
		switch v.(type) {
		case nil:
		case []any, []string:
			if lists == nil {
				lists = make([][]string, len(by))
			}
			lists[i] = keyStrings(v)
		default:
			vals[i] = fmt.Sprint(v)
		}
	}
	combos := []keyVals{{vals: vals}}
	if lists != nil {
		combos = e.fanOut(rt, vals, lists)
	}
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
	rt.keyBuf = out
	return out
}

// fanOut expands the list-valued key parts (every combination, in order),
// cut at maxKeyFanout keys.
func (e *Engine) fanOut(rt *ruleRT, vals []string, lists [][]string) []keyVals {
	combos := []keyVals{{vals: vals[:0:0]}}
	cut := false
	for i, v := range vals {
		p := lists[i]
		if p == nil {
			p = []string{v}
		}
		next := make([]keyVals, 0, min(len(combos)*len(p), maxKeyFanout))
		for _, c := range combos {
			for _, x := range p {
				if len(next) == maxKeyFanout {
					cut = true
					break
				}
				nv := make([]string, len(c.vals), len(vals))
				copy(nv, c.vals)
				next = append(next, keyVals{vals: append(nv, x)})
			}
		}
		combos = next
	}
	if cut {
		e.stats.rules[rt.idx].fanOverflow++
		e.logOnce("fanout:"+rt.r.ID, "list-valued key cut; extra keys dropped and counted", "rule", rt.r.ID, "max", maxKeyFanout)
	}
	return combos
}

// keyStrings turns a list-valued key result into key values: its distinct
// non-empty elements, in order ("" alone when there are none).
func keyStrings(v any) []string {
	var list []any
	switch x := v.(type) {
	case []any:
		list = x
	case []string:
		list = make([]any, len(x))
		for i, s := range x {
			list[i] = s
		}
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
