package engine

import (
	"encoding/json"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/ecscorr/ecscorr/pipeline"
)

// seenRef records one event a rule key has taken in, so that a second
// delivery of the same event (same source and id: CloudTrail through
// EventBridge/SQS is at-least-once) is ignored. It is kept per key for the
// rule's retention only, so the memory is bounded like the key's window.
// The event is remembered by a 64-bit hash of its source and id, not the
// id itself: a metric key takes an event a minute, and the ids were most
// of its state, in memory and in the store.
type seenRef struct {
	H uint64    `json:"h"`
	T time.Time `json:"t"`
}

// seenHash identifies an event (source and id) in a seenRef.
func seenHash(src pipeline.Source, id string) uint64 {
	d := xxhash.New()
	d.WriteString(string(src))
	d.Write([]byte{0})
	d.WriteString(id)
	return d.Sum64()
}

// UnmarshalJSON also reads the form state was written in before the hash
// ({"s": source, "i": id, "t": time}).
func (r *seenRef) UnmarshalJSON(b []byte) error {
	var v struct {
		H uint64          `json:"h"`
		S pipeline.Source `json:"s"`
		I string          `json:"i"`
		T time.Time       `json:"t"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.H, r.T = v.H, v.T
	if v.I != "" {
		r.H = seenHash(v.S, v.I)
	}
	return nil
}

// maxSeen caps the ids remembered per key; overflow forgets the oldest
// (counted as a window overflow).
const maxSeen = maxWindowEntries

// duplicate reports whether the current event was already taken in by the
// key, and otherwise remembers it. Events without an id are never
// duplicates. Ids older than the rule's retention (relative to the
// current event) are forgotten first.
func (e *Engine) duplicate(rt *ruleRT, ks *keyState) bool {
	ev := e.ev
	if ev == nil || ev.ID == "" || ks == nil {
		return false
	}
	cut := ev.Time.Add(-rt.retention())
	i := 0
	for i < len(ks.Seen) && ks.Seen[i].T.Before(cut) {
		if ks.seenIx != nil {
			delete(ks.seenIx, ks.Seen[i].H)
		}
		i++
	}
	if i > 0 {
		// A reslice, not a copy: append reallocates (and drops the
		// front) when the capacity runs out.
		ks.Seen = ks.Seen[i:]
	}
	h := seenHash(ev.Source, ev.ID)
	if ks.seenIx == nil && len(ks.Seen) >= seenIndexAt {
		ks.seenIx = make(map[uint64]struct{}, 2*len(ks.Seen))
		for _, s := range ks.Seen {
			ks.seenIx[s.H] = struct{}{}
		}
	}
	dup := false
	if ks.seenIx != nil {
		_, dup = ks.seenIx[h]
	} else {
		for _, s := range ks.Seen {
			if s.H == h {
				dup = true
				break
			}
		}
	}
	if dup {
		e.stats.rules[rt.idx].duplicates++
		return true
	}
	// Keep time order (late events land before newer ones) so that the
	// eviction above stays a prefix cut.
	j := len(ks.Seen)
	for j > 0 && ks.Seen[j-1].T.After(ev.Time) {
		j--
	}
	ks.Seen = append(ks.Seen, seenRef{})
	copy(ks.Seen[j+1:], ks.Seen[j:])
	ks.Seen[j] = seenRef{H: h, T: ev.Time}
	if ks.seenIx != nil {
		ks.seenIx[h] = struct{}{}
	}
	if len(ks.Seen) > maxSeen {
		if ks.seenIx != nil {
			delete(ks.seenIx, ks.Seen[0].H)
		}
		ks.Seen = ks.Seen[1:]
		e.stats.rules[rt.idx].winOverflow++
	}
	e.touch(ks)
	return false
}

// seenIndexAt is the length from which Seen is searched through an index.
const seenIndexAt = 64

// seenLive reports whether the key still remembers ids that matter at now.
func (rt *ruleRT) seenLive(ks *keyState, now time.Time) bool {
	return len(ks.Seen) > 0 && !ks.Seen[len(ks.Seen)-1].T.Before(now.Add(-rt.retention()))
}
