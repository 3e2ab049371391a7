package partition

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
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
	restored, torn, changelogRecords                  atomic.Int64
	clw                                               *kafkago.Writer
	// partWM is each partition's own watermark (StreamWatermarks).
	partWM map[int]time.Time
}

type part struct {
	engines map[string]*engine.Engine
	// The offsets whose events are in the state: every one below next,
	// and those in done (at or above next: events are applied in event
	// time order, not offset order). Their events are skipped when read
	// again (a redelivery, or the first reads after a rebuild).
	next int64
	done map[int64]bool
	// With a changelog: what the last marker named, and its epoch.
	marked     int64
	markedDone int
	epoch      uint64
}

// holds reports whether the state holds the event at offset off.
func (pt *part) holds(off int64) bool { return off < pt.next || pt.done[off] }

// mark records that the state holds the event at offset off.
func (pt *part) mark(off int64) {
	switch {
	case off < pt.next:
	case off == pt.next:
		pt.next++
		for pt.done[pt.next] {
			delete(pt.done, pt.next)
			pt.next++
		}
	default:
		if pt.done == nil {
			pt.done = map[int64]bool{}
		}
		pt.done[off] = true
	}
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
	// Changelog, when set, is the compacted changelog topic (changelog.go):
	// partition engines keep their state in Store, namespaced per
	// partition and family, write its changes to the changelog at every
	// commit, and an assigned partition's state is restored from it.
	// Without it, state lives in memory and is rebuilt from the events
	// topic.
	Changelog string
	Store     *state.Store
	Logger    *slog.Logger
}

// RouterStats count what a Router did: events processed, partition
// rebuilds and the events they replayed, events skipped as already in a
// rebuilt state, and events of a family the rules do not have (a tail or
// an ingest with other rules).
type RouterStats struct {
	Events, Rebuilds, Rebuilt, Skipped, UnknownFamily int64
	// Restored counts the keys restored from the changelog, Torn those
	// of a commit that did not finish (repaired), ChangelogRecords the
	// records written.
	Restored, Torn, ChangelogRecords int64
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
	r := &Router{set: set, fams: Derive(set), opts: o, log: o.Logger, horiz: h,
		parts: map[int]*part{}, pending: map[int]int64{}, revoked: map[int]bool{}}
	if o.Changelog != "" {
		if o.Store == nil {
			return nil, errNoChangelog
		}
		r.clw = newChangelogWriter(o.Brokers, o.Changelog, o.TLS)
	}
	return r, nil
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
// here are skipped: the new owner restores or rebuilds its state, and a stale
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
		r.closePart(ctx, p)
	}
}

