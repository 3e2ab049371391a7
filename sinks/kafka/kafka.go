// Package kafka is the stream sink that writes every incident change to a
// Kafka topic with segmentio/kafka-go: keyed by incident id (so an
// incident's changes share a partition and stay in order), the value the
// incident's JSONL record (as `replay --format jsonl` writes it), acked by
// all in-sync replicas.
//
// The Writer is synchronous, so each Deliver learns what the brokers took,
// with a short batch timeout (kafka-go's default of 1 s would hold every
// call for a second) and a single attempt: the outbox owns retries,
// backoff and dead letters. kafka-go has no idempotent producer, so an
// acknowledgement lost after the append is written again on retry:
// consumers upsert by key, as the Sink contract asks.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/file"
)

// Config says where incidents go.
type Config struct {
	// Name of the sink in the outbox, logs and metrics (default
	// "kafka"); stable across restarts.
	Name string
	// Brokers are the bootstrap brokers, host:port (required).
	Brokers []string
	// Topic incidents are written to (required); it must exist.
	Topic string
	// MaxMessageBytes is the largest record sent (default 1,000,000,
	// under the brokers' default message.max.bytes of 1,048,588): larger
	// incidents are dead-lettered without being sent.
	MaxMessageBytes int
	// BatchTimeout is how long a partition's batch waits to fill
	// (default 5ms); every Deliver waits about this long.
	BatchTimeout time.Duration
	// Timeout bounds dialling, each read and each write (default 10s).
	Timeout time.Duration
	// ClientID sent to the brokers (default "ecscorr").
	ClientID string
	// TLS, when set, encrypts the connections (MSK: &tls.Config{}).
	TLS *tls.Config
	// SASL, when set, authenticates (kafka-go's sasl/plain, sasl/scram
	// or sasl/aws_msk_iam_v2 mechanisms).
	SASL sasl.Mechanism
}

// DefaultPolicy is how the outbox drains to Kafka: batches of 100, no rate
// limit (the brokers' quotas throttle), and about two hours of retries
// before an incident is dead-lettered.
func DefaultPolicy() pipeline.DeliveryPolicy {
	return pipeline.DeliveryPolicy{
		MaxAttempts: 30,
		BackoffBase: time.Second,
		BackoffMax:  5 * time.Minute,
		BatchSize:   100,
	}
}

// Sink writes incidents to one topic.
type Sink struct {
	name     string
	maxBytes int
	w        *kafkago.Writer
	tr       *kafkago.Transport
}

// New returns the sink; it connects on the first delivery.
func New(cfg Config) (*Sink, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	if cfg.Topic == "" {
		return nil, errors.New("kafka: no topic")
	}
	s := &Sink{name: cfg.Name, maxBytes: cfg.MaxMessageBytes}
	if s.name == "" {
		s.name = "kafka"
	}
	if s.maxBytes <= 0 {
		s.maxBytes = 1_000_000
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	batchTimeout := cfg.BatchTimeout
	if batchTimeout <= 0 {
		batchTimeout = 5 * time.Millisecond
	}
	clientID := cfg.ClientID
	if clientID == "" {
		clientID = "ecscorr"
	}
	// A pool whose metadata request failed keeps answering with that
	// failure until its next refresh, at a random point within the TTL
	// (6s by default): 1s bounds the wait after an outage.
	s.tr = &kafkago.Transport{DialTimeout: timeout, ClientID: clientID, TLS: cfg.TLS, SASL: cfg.SASL, MetadataTTL: time.Second}
	s.w = &kafkago.Writer{
		Addr:  kafkago.TCP(cfg.Brokers...),
		Topic: cfg.Topic,
		// The Java client's partitioner: a key lands where a Java
		// producer or Kafka Streams would put it.
		Balancer:     kafkago.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafkago.RequireAll,
		Async:        false,
		MaxAttempts:  1,
		BatchSize:    DefaultPolicy().BatchSize,
		BatchBytes:   int64(s.maxBytes),
		BatchTimeout: batchTimeout,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
		Transport:    s.tr,
	}
	return s, nil
}

func (s *Sink) Name() string            { return s.name }
func (s *Sink) Mode() pipeline.SinkMode { return pipeline.SinkStream }

// Close waits for writes in flight and closes the connections.
func (s *Sink) Close(context.Context) error {
	err := s.w.Close()
	s.tr.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("kafka: closing the writer: %w", err)
	}
	return nil
}

