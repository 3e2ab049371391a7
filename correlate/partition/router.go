package partition

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
	kafkasrc "github.com/ecscorr/ecscorr/sources/kafka"
)

// Router is the correlate role's correlator. Each event read from the
// events topic goes to the engine of its partition and family, which holds
// only that family's rules and only that partition's keys: the partition
// is the unit of state. Engines keep their state in memory; when a
// partition comes to this instance (Assigned, from the kafka input's
// rebalance), its engines are rebuilt from the partition's retained events
// before the first offset this instance reads (retention must cover the
// longest rule window), then go on with the events read. Incidents
// re-decided by a rebuild have the ids they had (they are deterministic):
// sinks upsert them.
type Router struct {
	set    *rule.Set
	fams   *Families
	opts   RouterOptions
	log    *slog.Logger
	horiz  time.Duration
	parts  map[int]*part
	lastWM time.Time

	mu      sync.Mutex
	pending map[int]int64 // partition → first offset read here, to rebuild before
	revoked map[int]bool  // partitions another instance owns now

	events, rebuilds, rebuilt, skipped, unknownFamily atomic.Int64
}

type part struct {
	engines map[string]*engine.Engine
	floor   int64 // events below it are in the rebuilt state
}

// RouterOptions configure a Router.
type RouterOptions struct {
	Brokers []string
	Topic   string
	// Engine is the options of every partition engine (Ephemeral and Only
	// are set by the Router).
	Engine engine.Options
	// TLS, when set, encrypts the rebuild readers' connections.
	TLS *tls.Config
	// RebuildTimeout bounds the reading of one partition's history
	// (default 5 minutes).
	RebuildTimeout time.Duration
	Logger         *slog.Logger
}

// RouterStats count what a Router did: events processed, partition
// rebuilds and the events they replayed, events skipped as already in a
// rebuilt state, and events of a family the rules do not have (a tail or
// an ingest with other rules).
type RouterStats struct {
	Events, Rebuilds, Rebuilt, Skipped, UnknownFamily int64
}