// closePart closes partition p's engines and forgets its local state
// (the changelog holds it for the next owner).
func (r *Router) closePart(ctx context.Context, p int) {
	if pt := r.parts[p]; pt != nil {
		for _, e := range pt.engines {
			_ = e.Close(ctx)
		}
	}
	delete(r.parts, p)
	if r.clw != nil {
		ns := partitionNS(p, "")
		if err := r.opts.Store.DropPrefix(ns[:len(ns)-1]); err != nil {
			r.log.Warn("dropping a revoked partition's local state", "partition", p, "err", err)
		}
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
	if off >= 0 && pt.holds(off) {
		r.skipped.Add(1) // its effects are in the state already
		return out, nil
	}
	incs, err := r.feed(ctx, p, pt, ev)
	return append(out, incs...), err
}

// Done is the Runner's DoneObserver: the state holds the event's offset
// from now on (applied, or skipped by the Runner).
func (r *Router) Done(ev *pipeline.Event) {
	topic, p, off, _, ok := kafkasrc.ParseRecordPos(ev.Pos.File)
	if !ok || topic != r.opts.Topic {
		return
	}
	if pt := r.parts[p]; pt != nil {
		pt.mark(off)
	}
}

func (r *Router) part(p int) *part {
	pt := r.parts[p]
	if pt == nil {
		pt = &part{engines: map[string]*engine.Engine{}}
		r.parts[p] = pt
	}
	return pt
}

// feed processes ev with the engine of its family in pt (partition p).
func (r *Router) feed(ctx context.Context, p int, pt *part, ev *pipeline.Event) ([]pipeline.Incident, error) {
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
	e, err := r.engine(ctx, p, pt, f)
	if err != nil {
		return nil, err
	}
	return e.Process(ctx, ev)
}

// engine returns partition p's engine for family f, made (with a
// changelog: loading its namespace of the store) the first time.
func (r *Router) engine(ctx context.Context, p int, pt *part, f *Family) (*engine.Engine, error) {
	if e := pt.engines[f.Name]; e != nil {
		return e, nil
	}
	o := r.opts.Engine
	mine := map[*rule.Rule]bool{}
	for _, ru := range f.Rules {
		mine[ru] = true
	}
	o.Only = func(ru *rule.Rule) bool { return mine[ru] }
	var st *state.Store
	if r.clw != nil && p >= 0 {
		st = r.opts.Store.Sub(partitionNS(p, f.Name))
	} else {
		o.Ephemeral = true
	}
	e, err := engine.New(ctx, r.set, st, o)
	if err != nil {
		return nil, err
	}
	// Not advanced here: a restored engine is where its last owner left
	// it, and the partition's events its last owner had read but not
	// applied come next, maybe behind this instance's watermark. The
	// next Advance moves it, no further than the partition's own clock.
	pt.engines[f.Name] = e
	return e, nil
}

// rebuild replaces partition p's engines: restored from the changelog
// when there is one, then fed every retained event of p from what the
// state holds up to offset start, in event-time order. They move on at
// the next Advance.
func (r *Router) rebuild(ctx context.Context, p int, start int64) ([]pipeline.Incident, error) {
	r.closePart(ctx, p)
	pt := &part{engines: map[string]*engine.Engine{}, next: start}
	r.parts[p] = pt
	r.rebuilds.Add(1)
	from := int64(0)
	var out []pipeline.Incident
	if r.clw != nil {
		mk, err := r.restore(ctx, p, pt)
		if err != nil {
			return nil, fmt.Errorf("restoring partition %d of %s from %s: %w", p, r.opts.Topic, r.opts.Changelog, err)
		}
		from = mk.Next
		if start < mk.Next {
			// The consumer offsets lag the changelog (the last owner died
			// between the two): what lies between is in the state.
			pt.next = mk.Next
			for _, o := range mk.Done {
				pt.mark(o)
			}
		}
		pt.marked, pt.markedDone = pt.next, len(pt.done)
		// The last owner may have died with these in its outbox.
		for _, name := range slices.Sorted(maps.Keys(pt.engines)) {
			out = append(out, pt.engines[name].Open()...)
		}
	}
	if start <= from {
		return out, nil
	}
	evs, err := r.history(ctx, p, from, start)
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
	seen := map[string]bool{}
	for _, ev := range evs {
		k := string(ev.Source) + "\x00" + ev.ID + "\x00" + ev.Family
		if seen[k] {
			continue // published twice (an ingest retry)
		}
		seen[k] = true
		incs, err := r.feed(ctx, p, pt, ev)
		if err != nil {
			return nil, err
		}
		out = append(out, incs...)
	}
	// Not advanced here either (see engine): the next Advance decides
	// what waited, after the events read from start that belong before.
	r.rebuilt.Add(int64(len(seen)))
	r.log.Info("partition state rebuilt from the events topic", "topic", r.opts.Topic, "partition", p,
		"events", len(seen), "before_offset", start, "incidents", len(out))
	return out, nil
}

// history reads partition p from offset from (or its earliest retained
// one) to start.
func (r *Router) history(ctx context.Context, p int, from, start int64) ([]*pipeline.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.RebuildTimeout)
	defer cancel()
	rd := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: r.opts.Brokers, Topic: r.opts.Topic, Partition: p,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond,
		Dialer: &kafkago.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: r.opts.TLS},
	})
	defer rd.Close()
	first := int64(kafkago.FirstOffset)
	if from > 0 {
		first = from
	}
	if err := rd.SetOffset(first); err != nil {
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

// StreamWatermarks is the Runner's StreamAdvancer: each partition's own
// watermark, by "input/topic/partition".
func (r *Router) StreamWatermarks(m map[string]time.Time) {
	if r.partWM == nil {
		r.partWM = map[int]time.Time{}
	}
	clear(r.partWM)
	for k, t := range m {
		i := strings.LastIndexByte(k, '/')
		if i < 0 {
			continue
		}
		p, err := strconv.Atoi(k[i+1:])
		if err != nil || !strings.HasSuffix(k[:i], "/"+r.opts.Topic) && k[:i] != r.opts.Topic {
			continue
		}
		r.partWM[p] = t
	}
}

// wmFor is how far partition p's engines may go at the watermark wm: no
// further than p's own clock. Keys never span partitions, so a partition
// behind the others (just moved here, with events its last owner had not
// applied) only holds back itself.
func (r *Router) wmFor(p int, wm time.Time) time.Time {
	if t, ok := r.partWM[p]; ok && t.Before(wm) {
		return t
	}
	return wm
}

// Advance moves every partition engine to the watermark, or to its
// partition's own clock where that is behind.
func (r *Router) Advance(ctx context.Context, wm time.Time) ([]pipeline.Incident, error) {
	r.lastWM = wm
	r.dropRevoked(ctx)
	var out []pipeline.Incident
	for _, p := range slices.Sorted(maps.Keys(r.parts)) {
		pt := r.parts[p]
		pw := r.wmFor(p, wm)
		for _, name := range slices.Sorted(maps.Keys(pt.engines)) {
			incs, err := pt.engines[name].Advance(ctx, pw)
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

// CheckpointBatch, with a changelog, adds every partition engine's changes
// to the Runner's commit, under the partition's namespace, and writes them
// to the changelog (acknowledged by all in-sync replicas) with a marker per
// partition, before the Runner commits and the offsets are committed.
// Without one it writes nothing: state is rebuilt from the events topic.
func (r *Router) CheckpointBatch(ctx context.Context, w pipeline.StateWriter) error {
	if r.clw == nil {
		return nil
	}
	var recs, markers []kafkago.Message
	now := time.Now()
	for _, p := range slices.Sorted(maps.Keys(r.parts)) {
		if p < 0 {
			continue
		}
		pt := r.parts[p]
		n := len(recs)
		epoch := pt.epoch + 1
		ep := strconv.AppendUint(nil, epoch, 10)
		for _, name := range slices.Sorted(maps.Keys(pt.engines)) {
			cw := &changelogWriter{w: w, ns: partitionNS(p, name), p: p, epoch: ep, now: now, out: &recs}
			if err := pt.engines[name].CheckpointBatch(ctx, cw); err != nil {
				return err
			}
		}
		if len(recs) == n && pt.next == pt.marked && len(pt.done) == pt.markedDone {
			continue
		}
		mk := marker{Epoch: epoch, Next: pt.next}
		for o := range pt.done {
			mk.Done = append(mk.Done, o)
		}
		slices.Sort(mk.Done)
		v, err := json.Marshal(mk)
		if err != nil {
			return err
		}
		markers = append(markers, kafkago.Message{Key: markerKey(p), Value: v,
			Headers: []kafkago.Header{{Key: epochHeader, Value: ep}, {Key: tickHeader, Value: []byte(strconv.Itoa(p))}}})
		pt.epoch, pt.marked, pt.markedDone = epoch, pt.next, len(pt.done)
	}
	// The records first, then the markers: a marker is written only
	// once its commit's records are.
	for _, batch := range [][]kafkago.Message{recs, markers} {
		if len(batch) == 0 {
			continue
		}
		if err := r.clw.WriteMessages(ctx, batch...); err != nil {
			return fmt.Errorf("writing the changelog %s: %w", r.opts.Changelog, err)
		}
		r.changelogRecords.Add(int64(len(batch)))
	}
	return nil
}

// Committed tells the partition engines their changes are committed.
func (r *Router) Committed() {
	for _, pt := range r.parts {
		for _, e := range pt.engines {
			e.Committed()
		}
	}
}

// restore loads partition p's state from the changelog into its namespace
// of the store, repairs the keys a commit that did not finish left, makes
// the engines of the families it holds, and returns the last marker: the
// events offsets the state holds.
func (r *Router) restore(ctx context.Context, p int, pt *part) (marker, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.RebuildTimeout)
	defer cancel()
	res, err := readChangelog(ctx, r.opts.Brokers, r.opts.Changelog, p, r.opts.TLS)
	if err != nil {
		return marker{}, err
	}
	now := time.Now()
	b := r.opts.Store.NewBatch()
	families := map[string]bool{}
	prefix := len(partitionNS(p, ""))
	for k, v := range res.keys {
		if v.expires > 0 && v.expires <= now.Unix() {
			continue
		}
		var ttl time.Duration
		if v.expires > 0 {
			ttl = time.Unix(v.expires, 0).Sub(now)
		}
		b.Set([]byte(k), v.val, ttl)
		if i := strings.IndexByte(k[prefix-1:], 0); i > 0 {
			families[k[prefix-1:prefix-1+i]] = true
		}
	}
	if err := b.Commit(); err != nil {
		return marker{}, err
	}
	pt.epoch = res.maxEp
	if len(res.torn) > 0 {
		// Write the torn keys again at their restored version, and a
		// marker, so that compaction never keeps a torn record.
		pt.epoch++
		ep := strconv.AppendUint(nil, pt.epoch, 10)
		hs := []kafkago.Header{{Key: epochHeader, Value: ep}, {Key: tickHeader, Value: []byte(strconv.Itoa(p))}}
		var fix []kafkago.Message
		for _, k := range res.torn {
			m := kafkago.Message{Key: []byte(k), Headers: hs}
			if v, ok := res.keys[k]; ok {
				m.Value = v.val
				if v.expires > 0 {
					m.Headers = append(slices.Clone(hs), kafkago.Header{Key: expiresHeader, Value: strconv.AppendInt(nil, v.expires, 10)})
				}
			}
			fix = append(fix, m)
		}
		if err := r.clw.WriteMessages(ctx, fix...); err != nil {
			return marker{}, fmt.Errorf("repairing the changelog: %w", err)
		}
		mk := res.marker
		mk.Epoch = pt.epoch
		v, _ := json.Marshal(mk)
		if err := r.clw.WriteMessages(ctx, kafkago.Message{Key: markerKey(p), Value: v, Headers: hs}); err != nil {
			return marker{}, fmt.Errorf("repairing the changelog: %w", err)
		}
		r.torn.Add(int64(len(res.torn)))
	}
	for _, name := range slices.Sorted(maps.Keys(families)) {
		if f := r.fams.Get(name); f != nil {
			if _, err := r.engine(ctx, p, pt, f); err != nil {
				return marker{}, err
			}
		}
	}
	r.restored.Add(int64(len(res.keys)))
	r.log.Info("partition state restored from the changelog", "changelog", r.opts.Changelog, "partition", p,
		"keys", len(res.keys), "records", res.records, "torn", len(res.torn), "next_offset", res.marker.Next)
	return res.marker, nil
}

// Stats returns the counts so far. Safe for concurrent use.
func (r *Router) Stats() RouterStats {
	return RouterStats{Events: r.events.Load(), Rebuilds: r.rebuilds.Load(), Rebuilt: r.rebuilt.Load(),
		Skipped: r.skipped.Load(), UnknownFamily: r.unknownFamily.Load(),
		Restored: r.restored.Load(), Torn: r.torn.Load(), ChangelogRecords: r.changelogRecords.Load()}
}

// Close closes every engine.
func (r *Router) Close(ctx context.Context) error {
	var errs []error
	for _, pt := range r.parts {
		for _, e := range pt.engines {
			errs = append(errs, e.Close(ctx))
		}
	}
	if r.clw != nil {
		errs = append(errs, r.clw.Close())
	}
	return errors.Join(errs...)
}
