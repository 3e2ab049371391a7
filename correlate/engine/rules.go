package engine

import (
	"container/heap"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
)

// ruleRT is a rule with its runtime state.
type ruleRT struct {
	idx       int
	r         *rule.Rule
	kind      kind
	keys      map[string]*keyState
	exp       expiryHeap          // keys by expiry (expiry.go)
	open      map[string][]string // group key → open incident ids
	maxEvents int
	maxKeys   int
	ttl       time.Duration // store TTL of key state
	temporal  *temporalTable
	byFields  bool      // a `by` expression reads signal fields: keys per hit
	keyBuf    []keyVals // groupKeys' result, reused (valid until its next call)
	// Read-only maps a match hit shares with every other (onMatch, fire):
	// its agg, its signals by name, and the key of a rule without `by`.
	matchAgg     map[string]any
	matchSignals map[string]map[string]bool
	noKey        map[string]string
}

func newRuleRT(i int, r *rule.Rule, opts Options) *ruleRT {
	rt := &ruleRT{idx: i, r: r, kind: kindOf(r.Kind), keys: make(map[string]*keyState), open: make(map[string][]string)}
	rt.maxEvents = r.MaxEvents
	if rt.maxEvents <= 0 {
		rt.maxEvents = opts.MaxEvidence
	}
	rt.maxKeys = r.MaxKeys
	if rt.maxKeys <= 0 {
		rt.maxKeys = 100_000
	}
	if rt.kind != nil {
		rt.ttl = rt.retention() + opts.Lateness
	}
	for _, kf := range r.By {
		rt.byFields = rt.byFields || kf.ReadsFields
	}
	return rt
}

// retention is how long key state may matter after its last event.
func (rt *ruleRT) retention() time.Duration {
	d := max(rt.r.Retention, rt.kind.retention(rt.r))
	if d <= 0 {
		d = time.Hour
	}
	return d
}

func (rt *ruleRT) setOpen(key string, ids []string) {
	if len(ids) == 0 {
		delete(rt.open, key)
		return
	}
	rt.open[key] = ids
}

// keyState is the state of one rule for one key. Exported fields are
// persisted (JSON); only the fields of the rule's kind are used.
type keyState struct {
	Hash string   `json:"h"`
	Vals []string `json:"k"`
	// Touch is the latest event time seen on the key.
	Touch time.Time `json:"u"`

	// threshold
	Win []winEntry `json:"w,omitempty"`

	// sequence: Parts[i] is the pending partial whose last matched step is i.
	Parts []*partial `json:"p,omitempty"`

	// temporal: events per alias inside the window, and a pending decision.
	Temp    [][]tempEntry `json:"tm,omitempty"`
	Pending time.Time     `json:"pd,omitempty"`

	// metric
	Met *metricState `json:"m,omitempty"`

	// leaky threshold: the level at LevelAt, as the time it takes to drain.
	Level   time.Duration `json:"lv,omitempty"` // in leak time: events × leakspeed
	LevelAt time.Time     `json:"la,omitempty"`

	// Seen: event ids taken in, to drop duplicate deliveries (seen.go).
	Seen []seenRef `json:"sn,omitempty"`
	// seenIx indexes Seen by hash once it is long (a key-less Sigma rule
	// takes thousands of events an hour); rebuilt after a load.
	seenIx map[uint64]struct{}

	key   string
	rt    *ruleRT
	dirty bool
	// expiry heap (expiry.go): place, expiry, queued for a refresh
	hidx   int
	expAt  time.Time
	queued bool
	// memory budget (budget.go): estimated size, LRU links; evicted: only
	// this stub is in memory, read back from the scratch copy (spilled) or
	// from the checkpointed record; spillValid: the scratch copy is
	// current; unsynced: written by a checkpoint not yet Committed.
	size                                   int64
	lprev, lnext                           *keyState
	evicted, spilled, spillValid, unsynced bool
	// onDisk: a checkpoint (or the load) has its record in the store.
	onDisk bool
}

