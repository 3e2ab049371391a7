package pipeline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// RunnerOptions configure a Runner.
type RunnerOptions struct {
	Inputs     []Input
	Correlator Correlator
	// Resolver links events to tasks; nil is a fresh one reading links
	// from Store when Store is a ContainerMap.
	Resolver *Resolver
	// Store is where commits go; nil runs without durability (a replay
	// whose state is thrown away).
	Store StateStore
	Sinks []Sink
	// Delivery is the policy of each stream sink by name (retries,
	// backoff, rate limit, batch size, minimum severity); sinks not named
	// get the defaults.
	Delivery map[string]DeliveryPolicy
	// DrainTimeout, for finite runs, is how long to wait at the end for
	// stream sinks to take what is due (0: do not wait; what is left stays
	// in the outbox for the next run).
	DrainTimeout time.Duration
	// ShutdownDrain is how long a run stopped by its context (SIGTERM)
	// waits, after its last commit, for stream sinks to take what is due
	// (0: not at all); the rest stays in the outbox for the next start.
	ShutdownDrain time.Duration
	// Lateness is the allowed lateness per source (DefaultLateness for the
	// rest); IdleAfter is the processing time after which a silent source
	// stops holding the watermark back (0: never, as in replay). An
	// ordered input (OrderedInput) is its own clock: its watermark is its
	// latest event time.
	Lateness        map[Source]time.Duration
	DefaultLateness time.Duration
	IdleAfter       time.Duration
	// ProcessingClock: see Watermarks.ProcessingClock (live mode).
	ProcessingClock bool
	// AdvanceEvery is the event-time step between watermark advances
	// (default 1s). Results do not depend on it; it bounds how much expired
	// state the correlator holds.
	AdvanceEvery time.Duration
	// CommitEvery is the processing time between commits (default 1s).
	// Every commit holds the engine state, resolver links, applied-event
	// ids, input positions and outbox entries, atomically; inputs are
	// acknowledged after it.
	CommitEvery time.Duration
	// End, for finite runs, is the watermark to advance to once every
	// input is exhausted (zero: the latest event time).
	End time.Time
	// DecideAtEnd, for finite runs, has the correlator decide what still
	// waits for later events once End is reached (EndDecider): the input
	// is all there is.
	DecideAtEnd bool
	// MaxApplied bounds the applied-event set (default 2,000,000 events,
	// about 100 MB, with a Store; 262,144 without one, where it only has
	// to catch repeats within one run); past it the oldest are forgotten
	// before the horizon (counted in RunStats.AppliedEvicted): a
	// redelivery of one of those would be applied again.
	MaxApplied int
	// KeepFinal keeps the latest state of every incident for Final (a
	// finite run's report; SinkFinal sinks keep it anyway). A live run
	// leaves it off: it would hold every incident ever raised.
	KeepFinal bool
	// Report, when set, picks the incidents of earlier runs over the same
	// Store that SinkFinal sinks get besides this run's (a replay report of
	// the window it replays); nil gives them all.
	Report func(Incident) bool
	// OnSkip is told of each event not applied (a redelivery, a conflicting
	// reuse of an id, an event older than the horizon); first is the
	// applied event it repeats, when there is one.
	OnSkip func(reason SkipReason, ev *Event, first *Position)
	// Eager (live mode) applies each event, on arrival, to the rules
	// whose result does not depend on event order (single-event matches),
	// when the correlator is an EagerCorrelator and the event's task is
	// already known; the rest waits for the watermark as usual. Such
	// incidents are committed at once when no input has more waiting, and
	// within EagerCommit (default 5ms) otherwise, and reach
	// stream sinks without waiting for the slowest source's lateness. An
	// event whose task is not known yet (a Falco alert ahead of its task's
	// state change) waits in order, so the link still resolves.
	Eager       bool
	EagerCommit time.Duration
	// OnIncidents is told of the incident changes each event (nil: a
	// watermark advance) produced, as they are produced.
	OnIncidents func(ev *Event, incs []Incident)
	// Progress is called after each batch, and about once a second, with
	// the counters so far.
	Progress func(RunStats)
	Logger   *slog.Logger
	Now      func() time.Time // processing time (default time.Now)
}

// OrderedInput is implemented by inputs whose events come in event-time
// order across all their sources (a sorted archive). Their watermark is
// the time of their latest event, whatever the per-source lateness.
type OrderedInput interface {
	Ordered() bool
}

// EagerCorrelator is a Correlator that can apply the order-insensitive
// part of its rules to an event on arrival (see RunnerOptions.Eager).
type EagerCorrelator interface {
	Correlator
	// EagerCandidate reports whether ProcessEager could change anything.
	EagerCandidate(ev *Event) bool
	// ProcessEager applies ev to the order-insensitive rules; Process,
	// given ev later with ev.Eager set, applies the others.
	ProcessEager(ctx context.Context, ev *Event) ([]Incident, error)
}

// LinkLearner is implemented by inputs that give every event's container
// and task links to the Runner's resolver themselves before the first Read
// (a sorted archive learns them while reading everything), so the Runner
// need not learn them again on arrival.
type LinkLearner interface {
	LearnsLinks() bool
}

