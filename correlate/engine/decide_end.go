package engine

import (
	"container/heap"
	"context"
	"slices"

	"github.com/ecscorr/ecscorr/pipeline"
)

// DecideAtEnd decides, at the end of a finite input (a replay), every
// threshold window that waits for its close: a condition with an upper
// bound or a statistic a later event could undo (Sigma's event_count lt,
// value_percentile, value_avg, a temporal with lte...). Nothing comes
// after the input's last record, so each is decided on the events it
// holds, as its timer would have decided it (the incident's last-seen
// time is the window's end): the answer a SIEM gives when it runs the
// same correlation over the same records as one query. Left open, these
// windows were dropped without a word when the archive ended inside
// them. Windows that wait to see an event not come (a sequence's absent
// last step, a temporal's negated alias) are not decided: "no such event
// for 1h" is not known of an archive that ends ten minutes later. The
// clock does not move (nothing expires or resolves); Stats.DecidedAtEnd
// counts the windows decided (pipeline.EndDecider).
func (e *Engine) DecideAtEnd(ctx context.Context) ([]pipeline.Incident, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.out = nil
	// The decision timers, in (time, rule, key) order, out of the heap;
	// deciding a window arms no other.
	var due []timer
	rest := e.timers[:0:0]
	for _, t := range e.timers {
		if t.inc == "" && e.decidesAtClose(e.rules[t.rule]) {
			due = append(due, t)
		} else {
			rest = append(rest, t)
		}
	}
	e.timers = rest
	heap.Init(&e.timers)
	slices.SortFunc(due, timerCmp)
	due = slices.Compact(due)
	for _, t := range due {
		if err := ctx.Err(); err != nil {
			return e.out, err
		}
		rt := e.rules[t.rule]
		ks := rt.keys[t.key]
		if ks == nil || ks.Pending.IsZero() {
			continue // decided already, or its state is gone
		}
		e.use(ks)
		e.stats.decidedAtEnd++
		rt.kind.timer(e, rt, ks, ks.Pending)
		e.drainDerived()
	}
	e.flushExpiry()
	return e.out, nil
}

// decidesAtClose reports whether rt's timers decide a statistic of a
// window at its close.
func (e *Engine) decidesAtClose(rt *ruleRT) bool {
	return rt.r.Threshold != nil && rt.r.Threshold.Close
}
