package engine

import (
	"slices"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Threshold windows decided at their close (rule.Threshold.Close): a
// condition with an upper bound (lt, lte, eq, neq, a range) or a
// percentile can be undone by a later event, so it cannot fire as soon as
// it holds. A window opens at a key's first event, holds the events in
// [first, first+window), and is decided when the clock passes its end
// (ks.Pending, a timer) or when an event at or after the end arrives; the
// next window opens at the next event. An event earlier than the open
// window's first one (out of order past the reorder buffer) is counted in
// the open window.

// closeAdd adds the current event (ent: its value) to the key's open
// window, deciding a window that has ended first.
func (e *Engine) closeAdd(rt *ruleRT, ks *keyState, h *sigHit, ent winEntry) {
	th := rt.r.Threshold
	t := e.ev.Time
	if !ks.Pending.IsZero() && !t.Before(ks.Pending) {
		e.closeDecide(rt, ks)
	}
	rec := e.hitRec(h)
	ent.T = t
	ent.Ref = rec.ref(stepAlias(&th.Step, rec.Signal))
	ent.Rec = rec
	j := len(ks.Win)
	for j > 0 && ks.Win[j-1].T.After(t) {
		j--
	}
	ks.Win = slices.Insert(ks.Win, j, ent)
	// Only the newest entry keeps its record (the incident's last event).
	for i := range ks.Win[:len(ks.Win)-1] {
		ks.Win[i].Rec = nil
	}
	if len(ks.Win) > maxWindowEntries {
		ks.Win = ks.Win[1:]
		e.stats.rules[rt.idx].winOverflow++
		e.logOnce("window:"+rt.r.ID, "window entry cap reached; oldest events dropped and counted", "rule", rt.r.ID)
	}
	if ks.Pending.IsZero() {
		ks.Pending = t.Add(th.Window)
		e.addTimer(rt, ks.key, ks.Pending)
	}
	if t.After(ks.Touch) {
		ks.Touch = t
	}
	e.touch(ks)
}

// closeTimer decides the key's window once the clock has passed its end.
func (e *Engine) closeTimer(rt *ruleRT, ks *keyState, at time.Time) {
	if ks.Pending.IsZero() || ks.Pending.After(at) {
		return // decided already (a later window has its own timer)
	}
	e.closeDecide(rt, ks)
}

// closeDecide evaluates the aggregate of the key's window, fires when the
// condition holds, and empties the window.
func (e *Engine) closeDecide(rt *ruleRT, ks *keyState) {
	th := rt.r.Threshold
	win, end := ks.Win, ks.Pending
	ks.Win, ks.Pending = nil, time.Time{}
	e.touch(ks)
	if len(win) == 0 {
		return
	}
	agg := map[string]any{"count": len(win)}
	keep := func(winEntry) bool { return true }
	var v float64
	switch th.Agg {
	case rule.AggCount:
		v = float64(len(win))
	case rule.AggDistinct:
		seen := map[string]bool{}
		for _, w := range win {
			seen[w.S] = true
		}
		v = float64(len(seen))
		agg["distinct"] = len(seen)
		if th.DistinctEvidence {
			kept := map[string]bool{}
			keep = func(w winEntry) bool {
				if kept[w.S] {
					return false
				}
				kept[w.S] = true
				return true
			}
		}
	case rule.AggSum, rule.AggAvg:
		var sum float64
		for _, w := range win {
			sum += w.V
		}
		avg := sum / float64(len(win))
		agg["sum"], agg["avg"] = sum, avg
		v = sum
		if th.Agg == rule.AggAvg {
			v = avg
		}
	case rule.AggPercentile:
		// Each distinct value's share of the window's events, in percent;
		// the values whose share satisfies the condition are the finding.
		n := map[string]int{}
		for _, w := range win {
			n[w.S]++
		}
		agg["distinct"] = len(n)
		var match []string
		lowest := -1.0
		for s, c := range n {
			share := 100 * float64(c) / float64(len(win))
			if th.Cmp.Holds(share) {
				match = append(match, s)
				if lowest < 0 || share < lowest {
					lowest = share
				}
			}
		}
		if len(match) == 0 {
			return
		}
		slices.Sort(match)
		agg["values"] = match
		agg["percent"] = lowest
		v = lowest
		keep = func(w winEntry) bool { _, ok := slices.BinarySearch(match, w.S); return ok }
	}
	agg["value"] = v
	if th.Agg != rule.AggPercentile && !th.Cmp.Holds(v) {
		return
	}
	refs := make([]pipeline.EventRef, 0, len(win))
	for _, w := range win {
		if keep(w) {
			refs = append(refs, w.Ref)
		}
	}
	last := win[len(win)-1].Rec
	if last == nil { // a state written before records were kept
		for i := len(win) - 1; i >= 0 && last == nil; i-- {
			last = win[i].Rec
		}
	}
	var steps []namedRec
	signals := map[string]bool{}
	if last != nil {
		as := stepAlias(&th.Step, last.Signal)
		steps = []namedRec{{as, last}}
		signals[last.Signal] = true
	}
	e.fire(&hit{rt: rt, key: ks.key, vals: ks.Vals, steps: steps, evidence: refs, agg: agg,
		signals: signals, last: last, at: end})
}