// SkipReason says why the Runner did not apply an event.
type SkipReason string

const (
	// SkipDuplicate: the same event (source, id and content) was applied
	// before: an at-least-once redelivery, or a rerun over kept state.
	SkipDuplicate SkipReason = "duplicate"
	// SkipConflict: an applied event had the same source and id but other
	// content; the first one applied wins.
	SkipConflict SkipReason = "conflicting_duplicate"
	// SkipTooLate: older than the correlator's horizon behind the
	// watermark; no rule could still use it.
	SkipTooLate SkipReason = "too_late"
)

// RunStats counts what a Runner did.
type RunStats struct {
	Received   int64 // events read from the inputs
	Applied    int64 // events given to the correlator
	Duplicates int64
	Conflicts  int64
	TooLate    int64
	// AppliedEvicted counts applied events forgotten early because the
	// applied-event set was full (RunnerOptions.MaxApplied).
	AppliedEvicted uint64
	// Late counts events that arrived after the watermark had passed them
	// (applied anyway, out of order: the correlator's decisions already
	// taken stand).
	Late int64
	// Unresolved counts runtime and metric events (GuardDuty, Falco,
	// Container Insights) that could not be linked to a task.
	Unresolved map[Source]int64
	Commits    int
	Delivered  int64 // incidents handed to sinks
	First      time.Time
	Last       time.Time
	Watermark  time.Time
	// Newest is the latest event time seen per source.
	Newest   map[Source]time.Time
	Buffered int // events waiting in the reorder buffer
	// Sinks are the delivery counters of the stream sinks when the run
	// ended.
	Sinks map[string]SinkStats
}

// Runner drives the correlator for replay and live mode alike: it reads
// inputs, recognises redeliveries, orders events by event time within the
// allowed lateness, resolves tasks, feeds the correlator, advances the
// watermark, commits state with input positions and the outbox
// atomically, acknowledges inputs after the commit and delivers incidents
// to sinks.
type Runner struct {
	o RunnerOptions
	// preparer is the correlator the input goroutines prepare events for
	// (see Preparer): r.o.Correlator, published to them at each swap.
	preparer atomic.Pointer[Correlator]
	log      *slog.Logger
	res      *Resolver
	wms      *Watermarks
	rb       ReorderBuffer
	seen     *seenSet
	ins      []*inputState
	stats    RunStats

	lastAdv    time.Time // last watermark given to Advance
	step       time.Duration
	horizon    time.Duration
	lastCommit time.Time

	// changes since the last commit, coalesced per incident, in order of
	// first change.
	changes   map[string]Incident
	changeIDs []string
	// untracked: nothing reads changes (no store, no stream sink), so
	// collect keeps none (a replay's hundreds of thousands of incidents).
	untracked bool
	// eager is the correlator's eager side when RunnerOptions.Eager is
	// set; urgent is set when an eager pass changed an incident not yet
	// committed.
	eager EagerCorrelator
	// The correlator's optional interfaces, asserted once.
	doneObs   DoneObserver
	streamAdv StreamAdvancer
	urgent    bool
	swaps     chan swapReq
	// savedNewest is the last committed encoding of the newest event time
	// per source (written again only when it changed).
	savedNewest string
	// started is when Run began reading; live, an input that has given no
	// event yet holds the watermark back for IdleAfter from then.
	started time.Time
	// final holds the latest state of every incident of the run for
	// Final and SinkFinal sinks (with those an earlier, interrupted run
	// left in the outbox); nil when nothing reads it (a live run would
	// otherwise keep every incident forever).
	final *finalSet
	// drainers deliver the outbox to stream sinks (by sink index).
	drainers map[int]*drainer
	outSeq   uint64       // last outbox sequence number
	closed   map[int]bool // sinks already closed
	// stopDrainers stops the drainers and waits for them.
	stopDrainers func()
}

var (
	runnerWatermarkKey = FamilyKey(FamilyRunner, "watermark")
	// runnerNewestKey holds the newest event time per source, so that a
	// restarted live run knows every source before it hears from it.
	runnerNewestKey = FamilyKey(FamilyRunner, "newest")
	outboxSeqKey    = FamilyKey(FamilyRunner, "outbox-seq")
)

// reportKey is where a SinkFinal sink's record of an incident lives.
func reportKey(sink, id string) []byte { return FamilyKey(FamilyReport, sink, id) }

type inputState struct {
	in      Input
	heard   bool   // some event came from it in this run
	learned bool   // the input learns links itself, before ordering
	clock   Source // watermark key of an ordered input ("" otherwise)
	streams StreamedInput
	// streamClocks are the watermark keys of its streams, by name.
	streamClocks map[string]Source
	pending      []*pendingBatch
	done         bool
}

// pendingBatch is a batch read and not yet acknowledged.
type pendingBatch struct {
	ack       AckFunc
	pos       []byte
	remaining int // events not yet applied or skipped
}

