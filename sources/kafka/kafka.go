// Package kafkasrc is the live input "kafka": topics of raw records in any
// format the format registry reads (format "raw": each message value is one
// document, gzip allowed), or of normalised events (format "events": each
// value is pipeline.MarshalEventJSON's wire form), read with
// segmentio/kafka-go in a consumer group.
//
// Offsets are stored with the state: each Batch.Position holds, for every
// partition this input has read, the next offset to read. Kafka's
// committed offsets follow, after the acknowledgement (for lag monitoring
// and other tools). When a partition is assigned, reading starts at the
// larger of the stored and the committed offset:
//
//   - stored ahead (the process died between the state commit and the
//     Kafka commit): the state is the truth, nothing it holds is re-read;
//   - committed ahead (the partition was owned by another member since
//     this state last read it, or an operator moved the group forward):
//     the messages before it were applied elsewhere, and re-reading them
//     here would apply them twice in the group.
//
// The group is kafka-go's ConsumerGroup (eager rebalancing): a partition
// that stays with this member across a rebalance goes on where it was and
// its batches in flight stay valid; a revoked one's batches in flight are
// dropped (their acknowledgements commit nothing), and acknowledged
// offsets not yet committed are committed before the generation ends.
// Each partition is read by a kafka-go partition Reader tuned for
// throughput and latency (MaxWait 250ms instead of 10s, MinBytes 1, a
// deeper queue); a batch is what is available, up to MaxBatch messages
// from any partition of this member.
package kafkasrc

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// Message value formats.
const (
	FormatRaw    = "raw"
	FormatEvents = "events"
)

