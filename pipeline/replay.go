package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

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

// ArchiveOptions configure an ArchiveInput.
type ArchiveOptions struct {
	// Name of the input (default "archive").
	Name         string
	Since, Until time.Time // zero = unbounded; Until is exclusive
	// Relevant classifies events before they are buffered for ordering;
	// nil keeps everything. Dropping irrelevant events early is what keeps
	// replay fast and small on CloudTrail-heavy archives.
	Relevant func(*Event) Relevance
	// Learn is told of every event read, before ordering: links between
	// containers and tasks are facts about ids, not about time, so a Falco
	// alert resolves even when its task's state change comes later.
	Learn   func(ctx context.Context, ev *Event) error
	SortMem int64 // memory budget of the sorter (default 256 MiB)
	TempDir string
	// BatchSize is how many events a Read returns (default 1024).
	BatchSize int
	// Progress is called from time to time while reading.
	Progress func(ArchiveStats)
	// Window, when set, decides Since and Until (replacing those fields)
	// once everything has been read, from the newest event time read (zero
	// if none): ranges relative to the end of the input ("its last 24
	// hours") without a second read. The sorted events outside it are
	// dropped as they are handed out and counted in OutOfRange; an error
	// stops the replay before anything is correlated.
	Window func(newest time.Time) (since, until time.Time, err error)
	// NewestFiltered, when set, is the newest event time of the records
	// the reader rejected before emitting them (no rule can match them),
	// so that Window sees the input's true end.
	NewestFiltered func() time.Time
}

// ArchiveStats counts what an ArchiveInput read.
type ArchiveStats struct {
	Read       map[Source]int64
	OutOfRange int64 // outside Since/Until
	Dropped    int64 // irrelevant to every rule
	Spilled    uint64
	Runs       int
}

// ArchiveInput is a finite, ordered Input: Open reads everything (ReadFunc,
// in parallel, in any order), keeps what is relevant and in range, and
// sorts it by event time with bounded memory; Read then hands the events
// out in order. Replay is this input through the same Runner as live mode.
type ArchiveInput struct {
	read  ReadFunc
	o     ArchiveOptions
	stats ArchiveStats
	// out carries sorted batches from the draining goroutine.
	out    chan []*Event
	errc   chan error
	cancel context.CancelFunc
	// newest is the latest event time read (for Window); outside counts
	// the events the window dropped after reading.
	newest  time.Time
	outside atomic.Int64
	// opened is called once Open has decided the window (Replay sets the
	// Runner's End from it).
	opened func()
}

// NewArchiveInput returns an input over what read produces.
func NewArchiveInput(read ReadFunc, o ArchiveOptions) *ArchiveInput {
	if o.Name == "" {
		o.Name = "archive"
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1024
	}
	return &ArchiveInput{read: read, o: o, stats: ArchiveStats{Read: map[Source]int64{}}}
}

func (a *ArchiveInput) Name() string  { return a.o.Name }
func (a *ArchiveInput) Ordered() bool { return true }

// LearnsLinks reports whether Open gives links to a resolver (Learn).
func (a *ArchiveInput) LearnsLinks() bool { return a.o.Learn != nil }

// Stats returns what was read; complete once Open has returned, but for
// the events a Window drops while they are handed out.
func (a *ArchiveInput) Stats() ArchiveStats {
	s := a.stats
	s.OutOfRange += a.outside.Load()
	return s
}

