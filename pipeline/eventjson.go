package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	json "github.com/goccy/go-json"
)

// eventJSON is the wire form of a normalised event: what a normaliser
// publishes (to Kafka, in the scale-out design) and the kafka input reads
// with format "events". It holds an event's identity and content only;
// Pos, Seq, Received and Eager are local to the process that holds it.
type eventJSON struct {
	ID         string          `json:"id"`
	Source     Source          `json:"source"`
	Type       string          `json:"type"`
	Time       string          `json:"time"` // RFC 3339 with nanoseconds, UTC
	Entity     Entity          `json:"entity"`
	Severity   string          `json:"severity,omitempty"`
	Sample     bool            `json:"sample,omitempty"`
	Raw        json.RawMessage `json:"raw,omitempty"`
	Containers []string        `json:"containers,omitempty"`
	Family     string          `json:"family,omitempty"`
}

// MarshalEventJSON encodes ev in the normalised event wire form:
//
//	{"id":..,"source":..,"type":..,"time":"2023-07-10T12:01:02.123456789Z",
//	 "entity":{..},"severity":"high","sample":true,"raw":{..},"containers":[..]}
//
// severity is omitted when unknown, sample when false, raw when empty and
// containers when none, family when "". Raw must be JSON.
func MarshalEventJSON(ev *Event) ([]byte, error) {
	w := eventJSON{
		ID: ev.ID, Source: ev.Source, Type: ev.Type, Time: ev.Time.UTC().Format(time.RFC3339Nano),
		Entity: ev.Entity, Sample: ev.Sample, Raw: json.RawMessage(ev.Raw), Containers: ev.Containers,
		Family: ev.Family,
	}
	if ev.Severity != SeverityUnknown {
		w.Severity = ev.Severity.String()
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("encoding event %s: %w", ev.ID, err)
	}
	return b, nil
}

// UnmarshalEventJSON decodes the wire form MarshalEventJSON writes. id,
// source (a known one) and time are required; unknown members are ignored
// so that a newer writer can add some. Raw is a copy, data may be reused.
func UnmarshalEventJSON(data []byte) (*Event, error) {
	var w eventJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("normalised event: %w", err)
	}
	if w.ID == "" {
		return nil, errors.New("normalised event: no id")
	}
	src, err := ParseSource(string(w.Source))
	if err != nil {
		return nil, fmt.Errorf("normalised event %s: %w", w.ID, err)
	}
	if w.Time == "" {
		return nil, fmt.Errorf("normalised event %s: no time", w.ID)
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return nil, fmt.Errorf("normalised event %s: time: %w", w.ID, err)
	}
	sev := SeverityUnknown
	if w.Severity != "" && w.Severity != "unknown" {
		if sev, err = ParseSeverity(w.Severity); err != nil {
			return nil, fmt.Errorf("normalised event %s: %w", w.ID, err)
		}
	}
	ev := &Event{ID: w.ID, Source: src, Type: w.Type, Time: t.UTC(), Entity: w.Entity, Severity: sev,
		Sample: w.Sample, Containers: w.Containers, Family: w.Family}
	if raw := bytes.TrimSpace(w.Raw); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		ev.Raw = bytes.Clone(raw)
	}
	return ev, nil
}