// NewRunner checks the options and builds a Runner.
func NewRunner(o RunnerOptions) (*Runner, error) {
	if o.Correlator == nil {
		return nil, errors.New("runner: no correlator")
	}
	if len(o.Inputs) == 0 {
		return nil, errors.New("runner: no inputs")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AdvanceEvery <= 0 {
		o.AdvanceEvery = time.Second
	}
	if o.CommitEvery <= 0 {
		o.CommitEvery = time.Second
	}
	if o.EagerCommit <= 0 {
		o.EagerCommit = 5 * time.Millisecond
	}
	if o.MaxApplied <= 0 {
		o.MaxApplied = 2_000_000
		if o.Store == nil {
			o.MaxApplied = 1 << 18
		}
	}
	r := &Runner{o: o, log: o.Logger, step: o.AdvanceEvery, seen: newSeenSet(o.Store != nil),
		changes: map[string]Incident{}, drainers: map[int]*drainer{}, closed: map[int]bool{}}
	r.stats.Unresolved = map[Source]int64{}
	keep := o.KeepFinal
	for _, s := range o.Sinks {
		keep = keep || s.Mode() == SinkFinal
	}
	if keep {
		r.final = newFinalSet()
	}
	r.doneObs, _ = o.Correlator.(DoneObserver)
	r.streamAdv, _ = o.Correlator.(StreamAdvancer)
	r.seen.max = o.MaxApplied
	r.res = o.Resolver
	if r.res == nil {
		cm, _ := o.Store.(ContainerMap)
		r.res = NewResolver(cm, 0)
	}
	lateness := make(map[Source]time.Duration, len(o.Lateness)+len(o.Inputs))
	for s, d := range o.Lateness {
		lateness[s] = d
	}
	names := map[string]bool{}
	for _, in := range o.Inputs {
		if names[in.Name()] {
			return nil, fmt.Errorf("runner: two inputs named %q", in.Name())
		}
		names[in.Name()] = true
		st := &inputState{in: in}
		if ll, ok := in.(LinkLearner); ok {
			st.learned = ll.LearnsLinks()
		}
		st.streams, _ = in.(StreamedInput)
		if oi, ok := in.(OrderedInput); ok && oi.Ordered() {
			// An ordered input's own progress is its clock: everything
			// strictly before its latest event has arrived.
			st.clock = Source("input:" + in.Name())
			lateness[st.clock] = time.Nanosecond
		}
		r.ins = append(r.ins, st)
	}
	r.wms = NewWatermarks(o.DefaultLateness, lateness, o.IdleAfter)
	r.wms.ProcessingClock = o.ProcessingClock
	r.swaps = make(chan swapReq)
	sinkNames := map[string]bool{}
	for i, s := range o.Sinks {
		if sinkNames[s.Name()] {
			return nil, fmt.Errorf("runner: two sinks named %q", s.Name())
		}
		sinkNames[s.Name()] = true
		if s.Mode() == SinkStream {
			r.drainers[i] = newDrainer(s, o.Delivery[s.Name()], o.Store, o.Logger, o.Now)
		}
	}
	r.untracked = o.Store == nil && len(r.drainers) == 0
	r.horizon = o.Correlator.Horizon()
	if o.Eager {
		r.eager, _ = o.Correlator.(EagerCorrelator)
	}
	return r, nil
}

// Resolver returns the resolver the Runner uses.
func (r *Runner) Resolver() *Resolver { return r.res }

type inputMsg struct {
	idx int
	b   Batch
	ack AckFunc
	err error
}

// Run reads until every input is exhausted (finite inputs) or ctx is done.
// On the way out it commits what was applied; on a finite run's end it
// first decides everything up to End and delivers to SinkFinal sinks.
func (r *Runner) Run(ctx context.Context) (RunStats, error) {
	if err := r.load(ctx); err != nil {
		return r.stats, err
	}
	for _, st := range r.ins {
		var pos []byte
		if r.o.Store != nil {
			v, ok, err := r.o.Store.Get(FamilyKey(FamilyPosition, st.in.Name()))
			if err != nil {
				return r.stats, fmt.Errorf("runner: reading the position of %s: %w", st.in.Name(), err)
			}
			if ok {
				pos = v
			}
		}
		if err := st.in.Open(ctx, pos); err != nil {
			return r.stats, fmt.Errorf("opening input %s: %w", st.in.Name(), err)
		}
	}
	defer func() {
		for _, st := range r.ins {
			if err := st.in.Close(context.WithoutCancel(ctx)); err != nil {
				r.log.Warn("closing input", "input", st.in.Name(), "err", err)
			}
		}
	}()

	// Drainers outlive ctx: on a shutdown they deliver what is due for up
	// to ShutdownDrain before they are stopped.
	dctx, stopDrainers := context.WithCancel(context.WithoutCancel(ctx))
	var drainWG sync.WaitGroup
	for _, d := range r.drainers {
		drainWG.Add(1)
		go func() {
			defer drainWG.Done()
			d.run(dctx)
		}()
	}
	// Drainers stop before sinks are closed.
	r.stopDrainers = func() {
		stopDrainers()
		drainWG.Wait()
	}
	defer r.stopDrainers()

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs := make(chan inputMsg, 2*len(r.ins))
	first := r.o.Correlator // a copy: swap writes the field
	r.preparer.Store(&first)
	for i, st := range r.ins {
		go func() {
			var d xxhash.Digest
			for {
				b, ack, err := st.in.Read(rctx)
				if err == nil {
					for _, ev := range b.Events {
						if !ev.hashed { // a reader that dropped Raw hashed it
							hashContent(&d, ev)
						}
						ev.seenKey, ev.seenKeyed = seenIDOf(&d, ev), true
					}
				}
				if p, ok := (*r.preparer.Load()).(Preparer); ok && err == nil {
					for _, ev := range b.Events {
						p.Prepare(ev)
					}
				}
				select {
				case msgs <- inputMsg{idx: i, b: b, ack: ack, err: err}:
				case <-rctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	period := min(r.o.CommitEvery, time.Second)
	if r.eager != nil {
		period = min(period, r.o.EagerCommit)
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	lastProgress := r.o.Now()
	r.lastCommit = r.o.Now()
	r.started = r.lastCommit
	open := len(r.ins)
	for open > 0 {
		select {
		case <-ctx.Done():
			return r.stats, r.shutdown(ctx, ctx.Err())
		case m := <-msgs:
			if m.err != nil {
				if errors.Is(m.err, io.EOF) {
					r.ins[m.idx].done = true
					open--
					continue
				}
				if ctx.Err() != nil {
					return r.stats, r.shutdown(ctx, ctx.Err())
				}
				err := fmt.Errorf("reading %s: %w", r.ins[m.idx].in.Name(), m.err)
				return r.stats, r.shutdown(ctx, err)
			}
			if err := r.accept(ctx, m); err != nil {
				return r.stats, r.shutdown(ctx, err)
			}
			if err := r.release(ctx, r.watermark(), false); err != nil {
				return r.stats, r.shutdown(ctx, err)
			}
			if r.o.Progress != nil {
				r.o.Progress(r.Stats())
			}
		case req := <-r.swaps:
			if err := r.swap(ctx, req); err != nil {
				return r.stats, r.shutdown(ctx, err)
			}
		case <-tick.C:
			// Idle sources may let the watermark move.
			if err := r.release(ctx, r.watermark(), false); err != nil {
				return r.stats, r.shutdown(ctx, err)
			}
			if now := r.o.Now(); r.o.Progress != nil && now.Sub(lastProgress) >= time.Second {
				lastProgress = now
				r.o.Progress(r.Stats())
			}
		}
		if since := r.o.Now().Sub(r.lastCommit); since >= r.o.CommitEvery || (r.urgent && (since >= r.o.EagerCommit || len(msgs) == 0)) {
			if err := r.commit(ctx); err != nil {
				return r.stats, r.shutdown(ctx, err)
			}
		}
	}
	// Every input is exhausted: everything has arrived.
	if err := r.release(ctx, time.Unix(math.MaxInt64/2, 0), true); err != nil {
		return r.stats, r.shutdown(ctx, err)
	}
	end := r.o.End
	if end.IsZero() {
		end = r.stats.Last
	}
	if !end.IsZero() && end.After(r.lastAdv) {
		if err := r.advance(ctx, end); err != nil {
			return r.stats, r.shutdown(ctx, err)
		}
	}
	if d, ok := r.o.Correlator.(EndDecider); ok && r.o.DecideAtEnd {
		incs, err := d.DecideAtEnd(ctx)
		if err != nil {
			return r.stats, r.shutdown(ctx, fmt.Errorf("deciding the windows open at the end: %w", err))
		}
		r.collect(incs)
		if len(incs) > 0 && r.o.OnIncidents != nil {
			r.o.OnIncidents(nil, incs)
		}
	}
	if err := r.commit(ctx); err != nil {
		return r.stats, r.shutdown(ctx, err)
	}
	if err := r.deliverFinal(ctx); err != nil {
		return r.stats, err
	}
	r.waitDrained(ctx, r.o.DrainTimeout)
	r.stopDrainers()
	r.stats.Sinks = r.SinkStats()
	r.stats.AppliedEvicted = r.seen.evicted
	return r.stats, r.closeSinks(ctx)
}

// clockOf is the watermark clock an event of st moves: the input's own
// when it is ordered, its stream's when it is a StreamedInput, else its
// source's.
func (st *inputState) clockOf(ev *Event) Source {
	if st.clock != "" {
		return st.clock
	}
	if st.streams != nil {
		if name, ok := st.streams.Stream(ev); ok {
			return st.streamClock(name)
		}
	}
	return ev.Source
}

func (st *inputState) streamClock(name string) Source {
	c, ok := st.streamClocks[name]
	if !ok {
		if st.streamClocks == nil {
			st.streamClocks = map[string]Source{}
		}
		c = Source("stream:" + st.in.Name() + "/" + name)
		st.streamClocks[strings.Clone(name)] = c
	}
	return c
}

// shutdown commits what was applied before an early return (cancellation
// or an error), so that acknowledged work is never redone, and reports
// cause.
func (r *Runner) shutdown(ctx context.Context, cause error) error {
	cctx := context.WithoutCancel(ctx)
	if err := r.commit(cctx); err != nil {
		cause = errors.Join(cause, fmt.Errorf("final commit: %w", err))
	}
	for _, st := range r.ins {
		for _, b := range st.pending {
			if b.ack != nil {
				_ = b.ack(cctx, cause)
			}
		}
		st.pending = nil
	}
	if errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		r.waitDrained(cctx, r.o.ShutdownDrain)
	}
	if r.stopDrainers != nil {
		r.stopDrainers()
	}
	r.stats.Sinks = r.SinkStats()
	r.stats.AppliedEvicted = r.seen.evicted
	if err := r.closeSinks(cctx); err != nil {
		cause = errors.Join(cause, err)
	}
	if errors.Is(cause, context.Canceled) && ctx.Err() != nil {
		return ctx.Err()
	}
	return cause
}

func (r *Runner) closeSinks(ctx context.Context) error {
	var errs []error
	for i, s := range r.o.Sinks {
		if r.closed[i] {
			continue
		}
		r.closed[i] = true
		if err := s.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("closing sink %s: %w", s.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// load restores what the Runner itself keeps: applied-event ids and the
// outbox.
func (r *Runner) load(ctx context.Context) error {
	if r.o.Store == nil {
		return nil
	}
	if err := r.seen.load(r.o.Store); err != nil {
		return fmt.Errorf("runner: loading applied events: %w", err)
	}
	if v, ok, err := r.o.Store.Get(runnerWatermarkKey); err != nil {
		return fmt.Errorf("runner: loading the watermark: %w", err)
	} else if ok {
		if err := r.lastAdv.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("runner: loading the watermark: %w", err)
		}
		r.stats.Watermark = r.lastAdv
	}
	if v, ok, err := r.o.Store.Get(runnerNewestKey); err != nil {
		return fmt.Errorf("runner: loading source progress: %w", err)
	} else if ok {
		var m map[Source]time.Time
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("runner: loading source progress: %w", err)
		}
		// Live only (IdleAfter set: a restored source that stays silent
		// goes idle); an ordered input is its own clock and starts afresh.
		now := r.o.Now()
		for s, t := range m {
			if r.o.IdleAfter > 0 && !strings.HasPrefix(string(s), "input:") {
				r.wms.Restore(s, t, now)
			}
		}
		r.savedNewest = string(v)
	}
	if v, ok, err := r.o.Store.Get(outboxSeqKey); err != nil {
		return fmt.Errorf("runner: loading the outbox: %w", err)
	} else if ok && len(v) == 8 {
		r.outSeq = binary.BigEndian.Uint64(v)
	}
	for si, s := range r.o.Sinks {
		if d := r.drainers[si]; d != nil {
			if err := d.load(); err != nil {
				return fmt.Errorf("runner: loading the outbox of %s: %w", s.Name(), err)
			}
			if n := d.pending(); n > 0 {
				r.log.Info("runner: undelivered incidents from an earlier run", "sink", s.Name(), "entries", n)
			}
			continue
		}
		err := r.o.Store.Iterate(FamilyKey(FamilyReport, s.Name(), ""), func(k, v []byte) error {
			var inc Incident
			if err := json.Unmarshal(v, &inc); err != nil {
				return fmt.Errorf("report entry %q: %w", k, err)
			}
			if r.final != nil && (r.o.Report == nil || r.o.Report(inc)) {
				r.final.put(inc)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("runner: loading the report of %s: %w", s.Name(), err)
		}
	}
	return ctx.Err()
}

// accept takes in a batch: links are learned at once (they are facts about
// ids, not about time) and events go into the reorder buffer.
func (r *Runner) accept(ctx context.Context, m inputMsg) error {
	st := r.ins[m.idx]
	ack := m.ack
	if ack == nil {
		ack = NoAck
	}
	pb := &pendingBatch{ack: ack, pos: m.b.Position, remaining: len(m.b.Events)}
	st.pending = append(st.pending, pb)
	now := r.o.Now()
	if len(m.b.Events) > 0 {
		st.heard = true
	}
	if st.streams != nil && st.clock == "" {
		names := st.streams.Streams()
		keep := make(map[Source]bool, len(names))
		for _, name := range names {
			c := st.streamClock(name)
			keep[c] = true
			r.wms.Expect(c, now)
		}
		r.wms.Retain("stream:"+st.in.Name()+"/", keep)
	}
	for _, ev := range m.b.Events {
		r.stats.Received++
		ev.batch = pb
		if !st.learned && ev.Entity.TaskARN != "" && (len(ev.Containers) > 0 || ev.Entity.ContainerID != "") {
			if err := r.res.LearnEvent(ctx, ev, ev.Containers...); err != nil {
				return err
			}
		}
		r.wms.Observe(st.clockOf(ev), ev.Time, now)
		if ev.Received.IsZero() {
			ev.Received = now
		}
		if r.eager != nil {
			if err := r.applyEager(ctx, ev); err != nil {
				return err
			}
		}
		if !r.rb.Push(ev) {
			r.stats.Late++
			if err := r.apply(ctx, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// watermark is the current watermark. Live (IdleAfter set), while an
// input has given no event yet since Run began, and for at most IdleAfter,
// it stays where it was: the watermark only knows the sources it has seen,
// and the first input to deliver must not declare another input's
// backlog late (at start, and after a restart).
func (r *Runner) watermark() time.Time {
	now := r.o.Now()
	if r.o.IdleAfter > 0 && now.Sub(r.started) < r.o.IdleAfter {
		for _, st := range r.ins {
			if !st.heard && !st.done {
				return r.lastAdv
			}
		}
	}
	return r.wms.Current(now)
}

// release applies, in event-time order, every buffered event at or before
// wm, then advances the correlator to wm.
func (r *Runner) release(ctx context.Context, wm time.Time, final bool) error {
	if r.o.IdleAfter > 0 {
		// A long stall here (a correlate instance restoring a partition)
		// is not the sources' silence: their arrivals wait in the
		// input's queue until it ends.
		start := r.o.Now()
		defer func() {
			if d := r.o.Now().Sub(start); d > r.o.IdleAfter/4 {
				r.wms.Pause(d)
			}
		}()
	}
	err := r.rb.Release(wm, func(ev *Event) error {
		// Everything strictly before this event has been applied: the
		// correlator may decide up to just before it. (Exactly what a
		// sorted replay does; results do not depend on the step.)
		if before := ev.Time.Add(-time.Nanosecond); r.lastAdv.IsZero() || before.Sub(r.lastAdv) >= r.step {
			if err := r.advance(ctx, before); err != nil {
				return err
			}
		}
		return r.apply(ctx, ev)
	})
	if err != nil {
		return err
	}
	r.stats.Buffered = r.rb.Len()
	if !final && !r.stats.Last.IsZero() && wm.Sub(r.lastAdv) >= r.step {
		return r.advance(ctx, wm)
	}
	return nil
}

func (r *Runner) advance(ctx context.Context, wm time.Time) error {
	if sa := r.streamAdv; sa != nil {
		m := map[string]time.Time{}
		for _, st := range r.ins {
			for name, c := range st.streamClocks {
				if t, ok := r.wms.Of(c); ok {
					m[st.in.Name()+"/"+name] = t
				}
			}
		}
		sa.StreamWatermarks(m)
	}
	incs, err := r.o.Correlator.Advance(ctx, wm)
	if err != nil {
		return fmt.Errorf("advancing watermark to %s: %w", wm.Format(time.RFC3339Nano), err)
	}
	r.collect(incs)
	if len(incs) > 0 && r.o.OnIncidents != nil {
		r.o.OnIncidents(nil, incs)
	}
	r.lastAdv = wm
	r.stats.Watermark = wm
	return nil
}

// apply gives one event to the correlator unless it was applied before or
// is too old to matter.
func (r *Runner) apply(ctx context.Context, ev *Event) error {
	defer r.done(ev)
	if r.stats.First.IsZero() || ev.Time.Before(r.stats.First) {
		r.stats.First = ev.Time
	}
	if ev.Time.After(r.stats.Last) {
		r.stats.Last = ev.Time
	}
	if !r.lastAdv.IsZero() && ev.Time.Before(r.lastAdv.Add(-r.horizon)) {
		r.stats.TooLate++
		if r.o.OnSkip != nil {
			r.o.OnSkip(SkipTooLate, ev, nil)
		}
		return nil
	}
	// check also records the event as applied.
	if first, conflict := r.seen.check(ev); first != nil {
		reason := SkipDuplicate
		if conflict {
			reason = SkipConflict
			r.stats.Conflicts++
		} else {
			r.stats.Duplicates++
		}
		if r.o.OnSkip != nil {
			r.o.OnSkip(reason, ev, first)
		}
		return nil
	}
	if err := r.res.Resolve(ctx, ev, ev.Containers...); err != nil {
		return fmt.Errorf("resolving task of %s: %w", ev.Pos, err)
	}
	if ev.Entity.TaskARN == "" {
		switch ev.Source {
		case SourceGuardDuty, SourceFalco, SourceContainerInsights:
			r.stats.Unresolved[ev.Source]++
		}
	}
	incs, err := r.o.Correlator.Process(ctx, ev)
	if err != nil {
		return fmt.Errorf("correlating event %s (%s): %w", ev.ID, ev.Pos, err)
	}
	r.collect(incs)
	if len(incs) > 0 && r.o.OnIncidents != nil {
		r.o.OnIncidents(ev, incs)
	}
	r.stats.Applied++
	return nil
}

// applyEager gives ev to the correlator's order-insensitive rules on
// arrival (RunnerOptions.Eager). The applied-event set records this pass
// under its own id, so that a redelivery after a crash between this pass
// and the in-order one skips the first and still runs the second.
func (r *Runner) applyEager(ctx context.Context, ev *Event) error {
	if ev.ID == "" || !r.eager.EagerCandidate(ev) {
		return nil
	}
	if !r.lastAdv.IsZero() && ev.Time.Before(r.lastAdv.Add(-r.horizon)) {
		return nil // the in-order pass counts it too late
	}
	if err := r.res.Resolve(ctx, ev, ev.Containers...); err != nil {
		return fmt.Errorf("resolving task of %s: %w", ev.Pos, err)
	}
	if ev.Entity.TaskARN == "" {
		switch ev.Source {
		case SourceGuardDuty, SourceFalco, SourceContainerInsights:
			return nil // its task may be learned within the lateness: wait in order
		}
	}
	shadow := *ev
	shadow.ID = ev.ID + "\x00eager"
	shadow.batch, shadow.seenKeyed = nil, false
	if first, conflict := r.seen.check(&shadow); first != nil {
		// Applied eagerly before (a redelivery): the in-order pass still
		// runs unless the event is a duplicate there too. A conflicting
		// copy is left to the in-order pass, which reports it.
		ev.Eager = !conflict
		return nil
	}
	incs, err := r.eager.ProcessEager(ctx, ev)
	if err != nil {
		return fmt.Errorf("correlating event %s (%s): %w", ev.ID, ev.Pos, err)
	}
	ev.Eager = true
	if len(incs) > 0 {
		r.urgent = true
		r.collect(incs)
		if r.o.OnIncidents != nil {
			r.o.OnIncidents(ev, incs)
		}
	}
	return nil
}

func (r *Runner) done(ev *Event) {
	if r.doneObs != nil {
		r.doneObs.Done(ev)
	}
	if pb := ev.batch; pb != nil {
		pb.remaining--
		ev.batch = nil
	}
}

func (r *Runner) collect(incs []Incident) {
	for _, inc := range incs {
		if !r.untracked {
			if _, ok := r.changes[inc.ID]; !ok {
				r.changeIDs = append(r.changeIDs, inc.ID)
			}
			r.changes[inc.ID] = inc
		}
		if r.final != nil {
			r.final.put(inc)
		}
	}
}

// commit writes, in one atomic commit, the correlator's and resolver's
// changes, the applied-event ids, the positions of the inputs' fully
// applied batches and the outbox; then acknowledges those batches and
// hands the changes to stream sinks.
func (r *Runner) commit(ctx context.Context) error {
	r.lastCommit = r.o.Now()
	r.urgent = false
	if !r.lastAdv.IsZero() {
		r.seen.prune(r.lastAdv.Add(-r.horizon))
	}
	type acked struct {
		st *inputState
		bs []*pendingBatch
	}
	var acks []acked
	for _, st := range r.ins {
		n := 0
		for n < len(st.pending) && st.pending[n].remaining <= 0 {
			n++
		}
		if n > 0 {
			acks = append(acks, acked{st, st.pending[:n]})
		}
	}
	changes := make([]Incident, 0, len(r.changeIDs))
	for _, id := range r.changeIDs {
		changes = append(changes, r.changes[id])
	}
	// One outbox entry per change and stream sink that takes it.
	entries := map[int][]*OutboxEntry{}
	var all []*OutboxEntry
	now := r.o.Now()
	seq0 := r.outSeq
	for _, inc := range changes {
		for si := range r.o.Sinks {
			d := r.drainers[si]
			if d == nil || !d.accepts(&inc) {
				continue
			}
			r.outSeq++
			e := &OutboxEntry{Seq: r.outSeq, Sink: d.sink.Name(), Incident: inc, Enqueued: now}
			entries[si] = append(entries[si], e)
			all = append(all, e)
		}
	}
	if r.o.Store != nil {
		txn := r.o.Store.Begin()
		if err := r.o.Correlator.CheckpointBatch(ctx, txn); err != nil {
			txn.Cancel()
			return err
		}
		if err := r.res.CheckpointBatch(ctx, txn); err != nil {
			txn.Cancel()
			return err
		}
		r.seen.checkpoint(txn)
		if !r.lastAdv.IsZero() {
			v, err := r.lastAdv.MarshalBinary()
			if err != nil {
				txn.Cancel()
				return fmt.Errorf("encoding the watermark: %w", err)
			}
			txn.Set(runnerWatermarkKey, v, 0)
		}
		var newest []byte
		if nw := r.wms.Newest(); len(nw) > 0 {
			var err error
			if newest, err = json.Marshal(nw); err != nil {
				txn.Cancel()
				return fmt.Errorf("encoding source progress: %w", err)
			}
			if string(newest) != r.savedNewest {
				txn.Set(runnerNewestKey, newest, 0)
			} else {
				newest = nil
			}
		}
		for _, a := range acks {
			for i := len(a.bs) - 1; i >= 0; i-- {
				if a.bs[i].pos != nil {
					txn.Set(FamilyKey(FamilyPosition, a.st.in.Name()), a.bs[i].pos, 0)
					break
				}
			}
		}
		for _, inc := range changes {
			v, err := json.Marshal(inc)
			if err != nil {
				txn.Cancel()
				return fmt.Errorf("encoding incident %s for the report: %w", inc.ID, err)
			}
			for si, s := range r.o.Sinks {
				if r.drainers[si] == nil {
					txn.Set(reportKey(s.Name(), inc.ID), v, 0)
				}
			}
		}
		for _, e := range all {
			v, err := json.Marshal(e)
			if err != nil {
				txn.Cancel()
				return fmt.Errorf("encoding incident %s for the outbox: %w", e.Incident.ID, err)
			}
			txn.Set(outboxKey(e.Sink, e.Seq), v, 0)
		}
		if len(entries) > 0 {
			txn.Set(outboxSeqKey, binary.BigEndian.AppendUint64(nil, r.outSeq), 0)
		}
		if err := txn.Commit(); err != nil {
			r.outSeq = seq0
			return fmt.Errorf("committing state: %w", err)
		}
		if newest != nil {
			r.savedNewest = string(newest)
		}
		if c, ok := r.o.Correlator.(Committed); ok {
			c.Committed()
		}
	}
	r.stats.Commits++
	for _, a := range acks {
		for _, b := range a.bs {
			if err := b.ack(ctx, nil); err != nil {
				r.log.Warn("acknowledging input", "input", a.st.in.Name(), "err", err)
			}
		}
		a.st.pending = slices.Delete(a.st.pending, 0, len(a.bs))
	}
	clear(r.changes)
	r.changeIDs = r.changeIDs[:0]
	for si, es := range entries {
		r.drainers[si].enqueue(es)
	}
	return nil
}

// deliverFinal gives SinkFinal sinks the final state of every incident.
// Their outbox entries stay: for a report they are the state's record of
// its incidents, so that a rerun over the same state (or one after a crash)
// reports them again, identically.
func (r *Runner) deliverFinal(ctx context.Context) error {
	var all []Incident
	for i, s := range r.o.Sinks {
		if s.Mode() != SinkFinal {
			continue
		}
		if all == nil {
			all = r.Final()
		}
		if err := s.Deliver(ctx, all); err != nil {
			return fmt.Errorf("sink %s: %w", s.Name(), err)
		}
		r.closed[i] = true
		if err := s.Close(ctx); err != nil {
			return fmt.Errorf("sink %s: %w", s.Name(), err)
		}
		r.stats.Delivered += int64(len(all))
	}
	return nil
}

// SinkStats returns the delivery counters of each stream sink by name.
func (r *Runner) SinkStats() map[string]SinkStats {
	out := make(map[string]SinkStats, len(r.drainers))
	for _, d := range r.drainers {
		out[d.sink.Name()] = d.Stats()
	}
	return out
}

// waitDrained waits, at most timeout, until no stream sink has entries
// waiting.
func (r *Runner) waitDrained(ctx context.Context, timeout time.Duration) {
	if timeout <= 0 || len(r.drainers) == 0 {
		return
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		left := 0
		for _, d := range r.drainers {
			left += d.pending()
		}
		if left == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stats returns the counters so far.
func (r *Runner) Stats() RunStats {
	r.stats.AppliedEvicted = r.seen.evicted
	s := r.stats
	s.Unresolved = make(map[Source]int64, len(r.stats.Unresolved))
	for k, v := range r.stats.Unresolved {
		s.Unresolved[k] = v
	}
	s.Newest = r.wms.Newest()
	return s
}

type swapReq struct {
	build func(old Correlator) (Correlator, error)
	done  chan error
}

// Swap replaces the correlator while Run runs (a rule reload): at the next
// turn of its loop the Runner commits, then calls build with the current
// correlator; build may close it and return a new one started from the
// store. If build fails, the current one stays (build must leave it
// usable, or rebuild it). Events buffered for ordering go to the new one.
func (r *Runner) Swap(ctx context.Context, build func(old Correlator) (Correlator, error)) error {
	req := swapReq{build: build, done: make(chan error, 1)}
	select {
	case r.swaps <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Runner) swap(ctx context.Context, req swapReq) error {
	if err := r.commit(ctx); err != nil {
		req.done <- err
		return err
	}
	c, err := req.build(r.o.Correlator)
	if err != nil {
		req.done <- err
		return nil
	}
	r.o.Correlator = c
	r.preparer.Store(&c)
	r.horizon = c.Horizon()
	r.doneObs, _ = c.(DoneObserver)
	r.streamAdv, _ = c.(StreamAdvancer)
	r.eager = nil
	if r.o.Eager {
		r.eager, _ = c.(EagerCorrelator)
	}
	req.done <- nil
	return nil
}

// Final returns the latest state of every incident of the run (including
// those an interrupted earlier run left undelivered), ordered by
// SortIncidents. It needs RunnerOptions.KeepFinal or a SinkFinal sink;
// otherwise it returns none. Callers share the slice, which holds until
// an incident changes again: read it, do not change it (copying hundreds
// of thousands of incidents for each caller cost a replay more than
// sorting them).
func (r *Runner) Final() []Incident {
	if r.final == nil {
		return []Incident{}
	}
	return r.final.all()
}
