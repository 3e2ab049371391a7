package partition

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Publisher is the ingest role's correlator: for every event, each family
// it feeds gets a copy on the events topic, keyed by family and key (so
// Kafka's default partitioner, murmur2, puts every event of one key in one
// partition), with Event.Family set. Copies wait in memory until the
// Runner's commit (CheckpointBatch), which writes them, acknowledged by
// every in-sync replica, before the sources' positions are stored: an
// event is published at least once, and a copy published twice is applied
// once (the correlate Runner's seen set keys by id and family).
type Publisher struct {
	set     *rule.Set
	fams    *Families
	w       *kafkago.Writer
	horizon time.Duration
	pending []kafkago.Message
	brokers []string
	dialer  *kafkago.Dialer
	// Ticks: the sources seen, the last watermark ticked, the partitions.
	sources  map[pipeline.Source]bool
	lastTick time.Time
	tickedAt time.Time // processing time of the last round
	parts    int
	partsAt  time.Time

	events, copies, bytes, dropped, ticks atomic.Int64
}

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	Brokers []string
	Topic   string
	// Horizon is what the Runner is told events stay relevant for
	// (0: the rules', the longest retention plus lateness, as the
	// correlate instances have it: an event older than that is too late
	// there too).
	Horizon time.Duration
	// Lateness is added to the rules' retention for the default Horizon.
	Lateness time.Duration
	// TLS, when set, encrypts the connections (MSK: &tls.Config{}).
	TLS *tls.Config
}

// NewPublisher returns the ingest correlator for the rule set.
func NewPublisher(set *rule.Set, o PublisherOptions) (*Publisher, error) {
	if len(o.Brokers) == 0 || o.Topic == "" {
		return nil, errors.New("partition: the publisher needs brokers and a topic")
	}
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(o.Brokers...),
		Topic:        o.Topic,
		Balancer:     tickBalancer{kafkago.Murmur2Balancer{Consistent: true}},
		RequiredAcks: kafkago.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    1000,
		MaxAttempts:  3,
	}
	if o.TLS != nil {
		w.Transport = &kafkago.Transport{TLS: o.TLS}
	}
	if o.Horizon <= 0 {
		var err error
		if o.Horizon, err = horizon(context.Background(), set, o.Lateness); err != nil {
			return nil, err
		}
	}
	return &Publisher{set: set, fams: Derive(set), w: w, horizon: o.Horizon, brokers: o.Brokers,
		dialer: &kafkago.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: o.TLS}, sources: map[pipeline.Source]bool{}}, nil
}

// TickType is the type of a tick: an event of no family that a Publisher
// sends to every partition as its watermark moves, so that a correlate
// instance's watermark moves with the ingest's even on partitions no
// event goes to (and decisions that wait for the absence of an event are
// taken). Its time is the ingest's watermark: every event published
// after it is at least as recent (late events aside).
const TickType = "ecscorr:tick"

// tickHeader carries a tick's partition.
const tickHeader = "ecscorr-partition"

// tickBalancer sends ticks to the partition they name, the rest by key.
type tickBalancer struct{ kafkago.Murmur2Balancer }

func (b tickBalancer) Balance(msg kafkago.Message, partitions ...int) int {
	for _, h := range msg.Headers {
		if h.Key == tickHeader && len(h.Value) > 0 {
			if p, err := strconv.Atoi(string(h.Value)); err == nil && slices.Contains(partitions, p) {
				return p
			}
		}
	}
	return b.Murmur2Balancer.Balance(msg, partitions...)
}

// Families returns the key families events are published for.
func (p *Publisher) Families() *Families { return p.fams }

// Process queues a copy of ev for each family it feeds.
func (p *Publisher) Process(_ context.Context, ev *pipeline.Event) ([]pipeline.Incident, error) {
	p.events.Add(1)
	p.sources[ev.Source] = true
	fed := p.fams.Fed(p.set, ev)
	for _, f := range fed {
		cp := *ev
		cp.Family = f.Name
		v, err := pipeline.MarshalEventJSON(&cp)
		if err != nil {
			return nil, err
		}
		p.pending = append(p.pending, kafkago.Message{Key: []byte(f.Name + "\x00" + f.Key(ev)), Value: v})
		p.copies.Add(1)
		p.bytes.Add(int64(len(v)))
	}
	if len(fed) == 0 {
		p.dropped.Add(1)
	}
	return nil, nil
}

// Advance queues a tick per partition and source seen when the watermark
// moved by a second or more since the last round, and a second of
// processing time passed.
func (p *Publisher) Advance(ctx context.Context, wm time.Time) ([]pipeline.Incident, error) {
	// A round a second at most, of event time and of processing time: a
	// backfill moves the watermark much faster than the clock.
	if len(p.sources) == 0 || wm.Sub(p.lastTick) < time.Second || time.Since(p.tickedAt) < time.Second {
		return nil, nil
	}
	p.tickedAt = time.Now()
	if p.parts == 0 || time.Since(p.partsAt) > time.Minute {
		ps, err := p.dialer.LookupPartitions(ctx, "tcp", p.brokers[0], p.w.Topic)
		if err != nil {
			return nil, fmt.Errorf("looking up the partitions of %s: %w", p.w.Topic, err)
		}
		p.parts, p.partsAt = len(ps), time.Now()
	}
	p.lastTick = wm
	for _, src := range slices.Sorted(maps.Keys(p.sources)) {
		for part := range p.parts {
			tick := pipeline.Event{ID: fmt.Sprintf("tick:%d:%s:%d", part, src, wm.UnixNano()), Source: src, Type: TickType, Time: wm}
			v, err := pipeline.MarshalEventJSON(&tick)
			if err != nil {
				return nil, err
			}
			p.pending = append(p.pending, kafkago.Message{Value: v,
				Headers: []kafkago.Header{{Key: tickHeader, Value: []byte(strconv.Itoa(part))}}})
			p.ticks.Add(1)
		}
	}
	return nil, nil
}

// Horizon is the configured one.
func (p *Publisher) Horizon() time.Duration { return p.horizon }

// CheckpointBatch writes the queued copies; the commit (and with it the
// sources' positions) fails if Kafka does not take them all.
func (p *Publisher) CheckpointBatch(ctx context.Context, _ pipeline.StateWriter) error {
	if len(p.pending) == 0 {
		return nil
	}
	if err := p.w.WriteMessages(ctx, p.pending...); err != nil {
		return fmt.Errorf("publishing %d events to %s: %w", len(p.pending), p.w.Topic, err)
	}
	clear(p.pending)
	p.pending = p.pending[:0]
	return nil
}

// PublishStats count what a Publisher did.
type PublishStats struct {
	Events  int64 // events processed
	Copies  int64 // messages published (one per family fed)
	Bytes   int64 // message value bytes
	Dropped int64 // events no family needs
	Ticks   int64 // ticks published
}

// Stats returns the counts so far.
func (p *Publisher) Stats() PublishStats {
	return PublishStats{Events: p.events.Load(), Copies: p.copies.Load(), Bytes: p.bytes.Load(), Dropped: p.dropped.Load(), Ticks: p.ticks.Load()}
}

// Close closes the Kafka writer.
func (p *Publisher) Close() error { return p.w.Close() }
