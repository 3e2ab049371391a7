package engine

import (
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// leakyPour pours the current event into the key's leaky bucket
// (threshold.leaky), CrowdSec's semantics on event time: the bucket drains
// one event every leakspeed, continuously; an event that would make it
// hold more than capacity overflows it, and the overflow fires with every
// event poured since the bucket was last empty, then empties it. (CrowdSec
// uses a token bucket of burst capacity refilled every leakspeed, which is
// the same thing seen from the free space.)
//
// The level is kept as time to drain (events × leakspeed) so that the
// arithmetic is exact: 6 events 6s apart with leakspeed 30s and capacity 5
// have drained exactly one event by the sixth, which therefore fits.
func (e *Engine) leakyPour(rt *ruleRT, ks *keyState, h *sigHit) {
	th := rt.r.Threshold
	lk := th.Leaky
	t := e.ev.Time
	if !ks.LevelAt.IsZero() && t.After(ks.LevelAt) {
		ks.Level -= t.Sub(ks.LevelAt)
	}
	if t.After(ks.LevelAt) {
		ks.LevelAt = t
	}
	if ks.Level <= 0 {
		// Empty: CrowdSec drops the bucket; its events are gone.
		ks.Level = 0
		ks.Win = ks.Win[:0]
	}
	rec := e.hitRec(h)
	as := stepAlias(&th.Step, rec.Signal)
	j := len(ks.Win)
	for j > 0 && ks.Win[j-1].T.After(t) {
		j--
	}
	ks.Win = append(ks.Win, winEntry{})
	copy(ks.Win[j+1:], ks.Win[j:])
	ks.Win[j] = winEntry{T: t, Ref: rec.ref(as)}
	if len(ks.Win) > maxWindowEntries {
		ks.Win = ks.Win[1:]
		e.stats.rules[rt.idx].winOverflow++
	}
	ks.Level += lk.LeakSpeed
	if t.After(ks.Touch) {
		ks.Touch = t
	}
	e.touch(ks)
	if ks.Level <= time.Duration(lk.Capacity)*lk.LeakSpeed {
		return
	}
	refs := make([]pipeline.EventRef, len(ks.Win))
	for i, w := range ks.Win {
		refs[i] = w.Ref
	}
	agg := map[string]any{"count": len(ks.Win), "value": float64(ks.Level) / float64(lk.LeakSpeed)}
	ks.Win, ks.Level = nil, 0
	e.fire(&hit{rt: rt, key: ks.key, vals: ks.Vals,
		steps: []namedRec{{as, rec}}, evidence: refs, agg: agg,
		signals: map[string]bool{rec.Signal: true}, last: rec, at: t})
}
