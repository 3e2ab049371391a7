package engine

import (
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Chained rules (Sigma correlations over correlations): when a rule with
// a Derived signal fires, the rules that use that signal receive a derived
// hit, an event made of the firing's last (triggering) event, with its
// time, source, type, entity and raw record, and the incident id as its
// id, so outer group-by fields resolve on the triggering record and a
// repeat of the same incident is a duplicate delivery. Derived hits are
// queued while rules run and offered once the current event's dispatch
// (or a timer) is done; chains are acyclic (the loader refuses cycles), so
// draining terminates. Outer rules keep ordinary key state, so persistence
// and the memory budget need nothing more.

type chainState struct {
	queue    []derivedHit
	hits     []sigHit // the derived event's hits, reused
	draining bool
}

type derivedHit struct {
	sig *rule.Signal
	ev  pipeline.Event
}

// chainHit queues the derived hit of a firing rule (id: the incident the
// firing opens or updates) and reports whether the rule is silent: it
// then raises no incident.
func (e *Engine) chainHit(rt *ruleRT, h *hit, oi *openInc, dk, first string) bool {
	r := rt.r
	if r.Derived == nil {
		return r.Silent
	}
	if last := h.last; last != nil {
		id := incidentID(r.ID, dk, first)
		if oi != nil {
			id = oi.Inc.ID
		}
		e.chain.queue = append(e.chain.queue, derivedHit{sig: r.Derived, ev: pipeline.Event{
			ID: id, Source: last.Source, Type: last.Type, Time: last.Time, Severity: r.Severity,
			Entity: last.Entity, Raw: last.Raw,
		}})
	}
	return r.Silent
}

// drainDerived offers every queued derived hit (and those they cause) to
// the rules that use its signal, then restores the current event.
func (e *Engine) drainDerived() {
	if len(e.chain.queue) == 0 || e.chain.draining {
		return
	}
	e.chain.draining = true
	ev, hits, env, rawDone, rawProj, ph, prep := e.ev, e.hits, e.env, e.rawDone, e.rawProj, e.phase, e.prep
	e.hits = e.chain.hits
	e.prep = nil // a derived event's record is not the one prepared
	// Derived hits never went through an eager pass: every rule sees them.
	e.phase = phaseAll
	for i := 0; i < len(e.chain.queue); i++ {
		d := &e.chain.queue[i]
		if len(e.sigRoles[d.sig.Index]) == 0 {
			continue
		}
		e.ev = &d.ev
		e.setEnv(&d.ev)
		e.rawDone, e.rawProj = false, false
		e.hits = append(e.hits[:0], sigHit{sig: d.sig})
		e.stats.sigHits[d.sig.Index]++
		e.dispatch()
		e.flushExpiry()
	}
	e.chain.queue = e.chain.queue[:0]
	e.chain.hits = e.hits[:0]
	e.ev, e.hits, e.env, e.rawDone, e.rawProj, e.phase, e.prep = ev, hits, env, rawDone, rawProj, ph, prep
	e.chain.draining = false
}
