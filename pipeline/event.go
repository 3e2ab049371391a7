// Package pipeline holds the types every other package shares: the normalised
// Event, the Incident, severities, task ARN handling, the container → task
// resolver, event-time ordering and watermarks.
package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Source names the producer of an event. The values are stable: rules, dead
// letters and metrics refer to them.
type Source string

const (
	SourceCloudTrail        Source = "cloudtrail"
	SourceGuardDuty         Source = "guardduty"
	SourceContainerInsights Source = "container_insights"
	SourceFalco             Source = "falco"
	// SourceECS carries ECS service events (Task State Change). They feed the
	// container → task map and are rarely rule inputs themselves.
	SourceECS Source = "ecs"
)

// Sources lists every known source in a fixed order (for summaries and checks).
var Sources = []Source{SourceCloudTrail, SourceGuardDuty, SourceContainerInsights, SourceFalco, SourceECS}

// ParseSource accepts a source name as written in rules and configs.
func ParseSource(s string) (Source, error) {
	switch Source(s) {
	case SourceCloudTrail, SourceGuardDuty, SourceContainerInsights, SourceFalco, SourceECS:
		return Source(s), nil
	}
	return "", fmt.Errorf("unknown source %q (want one of cloudtrail, guardduty, container_insights, falco, ecs)", s)
}

// Entity is what an event is about. TaskARN is the main correlation key;
// drift events are keyed by Account/Region/Cluster instead.
type Entity struct {
	Account           string `json:"account,omitempty"`
	Region            string `json:"region,omitempty"`
	Cluster           string `json:"cluster,omitempty"` // cluster short name
	Service           string `json:"service,omitempty"`
	TaskARN           string `json:"task_arn,omitempty"`
	TaskDefinitionARN string `json:"task_definition_arn,omitempty"`
	ContainerID       string `json:"container_id,omitempty"`
	Principal         string `json:"principal,omitempty"`
}

// Position says where a record came from, for error reports and dead letters.
type Position struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`   // 1-based line of the record (0 if unknown)
	Record int    `json:"record,omitempty"` // 0-based index of the record inside a container (Records[], findings[], logEvents[])
}

func (p Position) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Record >= 0 && (p.Record > 0 || p.Line == 0) {
		fmt.Fprintf(&b, " record %d", p.Record)
	}
	return b.String()
}

// Event is the normalised form every source produces.
type Event struct {
	// ID is stable for the same record: CloudTrail eventID, GuardDuty
	// id + "@" + updatedAt, a content hash for Falco and metrics.
	ID       string
	Source   Source
	Type     string // finding type, eventSource:eventName, Falco rule, metrics/Task
	Time     time.Time
	Entity   Entity
	Severity Severity
	// Sample marks GuardDuty sample findings (service.additionalInfo.sample).
	Sample bool
	// Raw is the source record as JSON, exactly as read (after unwrapping
	// envelopes such as EventBridge or CloudWatch Logs). It is the event's
	// own (never a reader's buffer) and never changes once the event is
	// handed on, so that whoever keeps the event's record shares it.
	Raw json.RawMessage
	// Containers lists further container runtime ids that belong to
	// Entity.TaskARN (the containers of an ECS Task State Change); the
	// resolver learns them.
	Containers []string
	// Pos is where the record was read; not part of the event's identity.
	Pos Position
	// Seq is the arrival order, used to break ties between equal times.
	Seq uint64
	// Received is the processing time a live input took the record in
	// (zero: when the Runner got it); receipt → incident latency is
	// measured from it.
	Received time.Time
	// Eager marks an event whose order-insensitive rules (single-event
	// matches) the correlator has already evaluated on arrival; the
	// in-order pass evaluates the rest (see RunnerOptions.Eager).
	Eager bool
	// Family is the key family a scale-out ingest published this copy of
	// the event for (correlate/partition): a correlate instance feeds it
	// to that family's rules only. "" in one process.
	Family string
	// Prepared is what a Preparer worked out of the event ahead of
	// Process; the correlator's own.
	Prepared any
	// Judged, when not nil, is what the reader's filter found of the
	// record's candidate matchers, judged exactly on its bytes (Verdict):
	// bit i is whether signal i of the rule set fingerprinted JudgedBy
	// matched. A judged event may come without Raw (Verdict.NoRaw).
	Judged   []uint64
	JudgedBy uint64

	// batch is the input batch the event came in, while the Runner holds it.
	batch *pendingBatch
	// contentHash is the applied-event set's digest of what the event
	// says (seenSet.contentHash), when hashed: the Runner's input
	// goroutines work it out beside Prepare, so that the goroutine that
	// applies events in order reads the record one time less.
	contentHash uint64
	hashed      bool
	// seenKey is the event's key in the applied-event set (seenIDOf),
	// when seenKeyed: worked out there too, for the same reason.
	seenKey   seenID
	seenKeyed bool
}

// HashContent works out the digest of what ev says from raw, the record
// ev was decoded from, for an event that does not keep its Raw: the
// applied-event set still tells a redelivery from a conflicting record.
func (ev *Event) HashContent(raw []byte) {
	var d xxhash.Digest
	ev.contentHash, ev.hashed = contentHash(&d, ev, raw), true
}

// Less orders events by event time, then source, then arrival, then ID, so
// that a sort is deterministic whatever order the inputs arrived in.
func Less(a, b *Event) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	if a.Source != b.Source {
		return a.Source < b.Source
	}
	if a.ID != b.ID {
		return a.ID < b.ID
	}
	// Two records with one id but other content (a conflict the Runner
	// reports) must still come in the same order in every run.
	if c := bytes.Compare(a.Raw, b.Raw); c != 0 {
		return c < 0
	}
	return a.Seq < b.Seq
}

// EventRef is the evidence an incident keeps of one event.
type EventRef struct {
	Source Source    `json:"source"`
	ID     string    `json:"id"`
	Type   string    `json:"type"`
	Time   time.Time `json:"time"`
	// Step names the rule step or signal the event matched (sequence steps,
	// temporal signals); empty for plain matches.
	Step string `json:"step,omitempty"`
}

// Ref returns the evidence reference for e.
func (e *Event) Ref(step string) EventRef {
	return EventRef{Source: e.Source, ID: e.ID, Type: e.Type, Time: e.Time.UTC(), Step: step}
}