// Where a partition without a stored or committed offset starts.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// Options configure the input. Zero values take the defaults noted.
type Options struct {
	// Name of the input in positions, logs and metrics (default
	// "kafka"); stable across restarts.
	Name string
	// Brokers are the bootstrap brokers, host:port (required).
	Brokers []string
	// Topics read (required).
	Topics []string
	// Group is the consumer group (default "ecscorr").
	Group string
	// Format of the message values: FormatRaw (default) or FormatEvents.
	Format string
	// Start is where a partition with neither a stored nor a committed
	// offset starts: StartEarliest (default) or StartLatest.
	Start string
	// MaxBatch caps the messages of one batch (default 1000).
	MaxBatch int
	// ClientID sent to the brokers (default "ecscorr").
	ClientID string
	// TLS, when set, encrypts the connections (MSK: &tls.Config{}).
	TLS *tls.Config
	// SASL, when set, authenticates.
	SASL sasl.Mechanism

	// MaxWait is how long a fetch waits at the broker for data (default
	// 250ms; kafka-go's 10s default would stall shutdown and idle
	// partitions' readers).
	MaxWait time.Duration
	// MinBytes a fetch waits for (default 1: deliver at once).
	MinBytes int
	// MaxBytes of one partition fetch (default 8 MiB); it also bounds the
	// largest message read.
	MaxBytes int
	// QueueCapacity is the messages each partition's reader fetches
	// ahead (default 500; kafka-go's is 100).
	QueueCapacity int
	// HeartbeatInterval (default 3s), SessionTimeout (default 30s),
	// RebalanceTimeout (default 30s) and JoinGroupBackoff (default 5s)
	// are the group's timings, as kafka-go's ConsumerGroupConfig.
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	JoinGroupBackoff  time.Duration
	// Timeout bounds dialling and coordinator requests (default 10s).
	Timeout time.Duration
	// MaxRecordBytes caps one document (decompressed); 0 means
	// format.DefaultMaxRecordBytes.
	MaxRecordBytes int

	// OnAssign, when set, is told of each partition a generation gives
	// this member that it did not own in the one before, and the offset
	// it will be read from (negative: none stored or committed, kafka-go's
	// FirstOffset or LastOffset), before any of its messages is read: a
	// correlator that keeps state per partition rebuilds it there. It must
	// return quickly.
	OnAssign func(topic string, partition int, start int64)
	// OnRevoke, when set, is told of each partition this member owned in
	// the generation before and does not own in the new one.
	OnRevoke func(topic string, partition int)

	// Bad receives every message or record skipped, with its position
	// kafka://topic/partition/offset; nil only counts them.
	Bad func(format.RecordError)
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if len(o.Brokers) == 0 {
		return errors.New("kafka: no brokers")
	}
	if len(o.Topics) == 0 {
		return errors.New("kafka: no topics")
	}
	for _, t := range o.Topics {
		if t == "" {
			return errors.New("kafka: empty topic name")
		}
	}
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&o.Name, "kafka")
	def(&o.Group, "ecscorr")
	def(&o.Format, FormatRaw)
	def(&o.Start, StartEarliest)
	def(&o.ClientID, "ecscorr")
	if o.Format != FormatRaw && o.Format != FormatEvents {
		return fmt.Errorf("kafka: format %q (want raw or events)", o.Format)
	}
	if o.Start != StartEarliest && o.Start != StartLatest {
		return fmt.Errorf("kafka: start %q (want earliest or latest)", o.Start)
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt(&o.MaxBatch, 1000)
	defInt(&o.MinBytes, 1)
	defInt(&o.MaxBytes, 8<<20)
	defInt(&o.QueueCapacity, 500)
	defInt(&o.MaxRecordBytes, format.DefaultMaxRecordBytes)
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&o.MaxWait, 250*time.Millisecond)
	defDur(&o.HeartbeatInterval, 3*time.Second)
	defDur(&o.SessionTimeout, 30*time.Second)
	defDur(&o.RebalanceTimeout, 30*time.Second)
	defDur(&o.JoinGroupBackoff, 5*time.Second)
	defDur(&o.Timeout, 10*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Stats are the input's counters since Open.
type Stats struct {
	Messages    int64 // messages handed out in batches
	Events      int64 // events decoded from them
	Bad         int64 // messages or records skipped
	Generations int64 // group generations joined
	Commits     int64 // successful offset commits to Kafka
	CommitErrs  int64 // failed offset commits (retried on the next ack)
}

type message struct {
	epoch uint64
	m     kafkago.Message
}

// batchRef is what an acknowledgement needs of its batch: per partition,
// the offset after the batch and the ownership it was read under.
type batchRef struct {
	ends map[tp]int64
	own  map[tp]uint64
}

// Input is the kafka input; see the package doc.
type Input struct {
	o      Options
	log    *slog.Logger
	dialer *kafkago.Dialer
	tr     *kafkago.Transport
	client *kafkago.Client
	cg     *kafkago.ConsumerGroup
	msgs   chan message
	dec    *format.Decoder
	evs    []*pipeline.Event
	now    time.Time

	stop    context.CancelFunc
	done    chan struct{}
	wg      sync.WaitGroup
	commitC chan struct{}
	rewindC chan struct{}

	mu sync.Mutex
	// epoch names the current set of partition readers; messages of
	// another epoch are stale (read before a rebalance or rewind).
	epoch uint64
	// own is the ownership id of each partition this member holds; an
	// acknowledgement counts only under the ownership it was read in.
	own    map[tp]uint64
	ownSeq uint64
	// start is where each owned partition's ownership began reading.
	start map[tp]int64
	// rewound holds the readers' new starts after a nack until the
	// generation restarts them.
	rewound map[tp]int64
	// next is the offset after the last message handed out, per
	// partition (stored offsets of partitions not held included): the
	// batches' Position.
	next map[tp]int64
	// acked is the offset after the last acknowledged message, per
	// partition; committed is what Kafka was last told.
	acked     map[tp]int64
	committed map[tp]int64
	gen       *kafkago.Generation
	joinErr   error
	readErr   error
	readErrAt time.Time
	closed    bool

	nMsgs, nEvents, nBad, nGens, nCommits, nCommitErrs atomic.Int64
}

// New returns the input; it connects in Open.
func New(o Options) (*Input, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	in := &Input{o: o, log: o.Logger.With("input", o.Name)}
	in.dialer = &kafkago.Dialer{ClientID: o.ClientID, Timeout: o.Timeout, DualStack: true, TLS: o.TLS, SASLMechanism: o.SASL}
	in.tr = &kafkago.Transport{ClientID: o.ClientID, DialTimeout: o.Timeout, TLS: o.TLS, SASL: o.SASL}
	in.client = &kafkago.Client{Addr: kafkago.TCP(o.Brokers...), Timeout: o.Timeout, Transport: in.tr}
	return in, nil
}

func (in *Input) Name() string { return in.o.Name }

// Open joins the group; reading starts at pos's offsets where they are
// ahead of the group's (see the package doc). It does not wait for the
// brokers: Ready says when the input is connected.
func (in *Input) Open(_ context.Context, pos []byte) error {
	stored, err := decodePosition(pos)
	if err != nil {
		return fmt.Errorf("kafka %s: %w", in.o.Name, err)
	}
	startOff := kafkago.FirstOffset
	if in.o.Start == StartLatest {
		startOff = kafkago.LastOffset
	}
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID: in.o.Group, Brokers: in.o.Brokers, Dialer: in.dialer, Topics: in.o.Topics,
		HeartbeatInterval: in.o.HeartbeatInterval, SessionTimeout: in.o.SessionTimeout,
		RebalanceTimeout: in.o.RebalanceTimeout, JoinGroupBackoff: in.o.JoinGroupBackoff,
		Timeout: in.o.Timeout, StartOffset: startOff,
		Logger:      kafkago.LoggerFunc(in.debugf),
		ErrorLogger: kafkago.LoggerFunc(in.warnf),
	})
	if err != nil {
		return fmt.Errorf("kafka %s: %w", in.o.Name, err)
	}
	in.cg = cg
	// Under the lock: Streams and Stats may be asked while Open runs.
	in.mu.Lock()
	in.next, in.acked = stored, maps.Clone(stored)
	in.committed, in.own, in.start = map[tp]int64{}, map[tp]uint64{}, map[tp]int64{}
	in.mu.Unlock()
	in.msgs = make(chan message, in.o.MaxBatch)
	in.commitC, in.rewindC = make(chan struct{}, 1), make(chan struct{}, 1)
	in.done = make(chan struct{})
	in.dec = format.NewDecoder(format.DecoderOptions{Emit: in.emit, Bad: in.bad, MaxRecordBytes: in.o.MaxRecordBytes,
		Latest: time.Now().Add(format.MaxClockSkew)})
	ctx, stop := context.WithCancel(context.Background())
	in.stop = stop
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		in.run(ctx)
	}()
	return nil
}

