package partition

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
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

	events, copies, bytes, dropped atomic.Int64
}

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	Brokers []string
	Topic   string
	// Horizon is what the Runner reports as the correlator's horizon
	// (reordering only; an ingest instance keeps no state).
	Horizon time.Duration
	// Transport, when set, replaces kafka-go's default (TLS, SASL).
	Transport kafkago.RoundTripper
}

// NewPublisher returns the ingest correlator for the rule set.
func NewPublisher(set *rule.Set, o PublisherOptions) (*Publisher, error) {
	if len(o.Brokers) == 0 || o.Topic == "" {
		return nil, errors.New("partition: the publisher needs brokers and a topic")
	}
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(o.Brokers...),
		Topic:        o.Topic,
		Balancer:     &kafkago.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafkago.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    1000,
		MaxAttempts:  3,
		Transport:    o.Transport,
	}
	return &Publisher{set: set, fams: Derive(set), w: w, horizon: o.Horizon}, nil
}

// Families returns the key families events are published for.
func (p *Publisher) Families() *Families { return p.fams }

// Process queues a copy of ev for each family it feeds.
func (p *Publisher) Process(_ context.Context, ev *pipeline.Event) ([]pipeline.Incident, error) {
	p.events.Add(1)
	var decoded map[string]any
	done := false
	raw := func() map[string]any {
		if !done {
			done = true
			if len(ev.Raw) > 0 {
				_ = json.Unmarshal(ev.Raw, &decoded)
			}
		}
		return decoded
	}
	fed := false
	for _, f := range p.fams.List {
		if !f.Feeds(p.set, ev, raw) {
			continue
		}
		cp := *ev
		cp.Family = f.Name
		v, err := pipeline.MarshalEventJSON(&cp)
		if err != nil {
			return nil, err
		}
		p.pending = append(p.pending, kafkago.Message{Key: []byte(f.Name + "\x00" + f.Key(ev)), Value: v})
		p.copies.Add(1)
		p.bytes.Add(int64(len(v)))
		fed = true
	}
	if !fed {
		p.dropped.Add(1)
	}
	return nil, nil
}

// Advance does nothing: an ingest instance decides nothing.
func (p *Publisher) Advance(context.Context, time.Time) ([]pipeline.Incident, error) {
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
}

// Stats returns the counts so far.
func (p *Publisher) Stats() PublishStats {
	return PublishStats{Events: p.events.Load(), Copies: p.copies.Load(), Bytes: p.bytes.Load(), Dropped: p.dropped.Load()}
}

// Close closes the Kafka writer.
func (p *Publisher) Close() error { return p.w.Close() }