// Deliver writes incs and returns once the brokers acknowledged them.
// Records the brokers refused come back in a pipeline.BatchError by
// incident id: retriable errors to be retried, the rest (too large, not
// authorised, invalid) permanent.
func (s *Sink) Deliver(ctx context.Context, incs []pipeline.Incident) error {
	failed := map[string]error{}
	msgs := make([]kafkago.Message, 0, len(incs))
	for i := range incs {
		v, err := file.Record(&incs[i])
		if err != nil {
			failed[incs[i].ID] = pipeline.Permanent(err)
			continue
		}
		key := []byte(incs[i].ID)
		if n := len(key) + len(v); n > s.maxBytes {
			failed[incs[i].ID] = pipeline.Permanent(fmt.Errorf("kafka: record of %d bytes is over the %d-byte limit", n, s.maxBytes))
			continue
		}
		msgs = append(msgs, kafkago.Message{Key: key, Value: v})
	}
	shared, err := s.write(ctx, msgs, failed)
	if err != nil {
		if len(failed) == 0 {
			return err
		}
		for _, m := range msgs {
			if _, ok := failed[string(m.Key)]; !ok {
				failed[string(m.Key)] = err
			}
		}
	}
	// A partition's batch too large for the broker: it refused every
	// record in it, so find the culprits by writing them one by one.
	if len(shared) > 1 {
		for _, m := range shared {
			delete(failed, string(m.Key))
			if _, err := s.write(ctx, []kafkago.Message{m}, failed); err != nil {
				failed[string(m.Key)] = err
			}
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &pipeline.BatchError{Failed: failed}
}

// write writes msgs, records in failed the ones refused, and returns the
// error of a write that failed as a whole. tooLarge are the records the
// broker refused as too large, each perhaps for the batch it shared.
func (s *Sink) write(ctx context.Context, msgs []kafkago.Message, failed map[string]error) (tooLarge []kafkago.Message, _ error) {
	for len(msgs) > 0 {
		err := s.w.WriteMessages(ctx, msgs...)
		var mtl kafkago.MessageTooLargeError
		var werrs kafkago.WriteErrors
		switch {
		case err == nil:
			return tooLarge, nil
		case errors.As(err, &mtl):
			// Over kafka-go's own limit (BatchBytes), counted with record
			// overhead: nothing was sent; drop it and write the rest.
			failed[string(mtl.Message.Key)] = pipeline.Permanent(fmt.Errorf("kafka: record over the %d-byte limit: %w", s.maxBytes, err))
			msgs = mtl.Remaining
		case errors.As(err, &werrs) && len(werrs) == len(msgs):
			for i, e := range werrs {
				if e == nil {
					continue
				}
				failed[string(msgs[i].Key)] = classify(e)
				if errors.Is(e, kafkago.MessageSizeTooLarge) || errors.Is(e, kafkago.RecordListTooLarge) {
					tooLarge = append(tooLarge, msgs[i])
				}
			}
			return tooLarge, nil
		default:
			return tooLarge, classify(err)
		}
	}
	return tooLarge, nil
}

// permanent are the broker errors that the same record meets again however
// often it is sent.
var permanent = map[kafkago.Error]bool{
	kafkago.MessageSizeTooLarge:         true,
	kafkago.RecordListTooLarge:          true,
	kafkago.InvalidMessageSize:          true,
	kafkago.InvalidRecord:               true,
	kafkago.InvalidTimestamp:            true,
	kafkago.InvalidTopic:                true,
	kafkago.InvalidRequiredAcks:         true,
	kafkago.InvalidRequest:              true,
	kafkago.PolicyViolation:             true,
	kafkago.UnsupportedVersion:          true,
	kafkago.UnsupportedForMessageFormat: true,
	kafkago.UnsupportedCompressionType:  true,
	kafkago.TopicAuthorizationFailed:    true,
	kafkago.ClusterAuthorizationFailed:  true,
	kafkago.UnsupportedSASLMechanism:    true,
	kafkago.SASLAuthenticationFailed:    true,
}

// classify marks err permanent when retrying cannot help; broker errors
// kafka-go calls temporary, network errors and anything unknown are
// retried until the attempts run out.
func classify(err error) error {
	err = fmt.Errorf("kafka: writing: %w", err)
	var ke kafkago.Error
	if errors.As(err, &ke) && !ke.Temporary() && permanent[ke] {
		return pipeline.Permanent(err)
	}
	return err
}