func (in *Input) debugf(msg string, args ...any) {
	in.log.Debug("kafka-go: " + fmt.Sprintf(msg, args...))
}

func (in *Input) warnf(msg string, args ...any) {
	in.log.Warn("kafka-go: " + fmt.Sprintf(msg, args...))
}

// run follows the group's generations until Close.
func (in *Input) run(ctx context.Context) {
	for {
		gen, err := in.cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				return
			}
			in.mu.Lock()
			in.joinErr = err
			in.mu.Unlock()
			in.log.Warn("joining the consumer group", "group", in.o.Group, "err", err)
			continue
		}
		in.nGens.Add(1)
		starts := in.assign(gen)
		gen.Start(func(gctx context.Context) { in.generation(gctx, gen, starts) })
	}
}

// assign takes a generation's assignments: kept partitions go on from
// where this member read them, others start at max(stored, committed).
func (in *Input) assign(gen *kafkago.Generation) map[tp]int64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	prev, prevStart := in.own, in.start
	in.own, in.start = make(map[tp]uint64), make(map[tp]int64)
	starts := make(map[tp]int64)
	for topic, as := range gen.Assignments {
		for _, a := range as {
			k := tp{topic, a.ID}
			committed := a.Offset // negative: none (kafka-go's StartOffset)
			if committed >= 0 {
				in.committed[k] = committed
			}
			var off int64 = -1
			if o, ok := prev[k]; ok {
				// Kept: its batches in flight stay valid unless the group
				// moved past them meanwhile.
				if n, ok := in.next[k]; ok && n >= committed {
					in.own[k], in.start[k], starts[k] = o, prevStart[k], n
					continue
				}
			}
			if s, ok := in.acked[k]; ok {
				off = s
			}
			off = max(off, committed)
			in.ownSeq++
			in.own[k] = in.ownSeq
			if off >= 0 {
				in.next[k] = off
				starts[k] = off
			} else {
				delete(in.next, k)
				starts[k] = committed // FirstOffset or LastOffset
			}
			in.start[k] = starts[k]
			if in.o.OnAssign != nil {
				in.o.OnAssign(k.topic, k.part, starts[k])
			}
		}
	}
	if in.o.OnRevoke != nil {
		for k := range prev {
			if _, ok := in.own[k]; !ok {
				in.o.OnRevoke(k.topic, k.part)
			}
		}
	}
	in.epoch++
	in.gen, in.joinErr, in.rewound = gen, nil, nil
	in.log.Info("kafka generation", "group", in.o.Group, "generation", gen.ID, "member", gen.MemberID, "partitions", len(starts))
	return starts
}

