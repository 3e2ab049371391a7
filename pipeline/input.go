package pipeline

import (
	"context"
	"time"
)

// An Input is where events come from: a finite archive in replay, a queue,
// a stream or a Kafka partition live. (Source, by contrast, names the
// service that produced an event: CloudTrail, GuardDuty, ...; one Input
// may carry several.)
//
// The contract is Benthos's read-with-acknowledgement: Read hands out a
// batch and an AckFunc; the Runner calls the AckFunc, in read order, only
// after the commit that holds the effects of every event of the batch (and
// of every earlier batch) has succeeded. An Input that has to redeliver
// unacknowledged batches after a crash (SQS, Kafka) is thereby exactly as
// safe as the commit; the Runner recognises redelivered events that were
// already applied and skips them.
type Input interface {
	// Name identifies the input in positions, logs and metrics. It must
	// be stable across restarts: the committed position is stored under it.
	Name() string
	// Open prepares reading after pos: the position stored with the last
	// commit (nil when there is none).
	Open(ctx context.Context, pos []byte) error
	// Read blocks until a batch is available and returns it. A finite
	// input returns io.EOF when it is exhausted. Read returns promptly
	// when ctx is done.
	Read(ctx context.Context) (Batch, AckFunc, error)
	// Close releases the input.
	Close(ctx context.Context) error
}

// Batch is events read together from one input.
type Batch struct {
	Events []*Event
	// Position is the input's opaque position after this batch. The
	// Runner stores it in the commit that holds the batch's effects and
	// gives it back to Open after a restart; nil stores nothing.
	Position []byte
}

// AckFunc acknowledges a batch. err is nil when the batch's effects are
// committed; otherwise the batch was not processed and should be
// redelivered (a nack). The Runner never acknowledges a batch before every
// earlier batch of the same input.
type AckFunc func(ctx context.Context, err error) error

// Readiness is implemented by live inputs that hold a connection (a gRPC
// stream, a listener, a consumer group): Ready returns nil while the input
// can receive, and why not otherwise. /readyz reports it.
type Readiness interface {
	Ready() error
}

// NoAck is the AckFunc of inputs that need no acknowledgement.
func NoAck(context.Context, error) error { return nil }

// Correlator is what the Runner drives: the engine in correlate/engine.
// Process receives events in event-time order (late ones excepted);
// Advance moves the watermark. Each returned incident is the incident's
// full current state.
type Correlator interface {
	Checkpointer
	Process(ctx context.Context, ev *Event) ([]Incident, error)
	Advance(ctx context.Context, watermark time.Time) ([]Incident, error)
	// Horizon is how far behind the watermark an event can still change
	// state (the longest rule retention plus lateness).
	Horizon() time.Duration
}

// EndDecider is implemented by correlators that can decide, once a finite
// run's inputs are exhausted, what waits for events that will not come
// (a window with an upper bound still open at the archive's end). The
// Runner asks after its last Advance when RunnerOptions.DecideAtEnd is
// set (Replay sets it); a live run never ends that way.
type EndDecider interface {
	DecideAtEnd(ctx context.Context) ([]Incident, error)
}

// StreamedInput is an input whose events come in sub-streams each in
// event-time order (the partitions of a topic a scale-out ingest wrote):
// Stream names an event's (false: not from one). The Runner keeps a
// watermark clock per stream, with the default lateness, instead of one
// per source, so that a stream read ahead of the others (a backlog read
// partition by partition) does not move the watermark past their events;
// a stream silent for IdleAfter stops holding it back.
type StreamedInput interface {
	Input
	Stream(ev *Event) (string, bool)
	// Streams are the streams the input reads now (a consumer group
	// member's partitions): one that has given nothing yet holds the
	// watermark back, until it does or goes idle.
	Streams() []string
}

// Preparer is implemented by correlators that can do the part of an
// event's work that depends only on its record (decoding it, running
// matchers that read nothing else) ahead of Process and off its goroutine:
// the Runner prepares each batch on the goroutine that read it, while it
// processes the batches before, so replay and live use a second core.
// Prepare must be safe for concurrent use with every other method, must
// not change the correlator's state, and may only set ev.Prepared, which
// Process takes as its own work (and clears); Process must give the same
// result whether or not the event was prepared, or prepared by a
// correlator since swapped out.
type Preparer interface {
	Prepare(ev *Event)
}

// Committed is implemented by correlators that want to know that their
// last CheckpointBatch is durable (the engine may then drop from memory
// what it wrote, without a scratch copy). The Runner calls it after each
// successful commit.
type Committed interface {
	Committed()
}

// StreamAdvancer is an optional Correlator interface: before each Advance
// the Runner gives it the own watermark of every stream of a StreamedInput
// that has given an event (the scale-out's partitions), by "input
// name/stream name". A correlator whose state is split by stream (keys
// never span two) advances each part no further than its stream's clock,
// so a stream behind the others (a partition that just moved here with
// events its last owner had not applied) is not overtaken.
type StreamAdvancer interface {
	StreamWatermarks(map[string]time.Time)
}

// DoneObserver is an optional Correlator interface: the Runner tells it of
// every event it is done with (applied, or skipped as a redelivery or as
// too old), in the order it takes them (event time, not arrival), so that
// a correlator that records which source offsets its state holds (the
// scale-out's changelog) knows them exactly.
type DoneObserver interface {
	Done(ev *Event)
}
