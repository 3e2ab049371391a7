package engine

import (
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// sequenceKind: ordered steps within maxspan, per-step within, until, and
// absent steps (a trailing one is decided by a timer).
type sequenceKind struct{ noExtraState }

func (sequenceKind) ruleKind() rule.Kind { return rule.KindSequence }

func (sequenceKind) init(e *Engine, rt *ruleRT, role func([]*rule.Signal, roleKind, int)) {
	if sq := rt.r.Sequence; sq != nil {
		for j := range sq.Steps {
			role(sq.Steps[j].Signals, roleStep, j)
		}
		role(sq.Until, roleUntil, 0)
	}
}

func (sequenceKind) process(e *Engine, rt *ruleRT, key string, vals []string, rh *ruleHits) {
	e.onSequence(rt, key, vals, rh)
}

func (sequenceKind) timer(e *Engine, rt *ruleRT, ks *keyState, at time.Time) { e.seqTimer(rt, ks, at) }

func (sequenceKind) retention(r *rule.Rule) time.Duration {
	s := r.Sequence
	m := s.MaxSpan
	for _, st := range s.Steps {
		if st.Absent {
			m = max(m, s.MaxSpan+st.For)
		}
	}
	return m
}

func (sequenceKind) expired(rt *ruleRT, ks *keyState, now time.Time) bool {
	for _, p := range ks.Parts {
		if p != nil && !rt.seqExpired(p, now) {
			return false
		}
	}
	return true
}

func (sequenceKind) expiresAt(rt *ruleRT, ks *keyState) time.Time {
	at := minTime
	for _, p := range ks.Parts {
		switch {
		case p == nil:
		case !p.Deadline.IsZero():
			return maxTime // its timer decides
		default:
			if t := p.First.Add(rt.r.Sequence.MaxSpan + time.Nanosecond); t.After(at) {
				at = t
			}
		}
	}
	return at
}

func (sequenceKind) storeKind() state.Kind { return state.KindPartial }

func (sequenceKind) loaded(e *Engine, rt *ruleRT, ks *keyState, startup bool) {
	if !startup {
		return
	}
	for _, p := range ks.Parts {
		if p != nil && !p.Deadline.IsZero() {
			e.addTimer(rt, ks.key, p.Deadline)
		}
	}
}

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