// generation runs the partition readers and the committer of one
// generation; it returns when the generation ends (a rebalance, a lost
// coordinator, Close), after committing what was acknowledged.
func (in *Input) generation(gctx context.Context, gen *kafkago.Generation, starts map[tp]int64) {
	defer func() {
		in.commit(gen)
		in.mu.Lock()
		if in.gen == gen {
			in.gen = nil
		}
		in.mu.Unlock()
	}()
	in.resolveLatest(gctx, starts)
	for {
		in.mu.Lock()
		epoch := in.epoch
		in.mu.Unlock()
		rctx, cancel := context.WithCancel(gctx)
		var wg sync.WaitGroup
		for k, off := range starts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in.readPartition(rctx, k, off, epoch)
			}()
		}
		rewind := false
		for !rewind {
			select {
			case <-gctx.Done():
				cancel()
				wg.Wait()
				return
			case <-in.commitC:
				in.commit(gen)
			case <-in.rewindC:
				in.mu.Lock()
				rewind = in.rewound != nil
				in.mu.Unlock()
			}
		}
		cancel()
		wg.Wait()
		in.mu.Lock()
		if in.rewound != nil {
			starts, in.rewound = in.rewound, nil
		}
		in.mu.Unlock()
	}
}

// resolveLatest turns the "latest" starts into offsets, so that they are
// stored with the next batch and a rebalance or restart before any message
// arrives does not skip what was produced meanwhile.
func (in *Input) resolveLatest(ctx context.Context, starts map[tp]int64) {
	req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	for k, off := range starts {
		if off == kafkago.LastOffset {
			req.Topics[k.topic] = append(req.Topics[k.topic], kafkago.LastOffsetOf(k.part))
		}
	}
	if len(req.Topics) == 0 {
		return
	}
	resp, err := in.client.ListOffsets(ctx, req)
	if err != nil {
		in.log.Warn("kafka: listing the latest offsets (the readers resolve them)", "err", err)
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for topic, ps := range resp.Topics {
		for _, p := range ps {
			k := tp{topic, p.Partition}
			if p.Error != nil || p.LastOffset < 0 || starts[k] != kafkago.LastOffset {
				continue
			}
			starts[k], in.start[k] = p.LastOffset, p.LastOffset
			if _, ok := in.next[k]; !ok {
				in.next[k] = p.LastOffset
			}
		}
	}
}

// rewindLocked restarts every owned partition at its acknowledged offset
// after a nack: the batches in flight are dropped at once (their
// acknowledgements become no-ops, their messages still queued are
// stale) and read again once the readers restart.
func (in *Input) rewindLocked() {
	starts := make(map[tp]int64)
	for k := range in.own {
		in.ownSeq++
		in.own[k] = in.ownSeq
		off, ok := in.acked[k]
		if s := in.start[k]; !ok || s > off {
			off = s
		}
		starts[k] = off
		if off >= 0 {
			in.next[k] = off
		} else {
			delete(in.next, k)
		}
	}
	in.epoch++
	in.rewound = starts
	in.log.Info("kafka: rewinding to the acknowledged offsets after a nack", "partitions", len(starts))
}

// readPartition fetches one partition into in.msgs until ctx is done.
func (in *Input) readPartition(ctx context.Context, k tp, off int64, epoch uint64) {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: in.o.Brokers, Topic: k.topic, Partition: k.part, Dialer: in.dialer,
		MinBytes: in.o.MinBytes, MaxBytes: in.o.MaxBytes, MaxWait: in.o.MaxWait,
		QueueCapacity: in.o.QueueCapacity, ReadLagInterval: -1,
		Logger: kafkago.LoggerFunc(in.debugf), ErrorLogger: kafkago.LoggerFunc(in.warnf),
	})
	defer r.Close()
	if err := r.SetOffset(off); err != nil {
		in.log.Warn("kafka: setting the offset", "topic", k.topic, "partition", k.part, "offset", off, "err", err)
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return
			}
			// The reader retries by itself; this only tells readiness.
			in.mu.Lock()
			in.readErr, in.readErrAt = fmt.Errorf("reading %s/%d: %w", k.topic, k.part, err), time.Now()
			in.mu.Unlock()
			continue
		}
		select {
		case in.msgs <- message{epoch, m}:
		case <-ctx.Done():
			return
		}
	}
}

