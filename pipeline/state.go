package pipeline

import (
	"context"
	"time"
)

// StateWriter takes the writes of one commit. Nothing written through it is
// visible, to this process or after a crash, until the commit succeeds; then
// all of it is, never part of it.
type StateWriter interface {
	// Set writes val under key; ttl 0 means no expiry. key and val must not
	// be modified until the commit ends.
	Set(key, val []byte, ttl time.Duration)
	Delete(key []byte)
}

// StateTxn is one atomic commit being built.
type StateTxn interface {
	StateWriter
	// Commit makes every write durable at once, or none of them.
	Commit() error
	// Cancel drops the writes.
	Cancel()
}

// StateStore is the durable store the Runner commits to: engine state,
// resolver links, source positions, the seen-event set and the outbox go
// into one StateTxn per commit. correlate/state implements it on Badger.
type StateStore interface {
	Begin() StateTxn
	Get(key []byte) (val []byte, ok bool, err error)
	// Iterate calls fn for every live key with the prefix, in key order;
	// the slices are only valid during the call.
	Iterate(prefix []byte, fn func(key, val []byte) error) error
}

// Key families the pipeline owns in the store. The first byte of a key
// names its family; correlate/state lists every family in one place and
// reuses these.
const (
	FamilyContainer byte = 'c' // container short id (or "taskdef:" task ARN) → task ARN (or task definition ARN)
	FamilyPosition  byte = 'x' // input name → opaque position
	FamilySeen      byte = 's' // source 0x00 event id → seenRec: events already applied
	FamilyOutbox    byte = 'o' // sink name 0x00 sequence (8 bytes) → OutboxEntry (JSON) not yet delivered
	FamilyReport    byte = 'R' // report sink name 0x00 incident id → final incident (JSON)
	FamilyRunner    byte = 'r' // the Runner's own singletons (its watermark)
	FamilySink      byte = 'k' // sink name 0x00 key → value: what a sink remembers (a Slack thread, the severity last posted)
)

// FamilyKey builds a key of a family from parts joined by 0x00.
func FamilyKey(family byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, family)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

// Checkpointer is state that commits with the Runner: the engine and the
// resolver. CheckpointBatch writes everything changed since the last call
// into w; the Runner then commits w with the positions of the inputs whose
// events produced the changes.
type Checkpointer interface {
	CheckpointBatch(ctx context.Context, w StateWriter) error
}