// Open reads and sorts the whole archive. pos is ignored: an archive is
// read again from its start, and the Runner skips the events a previous
// run over the same state applied.
func (a *ArchiveInput) Open(ctx context.Context, _ []byte) error {
	sorter := &Sorter{MaxBytes: a.o.SortMem, Dir: a.o.TempDir}
	var mu sync.Mutex
	err := a.read(ctx, func(ev *Event) error {
		rel := Keep
		if a.o.Relevant != nil {
			rel = a.o.Relevant(ev)
		}
		// Only events that link containers to a task teach the resolver
		// something that cannot wait for event-time order.
		if a.o.Learn != nil && ev.Entity.TaskARN != "" && (len(ev.Containers) > 0 || ev.Entity.ContainerID != "") {
			if err := a.o.Learn(ctx, ev); err != nil {
				return err
			}
		}
		mu.Lock()
		defer mu.Unlock()
		a.stats.Read[ev.Source]++
		if ev.Time.After(a.newest) {
			a.newest = ev.Time
		}
		if (!a.o.Since.IsZero() && ev.Time.Before(a.o.Since)) || (!a.o.Until.IsZero() && !ev.Time.Before(a.o.Until)) {
			a.stats.OutOfRange++
			return nil
		}
		switch rel {
		case Drop:
			a.stats.Dropped++
			return nil
		case KeepNoRaw:
			if !ev.hashed {
				ev.HashContent(ev.Raw)
			}
			ev.Raw = nil
		}
		if err := sorter.Add(ev); err != nil {
			return err
		}
		if a.o.Progress != nil && sorter.seq%65536 == 0 {
			a.stats.Spilled, a.stats.Runs = sorter.Spilled, sorter.Runs()
			a.o.Progress(a.stats)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading inputs: %w", err)
	}
	a.stats.Spilled, a.stats.Runs = sorter.Spilled, sorter.Runs()
	if a.o.NewestFiltered != nil {
		if t := a.o.NewestFiltered(); t.After(a.newest) {
			a.newest = t
		}
	}
	windowed := a.o.Window != nil
	if windowed {
		since, until, err := a.o.Window(a.newest)
		if err != nil {
			return err
		}
		a.o.Since, a.o.Until = since, until
	}
	if a.opened != nil {
		a.opened()
	}
	since, until := a.o.Since, a.o.Until
	ctx, a.cancel = context.WithCancel(ctx)
	a.out = make(chan []*Event, 4)
	a.errc = make(chan error, 1)
	go func() {
		defer close(a.out)
		batch := make([]*Event, 0, a.o.BatchSize)
		err := sorter.Drain(func(ev *Event) error {
			if windowed && ((!since.IsZero() && ev.Time.Before(since)) || (!until.IsZero() && !ev.Time.Before(until))) {
				a.outside.Add(1)
				return nil
			}
			batch = append(batch, ev)
			if len(batch) < a.o.BatchSize {
				return nil
			}
			select {
			case a.out <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			batch = make([]*Event, 0, a.o.BatchSize)
			return nil
		})
		if err == nil && len(batch) > 0 {
			select {
			case a.out <- batch:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		a.errc <- err
	}()
	return nil
}

// Read returns the next events in event-time order, io.EOF at the end.
func (a *ArchiveInput) Read(ctx context.Context) (Batch, AckFunc, error) {
	select {
	case b, ok := <-a.out:
		if ok {
			return Batch{Events: b}, NoAck, nil
		}
		if err := <-a.errc; err != nil {
			a.errc <- err
			return Batch{}, nil, fmt.Errorf("merging sorted events: %w", err)
		}
		a.errc <- nil
		return Batch{}, nil, io.EOF
	case <-ctx.Done():
		return Batch{}, nil, ctx.Err()
	}
}

// Close stops the draining goroutine.
func (a *ArchiveInput) Close(context.Context) error {
	if a.cancel != nil {
		a.cancel()
		for range a.out {
		}
	}
	return nil
}

// ReplayOptions configure Replay.
type ReplayOptions struct {
	Archive  ArchiveOptions
	Resolver *Resolver  // nil = a fresh in-memory resolver
	Store    StateStore // nil = nothing kept
	Sinks    []Sink
	// AdvanceEvery: see RunnerOptions.
	AdvanceEvery time.Duration
	CommitEvery  time.Duration
	DrainTimeout time.Duration
	Delivery     map[string]DeliveryPolicy
	OnSkip       func(reason SkipReason, ev *Event, first *Position)
	Progress     func(ArchiveStats, RunStats)
	Logger       *slog.Logger
}

// Replay reads an archive, orders it by event time and runs it through a
// Runner. It returns the final state of every incident (ordered by
// SortIncidents), what was read and what the Runner did.
func Replay(ctx context.Context, read ReadFunc, c Correlator, o ReplayOptions) ([]Incident, ArchiveStats, RunStats, error) {
	res := o.Resolver
	if res == nil {
		cm, _ := o.Store.(ContainerMap)
		res = NewResolver(cm, 0)
	}
	ao := o.Archive
	ao.Learn = func(ctx context.Context, ev *Event) error { return res.LearnEvent(ctx, ev, ev.Containers...) }
	if o.Progress != nil {
		ao.Progress = func(as ArchiveStats) { o.Progress(as, RunStats{}) }
	}
	in := NewArchiveInput(read, ao)
	var runner *Runner
	ro := RunnerOptions{
		Inputs: []Input{in}, Correlator: c, Resolver: res, Store: o.Store, Sinks: o.Sinks,
		AdvanceEvery: o.AdvanceEvery, CommitEvery: o.CommitEvery, OnSkip: o.OnSkip, Logger: o.Logger,
		DrainTimeout: o.DrainTimeout, Delivery: o.Delivery,
	}
	if !ao.Until.IsZero() {
		ro.End = ao.Until.Add(-time.Nanosecond)
	}
	// A Window is known once Open has read everything; the Runner reads
	// End only after its inputs are exhausted.
	// Without an end, the archive's is its newest record's time, read or
	// filtered out: a window it covers is decided even when no record
	// after it is relevant to a rule (which rules are loaded must not
	// decide an event_count's lt).
	in.opened = func() {
		switch {
		case ao.Window != nil && !in.o.Until.IsZero():
			runner.o.End = in.o.Until.Add(-time.Nanosecond)
		case runner.o.End.IsZero() && !in.newest.IsZero():
			runner.o.End = in.newest
		}
	}
	// A replay over kept state reports the incidents of its window that
	// earlier runs (or an interrupted one) produced, too.
	ro.Report = func(inc Incident) bool {
		since, until := in.o.Since, in.o.Until
		last := inc.LastSeen
		if inc.ResolvedAt != nil && inc.ResolvedAt.After(last) {
			last = *inc.ResolvedAt
		}
		return (since.IsZero() || !last.Before(since)) && (until.IsZero() || inc.FirstSeen.Before(until))
	}
	if o.Progress != nil {
		// Every batch: the Runner has built rs already, and the caller
		// throttles what it draws.
		ro.Progress = func(rs RunStats) { o.Progress(in.Stats(), rs) }
	}
	ro.KeepFinal = true
	ro.DecideAtEnd = true
	runner, err := NewRunner(ro)
	if err != nil {
		return nil, in.Stats(), RunStats{}, err
	}
	rs, err := runner.Run(ctx)
	if err != nil {
		return nil, in.Stats(), rs, err
	}
	return runner.Final(), in.Stats(), rs, nil
}

// SortIncidents orders incidents by first_seen, rule, then id.
func SortIncidents(incs []Incident) {
	// The keys are sorted, not the incidents (hundreds of bytes each, a
	// replay's hundreds of thousands copied at every comparison and swap);
	// then each incident moves once.
	keys := make([]incidentKey, len(incs))
	for i := range incs {
		keys[i] = keyOf(&incs[i], i)
	}
	sortIncidentKeys(keys)
	// Position j takes the incident at keys[j].at, one cycle at a time.
	done := make([]bool, len(keys))
	for i := range keys {
		if done[i] {
			continue
		}
		tmp := incs[i]
		for j := i; ; {
			done[j] = true
			src := keys[j].at
			if src == i {
				incs[j] = tmp
				break
			}
			incs[j] = incs[src]
			j = src
		}
	}
}

// incidentKey is what SortIncidents orders an incident by, and where the
// incident is.
type incidentKey struct {
	first    time.Time
	rule, id string
	at       int
}

func keyOf(inc *Incident, at int) incidentKey {
	return incidentKey{inc.FirstSeen, inc.Rule, inc.ID, at}
}

func sortIncidentKeys(keys []incidentKey) {
	slices.SortFunc(keys, func(a, b incidentKey) int {
		if c := a.first.Compare(b.first); c != 0 {
			return c
		}
		if c := strings.Compare(a.rule, b.rule); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
}
