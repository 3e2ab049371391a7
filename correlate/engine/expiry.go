package engine

import (
	"container/heap"
	"time"
)

// Each rule keeps its keys in a min-heap by expiresAt, so that the key cap
// and the sweep find the expired keys in O(log n) each instead of scanning
// every key (which made a rule past its cap quadratic). A key's heap place
// is refreshed after every event or timer that touched it (e.changed), and
// before the cap looks at the heap, so it always holds the key's current
// expiry.

var (
	// minTime and maxTime stand for "already expired" and "never by time
	// alone" (a pending timer decides): far outside any event time.
	minTime = time.Unix(-1<<40, 0).UTC()
	maxTime = time.Unix(1<<40, 0).UTC()
)

// expiresAt is the earliest time at which rt.expired(ks, t) holds, for the
// key's current state (expired is monotonic in t).
func (rt *ruleRT) expiresAt(ks *keyState) time.Time {
	at := minTime
	later := func(t time.Time) {
		if t.After(at) {
			at = t
		}
	}
	if n := len(ks.Seen); n > 0 {
		later(ks.Seen[n-1].T.Add(rt.retention() + time.Nanosecond))
	}
	later(rt.kind.expiresAt(rt, ks))
	return at
}

// expiryHeap orders a rule's keys by expiry; keyState.hidx is the place.
type expiryHeap []*keyState

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expAt.Before(h[j].expAt) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}
func (h *expiryHeap) Push(x any) {
	ks := x.(*keyState)
	ks.hidx = len(*h)
	*h = append(*h, ks)
}
func (h *expiryHeap) Pop() any {
	old := *h
	ks := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	ks.hidx = -1
	return ks
}

// changed queues a key whose state an event or a timer may change; its
// expiry is recomputed by flushExpiry.
func (e *Engine) changed(ks *keyState) {
	if !ks.queued {
		ks.queued = true
		e.changedKeys = append(e.changedKeys, ks)
	}
}

// flushExpiry puts every queued key at its current place in its rule's heap.
func (e *Engine) flushExpiry() {
	for i, ks := range e.changedKeys {
		e.changedKeys[i] = nil
		ks.queued = false
		rt := ks.rt
		if rt.keys[ks.key] != ks {
			continue // dropped meanwhile
		}
		ks.expAt = rt.expiresAt(ks)
		e.account(ks)
		if ks.hidx < 0 {
			heap.Push(&rt.exp, ks)
		} else {
			heap.Fix(&rt.exp, ks.hidx)
		}
	}
	e.changedKeys = e.changedKeys[:0]
}

// sweepRule forgets the keys of a rule that have expired at now.
func (e *Engine) sweepRule(rt *ruleRT, now time.Time) {
	e.flushExpiry()
	for len(rt.exp) > 0 && !rt.exp[0].expAt.After(now) {
		ks := rt.exp[0]
		// An evicted key has not changed since its expiry was computed.
		if ks.evicted || e.expired(rt, ks, now) {
			e.dropKey(ks)
			continue
		}
		// Not expired yet (expiresAt is exact, so this is only a guard):
		// look again once the clock has moved.
		ks.expAt = now.Add(time.Nanosecond)
		heap.Fix(&rt.exp, 0)
	}
}