// commit tells Kafka the acknowledged offsets of the partitions held.
func (in *Input) commit(gen *kafkago.Generation) {
	in.mu.Lock()
	offs := map[string]map[int]int64{}
	sent := map[tp]int64{}
	for k := range in.own {
		a, ok := in.acked[k]
		if c, done := in.committed[k]; !ok || done && a <= c {
			continue
		}
		if offs[k.topic] == nil {
			offs[k.topic] = map[int]int64{}
		}
		offs[k.topic][k.part] = a
		sent[k] = a
	}
	in.mu.Unlock()
	if len(sent) == 0 {
		return
	}
	if err := gen.CommitOffsets(offs); err != nil {
		in.nCommitErrs.Add(1)
		in.log.Warn("kafka: committing offsets", "group", in.o.Group, "generation", gen.ID, "err", err)
		return
	}
	in.nCommits.Add(1)
	in.mu.Lock()
	for k, a := range sent {
		if c, ok := in.committed[k]; !ok || a > c {
			in.committed[k] = a
		}
	}
	in.mu.Unlock()
}

// Read returns the messages available, at least one, up to MaxBatch.
func (in *Input) Read(ctx context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	buf := make([]message, 0, 64)
	for {
		select {
		case <-ctx.Done():
			return pipeline.Batch{}, nil, ctx.Err()
		case <-in.done:
			return pipeline.Batch{}, nil, errors.New("kafka: input closed")
		case m := <-in.msgs:
			buf = append(buf[:0], m)
		}
	drain:
		for len(buf) < in.o.MaxBatch {
			select {
			case m := <-in.msgs:
				buf = append(buf, m)
			default:
				break drain
			}
		}
		ref, pos, keep := in.take(buf)
		if len(keep) == 0 {
			continue // all stale
		}
		evs := in.decode(keep)
		return pipeline.Batch{Events: evs, Position: pos}, func(_ context.Context, err error) error {
			in.ack(ref, err)
			return nil
		}, nil
	}
}

// take moves next past the current epoch's messages of buf and returns
// them, the batch's acknowledgement record and its position.
func (in *Input) take(buf []message) (batchRef, []byte, []kafkago.Message) {
	in.mu.Lock()
	defer in.mu.Unlock()
	ref := batchRef{ends: map[tp]int64{}, own: map[tp]uint64{}}
	keep := make([]kafkago.Message, 0, len(buf))
	for _, m := range buf {
		k := tp{m.m.Topic, m.m.Partition}
		o, held := in.own[k]
		if m.epoch != in.epoch || !held {
			continue
		}
		if n, ok := in.next[k]; ok && m.m.Offset < n {
			continue // a reader started before its partition moved on
		}
		in.next[k] = m.m.Offset + 1
		ref.ends[k], ref.own[k] = m.m.Offset+1, o
		keep = append(keep, m.m)
	}
	if len(keep) == 0 {
		return ref, nil, nil
	}
	return ref, encodePosition(in.next), keep
}

