package pipeline

import "context"

// A Sink is where incident state changes go: Slack, Security Hub, a JSONL
// stream, the replay report.
//
// Every change first goes into the outbox, in the same commit as the
// engine state that produced it; the Runner removes it from the outbox
// only once Deliver has returned nil for it. A crash between delivery and
// that removal delivers again, so sinks must upsert by Incident.ID (every
// change carries the incident's full current state): delivery is at least
// once, and never lost.
type Sink interface {
	// Name identifies the sink in the outbox, logs and metrics; stable
	// across restarts.
	Name() string
	// Mode says when the sink wants incidents.
	Mode() SinkMode
	// Deliver hands over incidents and returns nil once they are durable
	// at the sink. A SinkFinal sink gets every incident of the run once, in
	// its final state, ordered by SortIncidents.
	Deliver(ctx context.Context, incs []Incident) error
	// Close flushes and releases the sink.
	Close(ctx context.Context) error
}

// SinkMode says when a sink is given incidents.
type SinkMode int

const (
	// SinkStream sinks get the changes of each commit right after it.
	SinkStream SinkMode = iota
	// SinkFinal sinks get the final state of every incident once, when a
	// finite run ends: the replay report. Their outbox is the state's
	// record of its incidents and is kept: a run killed before its end,
	// rerun, reports everything the uninterrupted run would have, and a
	// rerun over the same state reports the same incidents again.
	SinkFinal
)
