package engine

import (
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// matchKind: every matching event fires (dedup merges repeats). Its key
// state only remembers event ids, for duplicate deliveries.
type matchKind struct {
	noTimers
	noExtraState
}

func (matchKind) ruleKind() rule.Kind { return rule.KindMatch }

func (matchKind) init(e *Engine, rt *ruleRT, role func([]*rule.Signal, roleKind, int)) {
	if m := rt.r.Match; m != nil {
		role(m.Signals, roleStep, 0)
	}
}

func (matchKind) process(e *Engine, rt *ruleRT, key string, vals []string, rh *ruleHits) {
	e.onMatch(rt, key, vals, rh)
}

func (matchKind) retention(*rule.Rule) time.Duration { return 0 }

func (matchKind) expired(*ruleRT, *keyState, time.Time) bool { return true }

func (matchKind) expiresAt(*ruleRT, *keyState) time.Time { return minTime }

func (matchKind) storeKind() state.Kind { return state.KindPartial }

func (matchKind) loaded(*Engine, *ruleRT, *keyState, bool) {}

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
	// agg and signals are never written after the hit (incidents read
	// them): one of each per rule and signal serves every hit.
	if rt.matchAgg == nil {
		rt.matchAgg = map[string]any{"count": 1}
		rt.matchSignals = map[string]map[string]bool{}
	}
	signals := rt.matchSignals[rec.Signal]
	if signals == nil {
		signals = map[string]bool{rec.Signal: true}
		rt.matchSignals[rec.Signal] = signals
	}
	e.fire(&hit{rt: rt, key: key, vals: vals,
		steps:    []namedRec{{as, rec}},
		evidence: []pipeline.EventRef{rec.ref(as)},
		agg:      rt.matchAgg,
		signals:  signals,
		last:     rec, at: rec.Time})
}
