package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Correlator is what the pipeline feeds: the engine in correlate/engine.
// Process receives events in event-time order; Advance moves the
// watermark. Each returned incident is the incident's full current state.
type Correlator interface {
	Process(ctx context.Context, ev *Event) ([]Incident, error)
	Advance(ctx context.Context, watermark time.Time) ([]Incident, error)
}

// ReadFunc produces events in any order; emit may be called from several
// goroutines at once.
type ReadFunc func(ctx context.Context, emit func(*Event) error) error

// Relevance says what replay must keep of an event before ordering it:
// Drop (no signal can match it and it teaches the resolver nothing), Keep
// without the raw record, or Keep with it.
type Relevance int

const (
	Drop Relevance = iota
	KeepNoRaw
	Keep
)

// ReplayOptions configure Replay.
type ReplayOptions struct {
	Since, Until time.Time // zero = unbounded; Until is exclusive
	// Relevant classifies events before they are buffered for ordering;
	// nil keeps everything. Dropping irrelevant events early is what keeps
	// replay fast and small on CloudTrail-heavy archives.
	Relevant func(*Event) Relevance
	Resolver *Resolver // nil = a fresh in-memory resolver
	SortMem  int64     // memory budget of the sorter (default 256 MiB)
	TempDir  string
	// AdvanceEvery is the event-time step between watermark advances
	// (default 1s). The result does not depend on it; it bounds how much
	// expired state the engine holds.
	AdvanceEvery time.Duration
	// OnIncident is called for every incident state change, in order.
	OnIncident func(Incident)
	// Progress is called from time to time with the phase and counters.
	Progress func(ReplayStats)
}

// ReplayStats counts what Replay did.
type ReplayStats struct {
	Phase      string // "reading", "correlating", "done"
	Read       map[Source]int64
	OutOfRange int64 // outside --since/--until
	Dropped    int64 // irrelevant to every rule
	Correlated int64
	// Unresolved counts runtime and metric events (GuardDuty, Falco,
	// Container Insights) that could not be linked to a task.
	Unresolved map[Source]int64
	Spilled    uint64
	Runs       int
	First      time.Time
	Last       time.Time
	Watermark  time.Time
}

// Replay reads all inputs, orders them by event time with bounded memory,
// resolves tasks and feeds the correlator, advancing the watermark as event
// time progresses. It returns the final state of every incident, ordered by
// first_seen, rule and id.
func Replay(ctx context.Context, read ReadFunc, c Correlator, opts ReplayOptions) ([]Incident, ReplayStats, error) {
	st := ReplayStats{Phase: "reading", Read: map[Source]int64{}, Unresolved: map[Source]int64{}}
	res := opts.Resolver
	if res == nil {
		res = NewResolver(nil, 0)
	}
	sorter := &Sorter{MaxBytes: opts.SortMem, Dir: opts.TempDir}
	var mu sync.Mutex
	err := read(ctx, func(ev *Event) error {
		rel := Keep
		if opts.Relevant != nil {
			rel = opts.Relevant(ev)
		}
		// Only events that link containers to a task teach the resolver
		// something that cannot wait for event-time order.
		if ev.Entity.TaskARN != "" && (len(ev.Containers) > 0 || ev.Entity.ContainerID != "") {
			if err := res.LearnEvent(ctx, ev, ev.Containers...); err != nil {
				return err
			}
		}
		mu.Lock()
		defer mu.Unlock()
		st.Read[ev.Source]++
		if (!opts.Since.IsZero() && ev.Time.Before(opts.Since)) || (!opts.Until.IsZero() && !ev.Time.Before(opts.Until)) {
			st.OutOfRange++
			return nil
		}
		switch rel {
		case Drop:
			st.Dropped++
			return nil
		case KeepNoRaw:
			ev.Raw = nil
		}
		if err := sorter.Add(ev); err != nil {
			return err
		}
		if opts.Progress != nil && sorter.seq%65536 == 0 {
			st.Spilled, st.Runs = sorter.Spilled, sorter.Runs()
			opts.Progress(st)
		}
		return nil
	})
	if err != nil {
		return nil, st, fmt.Errorf("reading inputs: %w", err)
	}
	st.Spilled, st.Runs = sorter.Spilled, sorter.Runs()
	st.Phase = "correlating"
	if opts.Progress != nil {
		opts.Progress(st)
	}

	step := opts.AdvanceEvery
	if step <= 0 {
		step = time.Second
	}
	final := map[string]Incident{}
	collect := func(incs []Incident) {
		for _, inc := range incs {
			final[inc.ID] = inc
			if opts.OnIncident != nil {
				opts.OnIncident(inc)
			}
		}
	}
	var advanced time.Time
	err = sorter.Drain(func(ev *Event) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if st.First.IsZero() {
			st.First = ev.Time
		}
		st.Last = ev.Time
		// Everything strictly before this event has been seen: the
		// watermark may move to just before it.
		if advanced.IsZero() || ev.Time.Sub(advanced) >= step {
			wm := ev.Time.Add(-time.Nanosecond)
			incs, err := c.Advance(ctx, wm)
			if err != nil {
				return fmt.Errorf("advancing watermark to %s: %w", wm.Format(time.RFC3339Nano), err)
			}
			collect(incs)
			advanced = ev.Time
			st.Watermark = wm
		}
		if err := res.Resolve(ctx, ev, ev.Containers...); err != nil {
			return fmt.Errorf("resolving task of %s: %w", ev.Pos, err)
		}
		if ev.Entity.TaskARN == "" {
			switch ev.Source {
			case SourceGuardDuty, SourceFalco, SourceContainerInsights:
				st.Unresolved[ev.Source]++
			}
		}
		incs, err := c.Process(ctx, ev)
		if err != nil {
			return fmt.Errorf("correlating event %s (%s): %w", ev.ID, ev.Pos, err)
		}
		collect(incs)
		st.Correlated++
		if opts.Progress != nil && st.Correlated%65536 == 0 {
			opts.Progress(st)
		}
		return nil
	})
	if err != nil {
		return nil, st, err
	}
	// The input is complete: decide everything up to the last event (or
	// the end of the requested range).
	end := st.Last
	if !opts.Until.IsZero() {
		end = opts.Until.Add(-time.Nanosecond)
	}
	if !end.IsZero() {
		incs, err := c.Advance(ctx, end)
		if err != nil {
			return nil, st, fmt.Errorf("advancing watermark to the end: %w", err)
		}
		collect(incs)
		st.Watermark = end
	}
	if err := res.Flush(ctx); err != nil {
		return nil, st, err
	}
	st.Phase = "done"
	out := make([]Incident, 0, len(final))
	for _, inc := range final {
		out = append(out, inc)
	}
	SortIncidents(out)
	return out, st, nil
}

// SortIncidents orders incidents by first_seen, rule, then id.
func SortIncidents(incs []Incident) {
	slices.SortFunc(incs, func(a, b Incident) int {
		if c := a.FirstSeen.Compare(b.FirstSeen); c != 0 {
			return c
		}
		if a.Rule != b.Rule {
			if a.Rule < b.Rule {
				return -1
			}
			return 1
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
}