// getKey returns the key's state, creating it if create is set and the
// rule's key cap allows.
func (e *Engine) getKey(rt *ruleRT, key string, vals []string, create bool) *keyState {
	if ks := rt.keys[key]; ks != nil {
		e.use(ks)
		return ks
	}
	if !create {
		return nil
	}
	if len(rt.keys) >= rt.maxKeys {
		// Drop what has already expired before declaring an overflow, so
		// the cap depends on event time and not on when Advance ran.
		e.sweepRule(rt, e.clock)
		if len(rt.keys) >= rt.maxKeys {
			e.stats.rules[rt.idx].keyCap++
			e.logOnce("keycap:"+rt.r.ID, "rule key cap reached; new keys are dropped and counted", "rule", rt.r.ID, "max_keys", rt.maxKeys)
			return nil
		}
	}
	ks := e.addKey(rt, &keyState{Hash: rt.r.Hash, Vals: vals, key: key})
	return ks
}

func (e *Engine) touch(ks *keyState) {
	if !ks.dirty && e.durable { // an ephemeral engine never checkpoints
		ks.dirty = true
		e.dirtyKeys[ks] = struct{}{}
	}
}

// addKey adds a new key state to its rule (in memory).
func (e *Engine) addKey(rt *ruleRT, ks *keyState) *keyState {
	ks.rt, ks.hidx = rt, -1
	rt.keys[ks.key] = ks
	if e.budgeted() {
		e.lru.pushFront(ks)
	}
	e.changed(ks)
	return ks
}

func (e *Engine) dropKey(ks *keyState) {
	delete(ks.rt.keys, ks.key)
	if ks.hidx >= 0 {
		heap.Remove(&ks.rt.exp, ks.hidx)
	}
	e.forgetMem(ks)
	delete(e.dirtyKeys, ks)
	if e.durable {
		e.deadKeys = append(e.deadKeys, keyStoreKey(ks.rt, ks.key))
	}
}

// expired reports whether a key's state can no longer matter at now.
func (e *Engine) expired(rt *ruleRT, ks *keyState, now time.Time) bool {
	e.stats.expiryChecks++
	return rt.expired(ks, now)
}

func (rt *ruleRT) expired(ks *keyState, now time.Time) bool {
	if rt.seenLive(ks, now) {
		return false // a duplicate delivery may still come
	}
	return rt.kind.expired(rt, ks, now)
}

// sweep forgets expired key state and incidents. It only removes what is
// already invisible to later events, so it never changes results.
func (e *Engine) sweep(now time.Time) {
	for _, rt := range e.rules {
		e.sweepRule(rt, now)
	}
	// Expired incidents are dropped first and each key's open list is
	// pruned once after: taking them out of a long list one by one (a
	// key-less rule's key holds every open hit) was quadratic. The expiry
	// heap gives the expired incidents alone: walking every open one at
	// each advance cost a replay seconds once tens of thousands were open
	// (a noisy rule, a 7-day resolve horizon).
	type ruleKey struct {
		rt  *ruleRT
		key string
	}
	var pruned map[ruleKey]int // how many of the key's incidents were dropped
	for len(e.incExp) > 0 && now.After(e.incExp[0].Expire) {
		oi := e.incExp[0]
		rt := e.ruleByID(oi.Rule)
		e.drop(rt, oi)
		if pruned == nil {
			pruned = make(map[ruleKey]int)
		}
		pruned[ruleKey{rt, oi.GroupKey}]++
	}
	for rk, n := range pruned {
		ids := rk.rt.open[rk.key]
		keeps := func(id string) bool {
			oi := e.incidents[id]
			return oi != nil && oi.Rule == rk.rt.r.ID && oi.GroupKey == rk.key
		}
		// A key's incidents mostly expire in the order they opened (the
		// list's): the dropped ones are then its first n, taken off
		// without reading the rest of a long list.
		first := 0
		for first < len(ids) && first < n && !keeps(ids[first]) {
			first++
		}
		clear(ids[:first])
		ids = ids[first:]
		if first < n {
			kept := ids[:0]
			for _, id := range ids {
				if keeps(id) {
					kept = append(kept, id)
				}
			}
			clear(ids[len(kept):])
			ids = kept
		}
		rk.rt.setOpen(rk.key, ids)
	}
}

func (e *Engine) ruleByID(id string) *ruleRT { return e.byID[id] }
