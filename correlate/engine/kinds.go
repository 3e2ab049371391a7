package engine

import (
	"fmt"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// maxWindowEntries caps the events kept per key in a threshold or temporal
// window; overflow drops the oldest and is counted.
const maxWindowEntries = 10_000

func stepAlias(st *rule.Step, signal string) string {
	if st != nil && st.As != "" {
		return st.As
	}
	return signal
}

// stepWhere evaluates a step's optional `where` on the current event.
func (e *Engine) stepWhere(st *rule.Step, h *sigHit) bool {
	if st.Where == nil {
		return true
	}
	e.needRaw()
	e.env.Fields = h.fields
	ok, err := e.runBool(st.Where, &e.env)
	e.env.Fields = nil
	if err != nil {
		e.stats.evalErrors++
		return false
	}
	return ok
}

// ---- match ----

func (e *Engine) onMatch(rt *ruleRT, key string, vals []string, rh *ruleHits) {
	if len(rh.steps) == 0 {
		return
	}
	sh := rh.steps[0]
	st := rt.r.Match
	if !e.stepWhere(st, sh.hit) {
		return
	}
	// Key state only remembers ids here; at the key cap the hit still fires.
	if e.duplicate(rt, e.getKey(rt, key, vals, true)) {
		return
	}
	rec := e.hitRec(sh.hit)
	as := stepAlias(st, rec.Signal)
	e.fire(&hit{rt: rt, key: key, vals: vals,
		steps:    []namedRec{{as, rec}},
		evidence: []pipeline.EventRef{rec.ref(as)},
		agg:      map[string]any{"count": 1},
		signals:  map[string]bool{rec.Signal: true},
		last:     rec, at: rec.Time})
}

// ---- threshold ----

type winEntry struct {
	T   time.Time         `json:"t"`
	V   float64           `json:"v,omitempty"`
	S   string            `json:"s,omitempty"`
	Ref pipeline.EventRef `json:"r"`
}

func (e *Engine) onThreshold(rt *ruleRT, key string, vals []string, rh *ruleHits) {
	if len(rh.steps) == 0 {
		return
	}
	th := rt.r.Threshold
	sh := rh.steps[0]
	if !e.stepWhere(&th.Step, sh.hit) {
		return
	}
	t := e.ev.Time
	var ent winEntry
	if th.Agg != rule.AggCount && th.Field != nil {
		e.needRaw()
		e.env.Fields = sh.hit.fields
		v, err := e.vm.Run(th.Field, &e.env)
		e.env.Fields = nil
		if err != nil {
			e.stats.evalErrors++
			return
		}
		switch th.Agg {
		case rule.AggDistinct:
			if v == nil {
				return // nothing to count as distinct
			}
			ent.S = fmt.Sprint(v)
		default:
			f, ok := rule.ToFloat(v)
			if !ok {
				e.stats.evalErrors++
				return
			}
			ent.V = f
		}
	}
	ks := e.getKey(rt, key, vals, true)
	if ks == nil || e.duplicate(rt, ks) {
		return
	}
	if th.Leaky != nil {
		e.leakyPour(rt, ks, sh.hit)
		return
	}
	rec := e.hitRec(sh.hit)
	as := stepAlias(&th.Step, rec.Signal)
	ent.T = t
	ent.Ref = rec.ref(as)
	// Slide: keep events in (t-window, t].
	cut := t.Add(-th.Window)
	i := 0
	for i < len(ks.Win) && !ks.Win[i].T.After(cut) {
		i++
	}
	if i > 0 {
		ks.Win = append(ks.Win[:0], ks.Win[i:]...)
	}
	if !ent.T.After(cut) {
		return // a late event already outside the window
	}
	// Insert in time order (late events land before newer ones).
	j := len(ks.Win)
	for j > 0 && ks.Win[j-1].T.After(t) {
		j--
	}
	ks.Win = append(ks.Win, winEntry{})
	copy(ks.Win[j+1:], ks.Win[j:])
	ks.Win[j] = ent
	if len(ks.Win) > maxWindowEntries {
		ks.Win = ks.Win[1:]
		e.stats.rules[rt.idx].winOverflow++
		e.logOnce("window:"+rt.r.ID, "window entry cap reached; oldest events dropped and counted", "rule", rt.r.ID)
	}
	if t.After(ks.Touch) {
		ks.Touch = t
	}
	e.touch(ks)

	agg := map[string]any{"count": len(ks.Win)}
	var v float64
	switch th.Agg {
	case rule.AggCount:
		v = float64(len(ks.Win))
	case rule.AggDistinct:
		seen := make(map[string]struct{}, len(ks.Win))
		for _, w := range ks.Win {
			seen[w.S] = struct{}{}
		}
		v = float64(len(seen))
		agg["distinct"] = len(seen)
	case rule.AggSum, rule.AggAvg:
		var sum float64
		for _, w := range ks.Win {
			sum += w.V
		}
		agg["sum"] = sum
		avg := sum / float64(len(ks.Win))
		agg["avg"] = avg
		v = sum
		if th.Agg == rule.AggAvg {
			v = avg
		}
	}
	agg["value"] = v
	if !th.Cmp.Holds(v) {
		return
	}
	refs := make([]pipeline.EventRef, 0, len(ks.Win))
	var kept map[string]struct{}
	if th.Agg == rule.AggDistinct && th.DistinctEvidence {
		kept = make(map[string]struct{}, len(ks.Win))
	}
	for _, w := range ks.Win {
		if kept != nil {
			// One event per distinct value, the earliest (a CrowdSec
			// distinct bucket refuses the repeats).
			if _, dup := kept[w.S]; dup {
				continue
			}
			kept[w.S] = struct{}{}
		}
		refs = append(refs, w.Ref)
	}
	e.fire(&hit{rt: rt, key: key, vals: vals,
		steps: []namedRec{{as, rec}}, evidence: refs, agg: agg,
		signals: map[string]bool{rec.Signal: true}, last: rec, at: t})
	if th.ResetAfterFire {
		ks.Win = nil
	}
}

// ---- sequence ----

// partial is a pending sequence match whose last matched positive step is
// Step, matched Runs times.
type partial struct {
	Step     int       `json:"s"`
	Runs     int       `json:"n"`
	First    time.Time `json:"f"`
	Last     time.Time `json:"l"`
	Recs     []partRec `json:"r"`
	Deadline time.Time `json:"d,omitempty"` // last step absent: fire when the clock passes it
}

type partRec struct {
	As  string `json:"a"`
	Rec *evRec `json:"e"`
}

func minCount(st *rule.Step) int {
	if st.MinCount < 1 {
		return 1
	}
	return st.MinCount
}

// seqExpired: a partial cannot complete any more at now.
func (rt *ruleRT) seqExpired(p *partial, now time.Time) bool {
	if !p.Deadline.IsZero() {
		return false // decided by its timer
	}
	return now.Sub(p.First) > rt.r.Sequence.MaxSpan
}

func (p *partial) clone() *partial {
	c := *p
	c.Recs = append([]partRec(nil), p.Recs...)
	return &c
}

// maxPartialRecs bounds the evidence a partial carries (min_count runs).
const maxPartialRecs = 200

func (e *Engine) onSequence(rt *ruleRT, key string, vals []string, rh *ruleHits) {
	seq := rt.r.Sequence
	n := len(seq.Steps)
	t := e.ev.Time
	starts := false
	for _, s := range rh.steps {
		if s.step == 0 {
			starts = true
		}
	}
	ks := e.getKey(rt, key, vals, starts)
	if ks == nil || e.duplicate(rt, ks) {
		return
	}
	if len(ks.Parts) != n {
		ks.Parts = make([]*partial, n)
	}
	changed := false
	if rh.until {
		for i := range ks.Parts {
			if ks.Parts[i] != nil {
				ks.Parts[i] = nil
				changed = true
			}
		}
	}
	// Drop partials that can no longer complete.
	for i, p := range ks.Parts {
		if p != nil && rt.seqExpired(p, t) {
			ks.Parts[i] = nil
			changed = true
		}
	}
	matched := make([]*sigHit, n)
	for _, s := range rh.steps {
		matched[s.step] = s.hit
	}
	// Absent steps: an event of the absent step cancels partials waiting
	// in front of it.
	for i := 0; i+1 < n; i++ {
		p := ks.Parts[i]
		nx := &seq.Steps[i+1]
		if p == nil || !nx.Absent || matched[i+1] == nil || p.Runs < minCount(&seq.Steps[i]) {
			continue
		}
		if t.Before(p.Last) {
			continue
		}
		if !p.Deadline.IsZero() && t.After(p.Deadline) {
			continue
		}
		if !e.stepWhere(nx, matched[i+1]) {
			continue
		}
		ks.Parts[i] = nil
		changed = true
	}
	// Positive steps, from the last to the first, so that one event moves
	// a partial at most one step.
	for j := n - 1; j >= 0; j-- {
		h := matched[j]
		st := &seq.Steps[j]
		if h == nil || st.Absent {
			continue
		}
		mc := minCount(st)
		if p := ks.Parts[j]; p != nil && p.Runs < mc && p.Deadline.IsZero() {
			// A repeat of a step that needs more runs.
			if t.Before(p.Last) || t.Sub(p.First) > seq.MaxSpan || (st.Within > 0 && t.Sub(p.Last) > st.Within) {
				continue
			}
			if !e.stepWhere(st, h) {
				continue
			}
			rec := e.hitRec(h)
			p.Runs++
			p.Last = t
			if len(p.Recs) < maxPartialRecs {
				p.Recs = append(p.Recs, partRec{stepAlias(st, rec.Signal), rec})
			}
			changed = true
			e.seqAdvanced(rt, ks, key, vals, j)
			continue
		}
		var np *partial
		rec := e.hitRec(h)
		as := stepAlias(st, rec.Signal)
		if j == 0 {
			if !e.stepWhere(st, h) {
				continue
			}
			np = &partial{Step: 0, Runs: 1, First: t, Last: t, Recs: []partRec{{as, rec}}}
		} else {
			prev := j - 1
			if seq.Steps[prev].Absent {
				prev--
			}
			if prev < 0 {
				continue
			}
			src := ks.Parts[prev]
			if src == nil || src.Runs < minCount(&seq.Steps[prev]) || !src.Deadline.IsZero() {
				continue
			}
			if t.Before(src.Last) || t.Sub(src.First) > seq.MaxSpan || (st.Within > 0 && t.Sub(src.Last) > st.Within) {
				continue
			}
			if st.Where != nil && !e.stepWhereSteps(st, h, src) {
				continue
			}
			np = src.clone()
			np.Step, np.Runs, np.Last = j, 1, t
			np.Recs = append(np.Recs, partRec{as, rec})
			ks.Parts[prev] = nil
		}
		changed = true
		if cur := ks.Parts[j]; cur != nil && seq.KeepEarliest {
			continue
		}
		ks.Parts[j] = np
		e.seqAdvanced(rt, ks, key, vals, j)
	}
	if t.After(ks.Touch) {
		ks.Touch = t
	}
	if changed {
		e.touch(ks)
	}
}

// stepWhereSteps evaluates a step's where with the partial's earlier steps
// as `steps`.
func (e *Engine) stepWhereSteps(st *rule.Step, h *sigHit, src *partial) bool {
	e.ensureRaw()
	steps := make(map[string]any, len(src.Recs))
	for _, r := range src.Recs {
		steps[r.As] = r.Rec.stepMap(decodeRaw(r.Rec.Raw))
	}
	e.env.Steps = steps
	e.env.Fields = h.fields
	ok, err := e.runBool(st.Where, &e.env)
	e.env.Fields = nil
	e.env.Steps = nil
	if err != nil {
		e.stats.evalErrors++
		return false
	}
	return ok
}

// seqAdvanced is called when the partial at step j changed: it fires a
// complete match or arms the deadline of a trailing absent step.
func (e *Engine) seqAdvanced(rt *ruleRT, ks *keyState, key string, vals []string, j int) {
	seq := rt.r.Sequence
	p := ks.Parts[j]
	if p == nil || p.Runs < minCount(&seq.Steps[j]) {
		return
	}
	n := len(seq.Steps)
	if j == n-1 {
		ks.Parts[j] = nil
		e.seqFire(rt, key, vals, p, p.Last)
		return
	}
	if j == n-2 && seq.Steps[n-1].Absent {
		p.Deadline = p.Last.Add(seq.Steps[n-1].For)
		e.addTimer(rt, key, p.Deadline)
	}
}

func (e *Engine) seqFire(rt *ruleRT, key string, vals []string, p *partial, at time.Time) {
	steps := make([]namedRec, len(p.Recs))
	refs := make([]pipeline.EventRef, len(p.Recs))
	sig := make(map[string]bool)
	for i, r := range p.Recs {
		steps[i] = namedRec{r.As, r.Rec}
		refs[i] = r.Rec.ref(r.As)
		sig[r.Rec.Signal] = true
	}
	last := p.Recs[len(p.Recs)-1].Rec
	e.fire(&hit{rt: rt, key: key, vals: vals, steps: steps, evidence: refs,
		agg:     map[string]any{"count": len(p.Recs), "for": at.Sub(p.First).String()},
		signals: sig, last: last, at: at})
}

// seqTimer decides trailing absent steps whose deadline has passed.
func (e *Engine) seqTimer(rt *ruleRT, ks *keyState, at time.Time) {
	for i, p := range ks.Parts {
		if p == nil || p.Deadline.IsZero() || p.Deadline.After(at) {
			continue
		}
		ks.Parts[i] = nil
		e.touch(ks)
		e.seqFire(rt, ks.key, ks.Vals, p, p.Deadline)
	}
}