func (in *Input) ack(ref batchRef, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	valid := false
	for k, end := range ref.ends {
		if in.own[k] != ref.own[k] {
			continue // revoked or rewound since: a no-op
		}
		valid = true
		if a, ok := in.acked[k]; err == nil && (!ok || end > a) {
			in.acked[k] = end
		}
	}
	if !valid {
		return
	}
	ch := in.commitC
	if err != nil {
		in.rewindLocked()
		ch = in.rewindC
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// decode turns messages into events; a message that is not decodable is
// reported to Bad and skipped (its offset still advances).
func (in *Input) decode(ms []kafkago.Message) []*pipeline.Event {
	in.evs = make([]*pipeline.Event, 0, len(ms))
	in.now = time.Now()
	latest := in.now.Add(format.MaxClockSkew)
	for i := range ms {
		m := &ms[i]
		pos := pipeline.Position{File: RecordPos(m.Topic, m.Partition, m.Offset)}
		in.dec.SetLatest(latest)
		v := m.Value
		if len(v) >= 2 && v[0] == 0x1f && v[1] == 0x8b {
			var err error
			if v, err = gunzip(v, in.o.MaxRecordBytes); err != nil {
				in.dec.Reject(pos, "", format.SkipInvalid, err.Error(), m.Value)
				continue
			}
		}
		if in.o.Format == FormatEvents {
			in.decodeEvent(v, pos, latest)
			continue
		}
		in.dec.Decode(v, pos)
	}
	in.nMsgs.Add(int64(len(ms)))
	in.nEvents.Add(int64(len(in.evs)))
	evs := in.evs
	in.evs = nil
	return evs
}

// minEventTime matches the format registry's earliest plausible time.
var minEventTime = time.Date(2004, 1, 1, 0, 0, 0, 0, time.UTC)

func (in *Input) decodeEvent(v []byte, pos pipeline.Position, latest time.Time) {
	if len(v) > in.o.MaxRecordBytes {
		in.dec.Reject(pos, "", format.SkipTooLarge, fmt.Sprintf("record exceeds %d bytes", in.o.MaxRecordBytes), v)
		return
	}
	ev, err := pipeline.UnmarshalEventJSON(v)
	if err != nil {
		class := format.SkipInvalid
		if !json.Valid(v) {
			class = format.SkipBadJSON
		}
		in.dec.Reject(pos, format.GuessSource(v), class, err.Error(), v)
		return
	}
	if ev.Time.Before(minEventTime) || ev.Time.After(latest) {
		in.dec.Reject(pos, ev.Source, format.SkipTimeOutOfRange,
			fmt.Sprintf("event time %s is outside %s to %s; skipped", ev.Time.Format(time.RFC3339Nano),
				minEventTime.Format(time.RFC3339), latest.Format(time.RFC3339)), v)
		return
	}
	ev.Pos = pos
	_ = in.emit(ev)
}

func (in *Input) emit(ev *pipeline.Event) error {
	ev.Received = in.now
	in.evs = append(in.evs, ev)
	return nil
}

func (in *Input) bad(e format.RecordError) {
	in.nBad.Add(1)
	if in.o.Bad != nil {
		in.o.Bad(e)
		return
	}
	in.log.Warn("skipped record", "pos", e.Pos.String(), "source", e.Source, "reason", e.Reason)
}

// gunzip inflates a gzip message value, refusing more than max bytes.
func gunzip(b []byte, max int) ([]byte, error) {
	zr, err := kgzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if len(out) > max {
		return nil, fmt.Errorf("record exceeds %d bytes once decompressed", max)
	}
	return out, nil
}

// Ready is nil while a group generation is active and the partition
// readers have not failed in the last 10 seconds.
// Streams are the partitions this member owns, when it reads normalised
// events (see Stream).
func (in *Input) Streams() []string {
	if in.o.Format != FormatEvents {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]string, 0, len(in.own))
	for k := range in.own {
		out = append(out, fmt.Sprintf("%s/%d", k.topic, k.part))
	}
	return out
}

// Stream names the partition an event came from when the input reads
// normalised events (FormatEvents): a scale-out ingest writes each
// partition in event-time order, so the Runner keeps a clock per
// partition (pipeline.StreamedInput). Raw records keep per-source clocks.
func (in *Input) Stream(ev *pipeline.Event) (string, bool) {
	if in.o.Format != FormatEvents {
		return "", false
	}
	_, _, _, stream, ok := ParseRecordPos(ev.Pos.File)
	return stream, ok
}

func (in *Input) Ready() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case in.closed:
		return errors.New("kafka: closed")
	case in.gen == nil && in.joinErr != nil:
		return fmt.Errorf("kafka: not in group %s: %w", in.o.Group, in.joinErr)
	case in.gen == nil:
		return fmt.Errorf("kafka: joining group %s", in.o.Group)
	case in.readErr != nil && time.Since(in.readErrAt) < 10*time.Second:
		return in.readErr
	}
	return nil
}

// Stats returns the counters.
func (in *Input) Stats() Stats {
	return Stats{Messages: in.nMsgs.Load(), Events: in.nEvents.Load(), Bad: in.nBad.Load(),
		Generations: in.nGens.Load(), Commits: in.nCommits.Load(), CommitErrs: in.nCommitErrs.Load()}
}

// Close commits what was acknowledged, leaves the group and stops the
// readers.
func (in *Input) Close(context.Context) error {
	in.mu.Lock()
	if in.closed || in.cg == nil {
		in.closed = true
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	in.mu.Unlock()
	close(in.done)
	in.stop()
	err := in.cg.Close() // ends the generation: its final commit runs first
	in.wg.Wait()
	in.tr.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("kafka %s: leaving the group: %w", in.o.Name, err)
	}
	return nil
}
