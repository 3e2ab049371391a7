package pipeline

import (
	"time"
)

// IncidentStatus is open until a resolve rule, a metric recovery or an
// expiry closes it.
type IncidentStatus string

const (
	IncidentOpen     IncidentStatus = "open"
	IncidentResolved IncidentStatus = "resolved"
)

// Incident is what rules produce and sinks deliver. Its JSON form is the
// `replay --format jsonl` output and the outbox record.
type Incident struct {
	// ID is deterministic: a hash of rule id, dedup key and first event id,
	// so a restart or a replay yields the same ID.
	ID          string            `json:"id"`
	Rule        string            `json:"rule"`
	Title       string            `json:"title"`
	Severity    Severity          `json:"severity"`
	Tags        []string          `json:"tags"`
	Mitre       []string          `json:"mitre"`
	Key         map[string]string `json:"key"`
	FirstSeen   time.Time         `json:"first_seen"`
	LastSeen    time.Time         `json:"last_seen"`
	Summary     string            `json:"summary"`
	Remediation string            `json:"remediation"`
	Runbook     string            `json:"runbook,omitempty"`
	// Count is how many times the rule hit for this dedup key (1 for a
	// fresh incident; repeats within the dedup window add to it).
	Count  int            `json:"count"`
	Status IncidentStatus `json:"status"`
	// ResolvedAt and ResolvedBy are set when Status is resolved.
	ResolvedAt *time.Time     `json:"resolved_at,omitempty"`
	ResolvedBy *EventRef      `json:"resolved_by,omitempty"`
	Fields     map[string]any `json:"fields,omitempty"`
	Route      []string       `json:"route,omitempty"`
	Events     []EventRef     `json:"events"`
	// EventsDropped counts evidence not kept because of the evidence cap.
	EventsDropped int `json:"events_dropped,omitempty"`
}

// Newer reports whether a is a later version of the same incident than b,
// as a consumer merging the streams of several correlate instances (or a
// rebuild's re-decisions) sees them: more occurrences, then more evidence,
// then a later last_seen, then resolved over open. Versions of one
// incident only grow along these, so the newest wins whatever the order
// they were read in.
func Newer(a, b Incident) bool {
	if a.Count != b.Count {
		return a.Count > b.Count
	}
	if len(a.Events) != len(b.Events) {
		return len(a.Events) > len(b.Events)
	}
	if !a.LastSeen.Equal(b.LastSeen) {
		return a.LastSeen.After(b.LastSeen)
	}
	return a.Status != IncidentOpen && b.Status == IncidentOpen
}
