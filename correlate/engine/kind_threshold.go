package engine

import (
	"fmt"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// thresholdKind: an aggregate over a sliding window of one step's events
// (or a leaky bucket, leaky.go, or windows decided at their close,
// kind_threshold_close.go).
type thresholdKind struct {
	noExtraState
}

func (thresholdKind) timer(e *Engine, rt *ruleRT, ks *keyState, at time.Time) {
	if rt.r.Threshold.Close {
		e.closeTimer(rt, ks, at)
	}
}

func (thresholdKind) ruleKind() rule.Kind { return rule.KindThreshold }

func (thresholdKind) init(e *Engine, rt *ruleRT, role func([]*rule.Signal, roleKind, int)) {
	if th := rt.r.Threshold; th != nil {
		role(th.Step.Signals, roleStep, 0)
	}
}

func (thresholdKind) process(e *Engine, rt *ruleRT, key string, vals []string, rh *ruleHits) {
	e.onThreshold(rt, key, vals, rh)
}

func (thresholdKind) retention(r *rule.Rule) time.Duration { return r.Threshold.Window }

func (thresholdKind) expired(rt *ruleRT, ks *keyState, now time.Time) bool {
	if !ks.Pending.IsZero() {
		return false // a window waits for its close
	}
	return len(ks.Win) == 0 || !ks.Win[len(ks.Win)-1].T.After(now.Add(-rt.r.Threshold.Window))
}

func (thresholdKind) expiresAt(rt *ruleRT, ks *keyState) time.Time {
	if !ks.Pending.IsZero() {
		return maxTime // its timer decides
	}
	if n := len(ks.Win); n > 0 {
		return ks.Win[n-1].T.Add(rt.r.Threshold.Window)
	}
	return minTime
}

func (thresholdKind) storeKind() state.Kind { return state.KindWindow }

func (thresholdKind) loaded(e *Engine, rt *ruleRT, ks *keyState, startup bool) {
	if startup && !ks.Pending.IsZero() {
		e.addTimer(rt, ks.key, ks.Pending)
	}
}

type winEntry struct {
	T   time.Time         `json:"t"`
	V   float64           `json:"v,omitempty"`
	S   string            `json:"s,omitempty"`
	Ref pipeline.EventRef `json:"r"`
	// Rec is kept on the newest entry of a window decided at its close
	// (the incident's last event).
	Rec *evRec `json:"e,omitempty"`
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
	if th.Agg != rule.AggCount && th.Value != nil {
		e.ensureRaw()
		e.env.Fields = sh.hit.fields
		s, f, ok := th.Value(sh.hit.sig, &e.env)
		e.env.Fields = nil
		if !ok {
			return // no usable value: not aggregated, not counted
		}
		ent.S, ent.V = s, f
	} else if th.Agg != rule.AggCount && th.Field != nil {
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
	if th.Close {
		e.closeAdd(rt, ks, sh.hit, ent)
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
