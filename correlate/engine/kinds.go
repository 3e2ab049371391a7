package engine

import (
	"fmt"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// kind is everything the engine does differently per detection kind; each
// kind implements it in its own file (kind_<name>.go) and kindOf is the
// one place that maps a rule.Kind to it. TestEveryKindIsImplemented checks
// that every kind the rule package knows (rule.Kinds) has one.
type kind interface {
	// ruleKind is the rule.Kind implemented.
	ruleKind() rule.Kind
	// init prepares the rule's runtime (e.g. a temporal truth table) and
	// reports the roles its signals play (dispatch).
	init(e *Engine, rt *ruleRT, role func(sigs []*rule.Signal, kind roleKind, step int))
	// process offers the current event's hits on one group key.
	process(e *Engine, rt *ruleRT, key string, vals []string, rh *ruleHits)
	// timer decides what waited for the clock to pass at on a key.
	timer(e *Engine, rt *ruleRT, ks *keyState, at time.Time)
	// retention is how long key state may matter after its last event
	// (before the rule's own retention and the default apply).
	retention(r *rule.Rule) time.Duration
	// expired reports whether a key's state can no longer matter at now
	// (duplicate-delivery ids aside); it must be monotonic in now, and
	// expiresAt is the first time at which it holds (expiry.go).
	expired(rt *ruleRT, ks *keyState, now time.Time) bool
	expiresAt(rt *ruleRT, ks *keyState) time.Time
	// storeKind is the store kind of the key state (persist.go).
	storeKind() state.Kind
	// save and load persist what the kind keeps outside the key state
	// record (the metric baseline).
	save(e *Engine, b pipeline.StateWriter, rt *ruleRT, ks *keyState) error
	load(e *Engine, rt *ruleRT, stale *[][]byte) error
	// fetch reads back what save wrote for one evicted key (get reads
	// from where the key was evicted to).
	fetch(e *Engine, rt *ruleRT, ks *keyState, get func(key []byte) ([]byte, bool, error)) error
	// loaded completes a key state read back from the store; at startup
	// it also re-arms the key's timers (an evicted key's stay armed).
	loaded(e *Engine, rt *ruleRT, ks *keyState, startup bool)
}

// kindOf returns the implementation of a rule kind, nil for none.
func kindOf(k rule.Kind) kind {
	switch k {
	case rule.KindMatch:
		return matchKind{}
	case rule.KindThreshold:
		return thresholdKind{}
	case rule.KindSequence:
		return sequenceKind{}
	case rule.KindTemporal:
		return temporalKind{}
	case rule.KindMetric:
		return metricKind{}
	}
	return nil
}

// noExtraState is the save/load of kinds that keep everything in the key
// state record.
type noExtraState struct{}

func (noExtraState) save(*Engine, pipeline.StateWriter, *ruleRT, *keyState) error { return nil }
func (noExtraState) load(*Engine, *ruleRT, *[][]byte) error                       { return nil }
func (noExtraState) fetch(*Engine, *ruleRT, *keyState, func([]byte) ([]byte, bool, error)) error {
	return nil
}

// noTimers is the timer of kinds that never arm one.
type noTimers struct{}

func (noTimers) timer(*Engine, *ruleRT, *keyState, time.Time) {}

// maxWindowEntries caps the events kept per key in a threshold or temporal
// window; overflow drops the oldest and is counted.
const maxWindowEntries = 10_000

func stepAlias(st *rule.Step, signal string) string {
	if st != nil && st.As != "" {
		return st.As
	}
	return signal
}

func (e *Engine) unknownKind(r *rule.Rule) error {
	return fmt.Errorf("engine: rule %s: kind %s is not implemented", r.ID, r.Kind)
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
