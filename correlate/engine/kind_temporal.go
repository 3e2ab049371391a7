package engine

import (
	"math/bits"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// temporalKind: unordered signals within a window under a boolean
// condition; a condition a later event could still undo waits for the
// window's close (a timer).
type temporalKind struct{ noExtraState }

func (temporalKind) ruleKind() rule.Kind { return rule.KindTemporal }

func (temporalKind) init(e *Engine, rt *ruleRT, role func([]*rule.Signal, roleKind, int)) {
	tp := rt.r.Temporal
	if tp == nil {
		return
	}
	e.buildTemporal(rt)
	for j := range tp.Signals {
		role(tp.Signals[j].Signals, roleStep, j)
	}
}

func (temporalKind) process(e *Engine, rt *ruleRT, key string, vals []string, rh *ruleHits) {
	e.onTemporal(rt, key, vals, rh)
}

func (temporalKind) timer(e *Engine, rt *ruleRT, ks *keyState, at time.Time) { e.tempTimer(rt, ks, at) }

func (temporalKind) retention(r *rule.Rule) time.Duration { return r.Temporal.Window }

func (temporalKind) expired(rt *ruleRT, ks *keyState, now time.Time) bool {
	if !ks.Pending.IsZero() {
		return false
	}
	cut := now.Add(-rt.r.Temporal.Window)
	for _, l := range ks.Temp {
		if len(l) > 0 && l[len(l)-1].T.After(cut) {
			return false
		}
	}
	return true
}

func (temporalKind) expiresAt(rt *ruleRT, ks *keyState) time.Time {
	if !ks.Pending.IsZero() {
		return maxTime // its timer decides
	}
	at := minTime
	for _, l := range ks.Temp {
		if n := len(l); n > 0 {
			if t := l[n-1].T.Add(rt.r.Temporal.Window); t.After(at) {
				at = t
			}
		}
	}
	return at
}

func (temporalKind) storeKind() state.Kind { return state.KindWindow }

func (temporalKind) loaded(e *Engine, rt *ruleRT, ks *keyState, startup bool) {
	if startup && !ks.Pending.IsZero() {
		e.addTimer(rt, ks.key, ks.Pending)
	}
}

// tempEntry is one event of a temporal alias inside the window.
type tempEntry struct {
	T   time.Time         `json:"t"`
	Ref pipeline.EventRef `json:"r"`
	Rec *evRec            `json:"e,omitempty"` // kept for the newest entry of each alias only
}

// maxTemporalAliases bounds the truth table of a temporal condition.
const maxTemporalAliases = 16

// temporalTable precomputes, for every subset of aliases that fired (a bit
// mask), whether the condition holds (holds) and whether it holds for
// every superset too (final): a final subset can fire at once because no
// later event can make the condition false; otherwise the decision waits
// for the window to close.
type temporalTable struct {
	holds, final []bool
	// mins[a] is alias a's min_count: it has fired once it has that many
	// events in the window.
	mins []int
}

func (e *Engine) buildTemporal(rt *ruleRT) {
	tp := rt.r.Temporal
	n := len(tp.Signals)
	if n > maxTemporalAliases {
		n = maxTemporalAliases
	}
	size := 1 << n
	tt := &temporalTable{holds: make([]bool, size), final: make([]bool, size), mins: make([]int, n)}
	for i := range tt.mins {
		tt.mins[i] = minCount(&tp.Signals[i])
	}
	env := make(map[string]any, n+1)
	for m := 0; m < size; m++ {
		if tp.Condition == nil {
			tt.holds[m] = m == size-1
			continue
		}
		for i := 0; i < n; i++ {
			env[tp.Signals[i].As] = m&(1<<i) != 0
		}
		env["count_fired"] = bits.OnesCount(uint(m))
		ok, err := e.runBool(tp.Condition, env)
		if err != nil {
			e.stats.evalErrors++
		}
		tt.holds[m] = ok
	}
	for m := size - 1; m >= 0; m-- {
		f := tt.holds[m]
		for i := 0; i < n && f; i++ {
			if m&(1<<i) == 0 && !tt.final[m|1<<i] {
				f = false
			}
		}
		tt.final[m] = f
	}
	rt.temporal = tt
}

func (e *Engine) onTemporal(rt *ruleRT, key string, vals []string, rh *ruleHits) {
	tp := rt.r.Temporal
	n := min(len(tp.Signals), maxTemporalAliases)
	var add []stepHit
	for _, sh := range rh.steps {
		if sh.step < n && e.stepWhere(&tp.Signals[sh.step], sh.hit) {
			add = append(add, sh)
		}
	}
	if len(add) == 0 {
		return
	}
	ks := e.getKey(rt, key, vals, true)
	if ks == nil || e.duplicate(rt, ks) {
		return
	}
	if len(ks.Temp) != n {
		ks.Temp = make([][]tempEntry, n)
	}
	t := e.ev.Time
	for _, sh := range add {
		rec := e.hitRec(sh.hit)
		l := ks.Temp[sh.step]
		ent := tempEntry{T: t, Ref: rec.ref(stepAlias(&tp.Signals[sh.step], rec.Signal)), Rec: rec}
		j := len(l)
		for j > 0 && l[j-1].T.After(t) {
			j--
		}
		l = append(l, tempEntry{})
		copy(l[j+1:], l[j:])
		l[j] = ent
		// Only the newest entry keeps its record (for .steps).
		for i := range l[:len(l)-1] {
			l[i].Rec = nil
		}
		if len(l) > maxWindowEntries {
			l = l[1:]
			e.stats.rules[rt.idx].winOverflow++
		}
		ks.Temp[sh.step] = l
	}
	if t.After(ks.Touch) {
		ks.Touch = t
	}
	e.touch(ks)
	// Slide: keep [t-window, t]; a pending decision keeps its own window.
	cut := t.Add(-tp.Window)
	if !ks.Pending.IsZero() && ks.Pending.Add(-tp.Window).Before(cut) {
		cut = ks.Pending.Add(-tp.Window)
	}
	evictBefore(ks.Temp, cut)
	e.tempEval(rt, ks, t.Add(-tp.Window), t, t)
}

func evictBefore(lists [][]tempEntry, cut time.Time) {
	for a, l := range lists {
		i := 0
		for i < len(l) && l[i].T.Before(cut) {
			i++
		}
		if i > 0 {
			lists[a] = append(l[:0:0], l[i:]...)
		}
	}
}

// tempMask is the set of aliases with at least their min_count of events
// in [from, to] (mins nil: one), and the earliest event in [from, to].
func tempMask(lists [][]tempEntry, mins []int, from, to time.Time) (mask int, earliest time.Time) {
	for a, l := range lists {
		n := 0
		for _, en := range l {
			if en.T.Before(from) || en.T.After(to) {
				continue
			}
			n++
			if earliest.IsZero() || en.T.Before(earliest) {
				earliest = en.T
			}
		}
		if n > 0 && (mins == nil || a >= len(mins) || n >= mins[a]) {
			mask |= 1 << a
		}
	}
	return mask, earliest
}

// tempEval decides the window [from, to] at time now: fire when the
// condition is final, or arm a decision at the window's close when it
// holds but a later event of a negated alias could still undo it.
func (e *Engine) tempEval(rt *ruleRT, ks *keyState, from, to, now time.Time) {
	tt := rt.temporal
	mask, earliest := tempMask(ks.Temp, tt.mins, from, to)
	if mask == 0 || !tt.holds[mask] {
		return
	}
	if tt.final[mask] {
		e.tempFire(rt, ks, from, to, now)
		return
	}
	if ks.Pending.IsZero() {
		ks.Pending = earliest.Add(rt.r.Temporal.Window)
		e.addTimer(rt, ks.key, ks.Pending)
	}
}

func (e *Engine) tempFire(rt *ruleRT, ks *keyState, from, to, at time.Time) {
	tp := rt.r.Temporal
	var steps []namedRec
	var refs []pipeline.EventRef
	signals := make(map[string]bool, len(ks.Temp))
	var last *evRec
	count := 0
	for a, l := range ks.Temp {
		alias := tp.Signals[a].As
		n := 0
		var rec *evRec
		for _, en := range l {
			if en.T.Before(from) || en.T.After(to) {
				continue
			}
			n++
			refs = append(refs, en.Ref)
			count++
			if en.Rec != nil {
				rec = en.Rec
			}
		}
		signals[alias] = n > 0 && n >= rt.temporal.mins[a]
		if rec != nil {
			steps = append(steps, namedRec{alias, rec})
			if last == nil || !rec.Time.Before(last.Time) {
				last = rec
			}
		}
	}
	sortRefs(refs)
	e.fire(&hit{rt: rt, key: ks.key, vals: ks.Vals, steps: steps, evidence: refs,
		agg: map[string]any{"count": count}, signals: signals, last: last, at: at})
	// The events that fired are used up.
	for a, l := range ks.Temp {
		kept := l[:0:0]
		for _, en := range l {
			if en.T.After(to) {
				kept = append(kept, en)
			}
		}
		ks.Temp[a] = kept
	}
	ks.Pending = time.Time{}
	e.touch(ks)
}

func sortRefs(refs []pipeline.EventRef) {
	for i := 1; i < len(refs); i++ {
		for j := i; j > 0 && refLess(refs[j], refs[j-1]); j-- {
			refs[j], refs[j-1] = refs[j-1], refs[j]
		}
	}
}

func refLess(a, b pipeline.EventRef) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	if a.Source != b.Source {
		return a.Source < b.Source
	}
	return a.ID < b.ID
}

// tempTimer decides a pending window at its close.
func (e *Engine) tempTimer(rt *ruleRT, ks *keyState, at time.Time) {
	if ks.Pending.IsZero() || ks.Pending.After(at) {
		return
	}
	w := rt.r.Temporal.Window
	deadline := ks.Pending
	ks.Pending = time.Time{}
	e.touch(ks)
	from := deadline.Add(-w)
	mask, _ := tempMask(ks.Temp, rt.temporal.mins, from, deadline)
	if mask != 0 && rt.temporal.holds[mask] {
		e.tempFire(rt, ks, from, deadline, deadline)
		return
	}
	// Not this window: the earliest events can no longer be part of a
	// match; look at what is left.
	evictBefore(ks.Temp, from.Add(time.Nanosecond))
	_, earliest := tempMask(ks.Temp, nil, time.Time{}, deadline)
	if earliest.IsZero() {
		return
	}
	e.tempEval(rt, ks, earliest, earliest.Add(w), deadline)
}