// NewRouter returns the correlate correlator for the rule set.
func NewRouter(ctx context.Context, set *rule.Set, o RouterOptions) (*Router, error) {
	if o.Topic == "" || len(o.Brokers) == 0 {
		return nil, errors.New("partition: the router needs brokers and a topic")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RebuildTimeout <= 0 {
		o.RebuildTimeout = 5 * time.Minute
	}
	h, err := horizon(ctx, set, o.Engine.Lateness)
	if err != nil {
		return nil, err
	}
	return &Router{set: set, fams: Derive(set), opts: o, log: o.Logger, horiz: h,
		parts: map[int]*part{}, pending: map[int]int64{}, revoked: map[int]bool{}}, nil
}

// Families returns the key families the router expects events for.
func (r *Router) Families() *Families { return r.fams }

// Assigned is the kafka input's OnAssign: partition p of the events topic
// came to this instance and is read from offset start. Its state is
// rebuilt before its first event is processed. Safe for concurrent use.
func (r *Router) Assigned(topic string, p int, start int64) {
	if topic != r.opts.Topic {
		return
	}
	r.mu.Lock()
	r.pending[p] = start
	delete(r.revoked, p)
	r.mu.Unlock()
}

// Revoked is the kafka input's OnRevoke: partition p went to another
// instance. Its engines are dropped, and its events still on their way
// here are skipped: the new owner rebuilds from the topic, and a stale
// engine here could decide differently (an absence it never saw end).
// Safe for concurrent use.
func (r *Router) Revoked(topic string, p int) {
	if topic != r.opts.Topic {
		return
	}
	r.mu.Lock()
	r.revoked[p] = true
	delete(r.pending, p)
	r.mu.Unlock()
}

// dropRevoked closes the engines of revoked partitions.
func (r *Router) dropRevoked(ctx context.Context) {
	r.mu.Lock()
	var gone []int
	for p := range r.revoked {
		if _, ok := r.parts[p]; ok {
			gone = append(gone, p)
		}
	}
	r.mu.Unlock()
	for _, p := range gone {
		for _, e := range r.parts[p].engines {
			_ = e.Close(ctx)
		}
		delete(r.parts, p)
	}
}

// Process feeds ev to its partition's engine for its family.
func (r *Router) Process(ctx context.Context, ev *pipeline.Event) ([]pipeline.Incident, error) {
	r.events.Add(1)
	p, off := -1, int64(-1)
	if topic, pn, o, _, ok := kafkasrc.ParseRecordPos(ev.Pos.File); ok && topic == r.opts.Topic {
		p, off = pn, o
	}
	var out []pipeline.Incident
	if p >= 0 {
		r.mu.Lock()
		start, rebuild := r.pending[p]
		delete(r.pending, p)
		gone := r.revoked[p]
		r.mu.Unlock()
		if gone {
			r.skipped.Add(1)
			r.dropRevoked(ctx)
			return nil, nil
		}
		if rebuild {
			incs, err := r.rebuild(ctx, p, start)
			if err != nil {
				return nil, err
			}
			out = incs
		}
	}
	pt := r.part(p)
	if off >= 0 && off < pt.floor {
		r.skipped.Add(1) // read before the rebuild: its effects are in it
		return out, nil
	}
	incs, err := r.feed(ctx, pt, ev)
	return append(out, incs...), err
}

func (r *Router) part(p int) *part {
	pt := r.parts[p]
	if pt == nil {
		pt = &part{engines: map[string]*engine.Engine{}}
		r.parts[p] = pt
	}
	return pt
}

// feed processes ev with the engine of its family in pt.
func (r *Router) feed(ctx context.Context, pt *part, ev *pipeline.Event) ([]pipeline.Incident, error) {
	if ev.Type == TickType && ev.Family == "" {
		return nil, nil // it moved the Runner's watermark: its work is done
	}
	f := r.fams.Get(ev.Family)
	if f == nil {
		if r.unknownFamily.Add(1) == 1 {
			r.log.Warn("event of a key family these rules do not have: skipped (do ingest and correlate load the same rules?)",
				"family", ev.Family, "event", ev.ID)
		}
		return nil, nil
	}
	e := pt.engines[f.Name]
	if e == nil {
		o := r.opts.Engine
		o.Ephemeral = true
		mine := map[*rule.Rule]bool{}
		for _, ru := range f.Rules {
			mine[ru] = true
		}
		o.Only = func(ru *rule.Rule) bool { return mine[ru] }
		var err error
		if e, err = engine.New(ctx, r.set, nil, o); err != nil {
			return nil, err
		}
		if !r.lastWM.IsZero() {
			if _, err := e.Advance(ctx, r.lastWM); err != nil {
				return nil, err
			}
		}
		pt.engines[f.Name] = e
	}
	return e.Process(ctx, ev)
}

// rebuild replaces partition p's engines with ones fed every retained
// event of p before offset start, in event-time order, and advanced to
// the current watermark.
func (r *Router) rebuild(ctx context.Context, p int, start int64) ([]pipeline.Incident, error) {
	if old := r.parts[p]; old != nil {
		for _, e := range old.engines {
			_ = e.Close(ctx)
		}
	}
	pt := &part{engines: map[string]*engine.Engine{}, floor: start}
	r.parts[p] = pt
	r.rebuilds.Add(1)
	if start <= 0 {
		return nil, nil
	}
	evs, err := r.history(ctx, p, start)
	if err != nil {
		return nil, fmt.Errorf("rebuilding partition %d of %s: %w", p, r.opts.Topic, err)
	}
	slices.SortStableFunc(evs, func(a, b *pipeline.Event) int {
		if pipeline.Less(a, b) {
			return -1
		}
		if pipeline.Less(b, a) {
			return 1
		}
		return 0
	})
	var out []pipeline.Incident
	seen := map[string]bool{}
	for _, ev := range evs {
		k := string(ev.Source) + "\x00" + ev.ID + "\x00" + ev.Family
		if seen[k] {
			continue // published twice (an ingest retry)
		}
		seen[k] = true
		incs, err := r.feed(ctx, pt, ev)
		if err != nil {
			return nil, err
		}
		out = append(out, incs...)
	}
	if !r.lastWM.IsZero() {
		for _, e := range pt.engines {
			incs, err := e.Advance(ctx, r.lastWM)
			if err != nil {
				return nil, err
			}
			out = append(out, incs...)
		}
	}
	r.rebuilt.Add(int64(len(seen)))
	r.log.Info("partition state rebuilt from the events topic", "topic", r.opts.Topic, "partition", p,
		"events", len(seen), "before_offset", start, "incidents", len(out))
	return out, nil
}

// history reads partition p from its earliest retained offset to start.
func (r *Router) history(ctx context.Context, p int, start int64) ([]*pipeline.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.RebuildTimeout)
	defer cancel()
	rd := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: r.opts.Brokers, Topic: r.opts.Topic, Partition: p,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond,
		Dialer: &kafkago.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: r.opts.TLS},
	})
	defer rd.Close()
	if err := rd.SetOffset(kafkago.FirstOffset); err != nil {
		return nil, err
	}
	var evs []*pipeline.Event
	for {
		m, err := rd.FetchMessage(ctx)
		if err != nil {
			return nil, err
		}
		if m.Offset >= start {
			return evs, nil
		}
		ev, err := pipeline.UnmarshalEventJSON(m.Value)
		if err == nil {
			ev.Pos = pipeline.Position{File: kafkasrc.RecordPos(m.Topic, m.Partition, m.Offset)}
			ev.Seq = uint64(m.Offset)
			evs = append(evs, ev)
		}
		if m.Offset == start-1 {
			return evs, nil
		}
	}
}

// Advance moves every partition engine to the watermark.
func (r *Router) Advance(ctx context.Context, wm time.Time) ([]pipeline.Incident, error) {
	r.lastWM = wm
	r.dropRevoked(ctx)
	var out []pipeline.Incident
	for _, p := range slices.Sorted(maps.Keys(r.parts)) {
		pt := r.parts[p]
		for _, name := range slices.Sorted(maps.Keys(pt.engines)) {
			incs, err := pt.engines[name].Advance(ctx, wm)
			if err != nil {
				return nil, err
			}
			out = append(out, incs...)
		}
	}
	return out, nil
}

// Horizon is the rules' (the longest retention plus lateness).
func (r *Router) Horizon() time.Duration { return r.horiz }

// CheckpointBatch writes nothing: partition state is rebuilt from the
// events topic, never restored from the local store.
func (r *Router) CheckpointBatch(context.Context, pipeline.StateWriter) error { return nil }

// Stats returns the counts so far. Safe for concurrent use.
func (r *Router) Stats() RouterStats {
	return RouterStats{Events: r.events.Load(), Rebuilds: r.rebuilds.Load(), Rebuilt: r.rebuilt.Load(),
		Skipped: r.skipped.Load(), UnknownFamily: r.unknownFamily.Load()}
}

// Close closes every engine.
func (r *Router) Close(ctx context.Context) error {
	var errs []error
	for _, pt := range r.parts {
		for _, e := range pt.engines {
			errs = append(errs, e.Close(ctx))
		}
	}
	return errors.Join(errs...)
}
