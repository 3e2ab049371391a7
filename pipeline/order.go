package pipeline

import (
	"container/heap"
	"strings"
	"time"
)

// Watermarks tracks event-time progress per source. The watermark is the
// minimum, over sources that are not idle, of the latest event time seen
// minus that source's allowed lateness: every event at or before it is
// assumed to have arrived. A source that has sent nothing for IdleAfter of
// processing time stops holding the watermark back.
type Watermarks struct {
	// Lateness is the allowed lateness per source; Default applies to
	// sources not listed.
	Lateness  map[Source]time.Duration
	Default   time.Duration
	IdleAfter time.Duration // 0 = sources never go idle (replay)
	// ProcessingClock (live mode): when every source is idle, event time
	// is taken to go on at the pace of processing time from each source's
	// newest event, so that decisions waiting for the absence of an event
	// are still taken while nothing arrives. (Not "now": a live source
	// may be reading old data, which must not all turn too late.)
	ProcessingClock bool

	maxSeen map[Source]time.Time
	lastArr map[Source]time.Time
	last    time.Time // never moves backwards
}

// NewWatermarks returns a tracker with the given default lateness.
func NewWatermarks(def time.Duration, lateness map[Source]time.Duration, idleAfter time.Duration) *Watermarks {
	return &Watermarks{
		Lateness: lateness, Default: def, IdleAfter: idleAfter,
		maxSeen: make(map[Source]time.Time), lastArr: make(map[Source]time.Time),
	}
}

func (w *Watermarks) lateness(s Source) time.Duration {
	if d, ok := w.Lateness[s]; ok {
		return d
	}
	return w.Default
}

// Observe records an event of source s at event time t, arriving at
// processing time now.
func (w *Watermarks) Observe(s Source, t, now time.Time) {
	if t.After(w.maxSeen[s]) {
		w.maxSeen[s] = t
	}
	w.lastArr[s] = now
}

// Of returns source s's own watermark (its newest event time less its
// lateness), or false when s has given nothing yet.
func (w *Watermarks) Of(s Source) (time.Time, bool) {
	t, ok := w.maxSeen[s]
	if !ok || t.IsZero() {
		return time.Time{}, false
	}
	return t.Add(-w.lateness(s)), true
}

// Pause moves every source's last arrival d later: the reader of the
// arrivals was busy for d (a partition's state being restored), and
// what arrived meanwhile is not seen yet, so no source went idle by it.
func (w *Watermarks) Pause(d time.Duration) {
	for s, t := range w.lastArr {
		w.lastArr[s] = t.Add(d)
	}
}

// Restore sets what an earlier run saw of source s: its newest event
// time t, as if it had just arrived at now (so the source holds the
// watermark back until it delivers or goes idle, as after any arrival).
func (w *Watermarks) Restore(s Source, t, now time.Time) {
	if t.After(w.maxSeen[s]) {
		w.maxSeen[s] = t
	}
	if _, ok := w.lastArr[s]; !ok {
		w.lastArr[s] = now
	}
}

// Expect makes s a clock that holds the watermark back, as one that has
// given nothing yet, until an event of s arrives or s goes idle (from
// now); a clock already known is left as it is.
func (w *Watermarks) Expect(s Source, now time.Time) {
	if _, ok := w.lastArr[s]; ok {
		return
	}
	w.maxSeen[s] = time.Time{}
	w.lastArr[s] = now
}

// Retain drops the clocks whose key starts with prefix and is not in keep
// (the streams an input no longer reads: another consumer owns them now).
func (w *Watermarks) Retain(prefix string, keep map[Source]bool) {
	for s := range w.lastArr {
		if strings.HasPrefix(string(s), prefix) && !keep[s] {
			delete(w.lastArr, s)
			delete(w.maxSeen, s)
		}
	}
}

// Newest returns the latest event time seen per source.
func (w *Watermarks) Newest() map[Source]time.Time {
	out := make(map[Source]time.Time, len(w.maxSeen))
	for s, t := range w.maxSeen {
		out[s] = t
	}
	return out
}

// Current returns the watermark at processing time now. It never moves
// backwards; it is the zero time until some source has been seen.
func (w *Watermarks) Current(now time.Time) time.Time {
	var wm time.Time
	first := true
	for s, t := range w.maxSeen {
		if w.IdleAfter > 0 && now.Sub(w.lastArr[s]) > w.IdleAfter {
			continue
		}
		c := t.Add(-w.lateness(s))
		if first || c.Before(wm) {
			wm, first = c, false
		}
	}
	if first {
		// Every source is idle: let the watermark reach the newest event.
		for s, t := range w.maxSeen {
			c := t.Add(-w.lateness(s))
			if w.ProcessingClock {
				c = c.Add(now.Sub(w.lastArr[s]))
			}
			if c.After(wm) {
				wm = c
			}
		}
	}
	if wm.Before(w.last) {
		return w.last
	}
	w.last = wm
	return wm
}

// ReorderBuffer holds events until the watermark passes them and releases
// them in event-time order, so that arrival order within the allowed
// lateness does not change what the engine sees. Events that arrive in
// order (a sorted archive, a quiet stream) go through a FIFO at O(1);
// only the out-of-order ones pay for the heap.
type ReorderBuffer struct {
	fifo     []*Event // in Less order; fifo[head:] is live
	head     int
	h        eventHeap
	released time.Time
	// Late counts events that arrived after the watermark had passed them.
	Late uint64
}

// Push adds an event. It reports false (and counts the event as late) when
// the watermark has already passed the event's time; the caller decides
// whether to process it anyway or dead-letter it.
func (r *ReorderBuffer) Push(ev *Event) bool {
	if !r.released.IsZero() && ev.Time.Before(r.released) {
		r.Late++
		return false
	}
	if n := len(r.fifo); n == r.head || !Less(ev, r.fifo[n-1]) {
		r.fifo = append(r.fifo, ev)
		return true
	}
	heap.Push(&r.h, ev)
	return true
}

// Release calls fn, in order, for every buffered event at or before wm.
func (r *ReorderBuffer) Release(wm time.Time, fn func(*Event) error) error {
	for {
		var ev *Event
		fromFIFO := r.head < len(r.fifo)
		switch {
		case fromFIFO && len(r.h) > 0:
			if Less(r.h[0], r.fifo[r.head]) {
				ev, fromFIFO = r.h[0], false
			} else {
				ev = r.fifo[r.head]
			}
		case fromFIFO:
			ev = r.fifo[r.head]
		case len(r.h) > 0:
			ev = r.h[0]
		}
		if ev == nil || ev.Time.After(wm) {
			break
		}
		if fromFIFO {
			r.fifo[r.head] = nil
			r.head++
		} else {
			heap.Pop(&r.h)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if r.head == len(r.fifo) {
		r.fifo, r.head = r.fifo[:0], 0
	} else if r.head > 1024 && r.head*2 > len(r.fifo) {
		r.fifo = append(r.fifo[:0], r.fifo[r.head:]...)
		r.head = 0
	}
	if wm.After(r.released) {
		r.released = wm
	}
	return nil
}

// Len is the number of buffered events.
func (r *ReorderBuffer) Len() int { return len(r.fifo) - r.head + len(r.h) }

type eventHeap []*Event

func (h eventHeap) Len() int           { return len(h) }
func (h eventHeap) Less(i, j int) bool { return Less(h[i], h[j]) }
func (h eventHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)        { *h = append(*h, x.(*Event)) }
func (h *eventHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return x
}
