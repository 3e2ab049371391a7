package format

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// Format describes one log format once: how a document of it is detected
// and decoded (into events of Source, or into the records it wraps), which
// members make an event's type, and where its time and identity live for
// rule tests that rewrite them. Decoding, rule tests and signal dispatch
// all read this table; adding a format means adding an entry here and its
// decoder in this package.
type Format struct {
	// Name is the format's name in messages.
	Name string
	// Source is the source of the events a record of this format
	// becomes; "" for containers and envelopes of other formats' records.
	Source pipeline.Source
	// TypeFields are the record members whose values, joined with ':'
	// and after TypePrefix, are an event's Type (signal dispatch derives
	// a rule's types from comparisons on raw.<field>). Empty when the
	// type is not a plain function of the record's members.
	TypeFields []string
	TypePrefix string

	// detect reports whether a top-level document is of this format.
	detect func(u *doc) bool
	// decode decodes a document detect accepted.
	decode func(d *Decoder, u *doc, data []byte, pos pipeline.Position, wc *WrapContext, depth int)
	// setTime writes t into a decoded record's time members (nil: the
	// format's time cannot be set, its records carry their own).
	setTime func(m map[string]any, t time.Time) error
	// idFields are the members that make a record's ID; rule tests
	// suffix them to tell repeated records apart.
	idFields []string
	// inner is the member holding the one record an envelope wraps.
	inner string
	// records are the members of a container format whose array
	// elements are records of recordSource, or log events (logEvents),
	// for readers that stream an object too large to hold.
	records      []string
	recordSource pipeline.Source
	logEvents    bool
	// context makes the context of a container's log events from its
	// other members (nil: none).
	context func(d *Decoder, members map[string]string, sample []byte, pos pipeline.Position) (*WrapContext, bool)
}

// formats lists every format in detection order: the first whose detect
// accepts a document decodes it.
func formats() []*Format {
	return []*Format{
		{
			Name:   "EventBridge envelope",
			detect: func(u *doc) bool { return u.DetailType != "" && len(u.Detail) > 0 },
			decode: func(d *Decoder, u *doc, data []byte, pos pipeline.Position, wc *WrapContext, depth int) {
				d.eventBridge(u, data, pos, wc, depth)
			},
			setTime:  setEventBridgeTime,
			idFields: []string{"id"},
			inner:    "detail",
		},
		{
			Name:         "CloudTrail S3 object",
			records:      []string{"Records"},
			recordSource: pipeline.SourceCloudTrail,
			detect:       func(u *doc) bool { return len(u.Records) > 0 },
			decode: func(d *Decoder, u *doc, _ []byte, pos pipeline.Position, wc *WrapContext, depth int) {
				d.decodeArray(u.Records, pos, pipeline.SourceCloudTrail, wc, depth)
			},
		},
		{
			Name:      "CloudWatch Logs subscription payload",
			records:   []string{"logEvents"},
			logEvents: true,
			context: func(d *Decoder, m map[string]string, sample []byte, pos pipeline.Position) (*WrapContext, bool) {
				return d.SubscriptionContext(m["messageType"], m["owner"], m["logGroup"], m["logStream"], sample, pos)
			},
			detect: func(u *doc) bool { return u.MessageType != "" || len(u.LogEvents) > 0 },
			decode: func(d *Decoder, u *doc, data []byte, pos pipeline.Position, _ *WrapContext, depth int) {
				d.subscription(u, data, pos, depth)
			},
		},
		{
			Name:   "Lambda CloudWatch Logs event",
			detect: func(u *doc) bool { return len(u.Awslogs) > 0 },
			decode: func(d *Decoder, u *doc, _ []byte, pos pipeline.Position, _ *WrapContext, depth int) {
				d.lambdaLogs(u.Awslogs, pos, depth)
			},
		},
		{
			Name:         "GuardDuty findings list",
			records:      []string{"findings", "Findings"},
			recordSource: pipeline.SourceGuardDuty,
			detect:       func(u *doc) bool { return len(u.Findings) > 0 },
			decode: func(d *Decoder, u *doc, _ []byte, pos pipeline.Position, wc *WrapContext, depth int) {
				d.decodeArray(u.Findings, pos, pipeline.SourceGuardDuty, wc, depth)
			},
		},
		{
			Name:      "CloudWatch Logs filter-log-events output",
			records:   []string{"events"},
			logEvents: true,
			detect:    func(u *doc) bool { return len(u.Events) > 0 && u.EventSource == "" },
			decode: func(d *Decoder, u *doc, _ []byte, pos pipeline.Position, _ *WrapContext, depth int) {
				d.filterLogEvents(u, pos, depth)
			},
		},
		{
			Name:       "CloudTrail record",
			Source:     pipeline.SourceCloudTrail,
			TypeFields: []string{"eventSource", "eventName"},
			detect:     func(u *doc) bool { return u.EventSource != "" && (u.EventName != "" || u.EventVersion != "") },
			decode: func(d *Decoder, u *doc, data []byte, pos pipeline.Position, _ *WrapContext, _ int) {
				d.cloudTrail(&u.ctFields, data, pos)
			},
			setTime: func(m map[string]any, t time.Time) error {
				m["eventTime"] = isoSeconds(t)
				return nil
			},
			idFields: []string{"eventID"},
		},
		{
			Name:   "Security Hub finding",
			detect: func(u *doc) bool { return len(u.ProductArn) > 0 },
			decode: func(d *Decoder, _ *doc, data []byte, pos pipeline.Position, _ *WrapContext, _ int) {
				d.reject(pos, "", SkipUnsupported, "unsupported record: Security Hub finding", data)
			},
		},
		{
			Name:       "GuardDuty finding",
			Source:     pipeline.SourceGuardDuty,
			TypeFields: []string{"type"},
			detect: func(u *doc) bool {
				return u.SchemaVersion != "" || (len(u.ID) > 0 && len(u.Type) > 0 && (len(u.Resource) > 0 || len(u.Service) > 0))
			},
			decode: func(d *Decoder, u *doc, data []byte, pos pipeline.Position, _ *WrapContext, _ int) {
				d.guardDuty(u, data, pos)
			},
			setTime: func(m map[string]any, t time.Time) error {
				ms := isoMillis(t)
				m["updatedAt"], m["createdAt"] = ms, ms
				if svc, ok := m["service"].(map[string]any); ok {
					svc["eventFirstSeen"], svc["eventLastSeen"] = ms, ms
				}
				return nil
			},
			idFields: []string{"id"},
		},
		{
			Name:       "Falco alert",
			Source:     pipeline.SourceFalco,
			TypeFields: []string{"rule"},
			detect: func(u *doc) bool {
				return u.Rule != "" && (u.Output != "" || u.OutputFields != nil || u.Priority != "")
			},
			decode: func(d *Decoder, u *doc, data []byte, pos pipeline.Position, _ *WrapContext, _ int) {
				d.falco(u, data, pos)
			},
			setTime: func(m map[string]any, t time.Time) error {
				m["time"] = t.UTC().Format(time.RFC3339Nano)
				if of, ok := m["output_fields"].(map[string]any); ok {
					if _, ok := of["evt.time"]; ok {
						of["evt.time"] = json.Number(strconv.FormatInt(t.UnixNano(), 10))
					}
				}
				return nil
			},
		},
		{
			Name:       "Container Insights performance event",
			Source:     pipeline.SourceContainerInsights,
			TypeFields: []string{"Type"},
			TypePrefix: "metrics/",
			detect: func(u *doc) bool {
				return len(u.Type) > 0 && (len(u.Timestamp) > 0 || u.TaskID != "" || u.ClusterName != "")
			},
			decode: func(d *Decoder, u *doc, data []byte, pos pipeline.Position, wc *WrapContext, _ int) {
				d.insights(u, data, pos, wc)
			},
			setTime: func(m map[string]any, t time.Time) error {
				m["Timestamp"] = json.Number(strconv.FormatInt(t.UnixMilli(), 10))
				return nil
			},
		},
		{
			Name:   "CloudTrail record without eventSource/eventName",
			detect: func(u *doc) bool { return u.EventTime != "" || u.EventVersion != "" },
			decode: func(d *Decoder, _ *doc, data []byte, pos pipeline.Position, _ *WrapContext, _ int) {
				d.reject(pos, pipeline.SourceCloudTrail, SkipInvalid, "CloudTrail record without eventSource/eventName", data)
			},
		},
	}
}

// ecsEventFormat is the format of ECS's own events, which arrive in
// EventBridge envelopes (see Decoder.eventBridge). Their type is the
// envelope's detail-type; it has no TypeFields, as signal dispatch has
// never derived ECS types (the rule loader's tests pin that).
func ecsEventFormat() Format {
	return Format{Name: "ECS event", Source: pipeline.SourceECS}
}

// ForSource returns the record format whose events have source src.
func ForSource(src pipeline.Source) (Format, bool) {
	if src == pipeline.SourceECS {
		return ecsEventFormat(), true
	}
	for _, f := range formats() {
		if f.Source == src && src != "" {
			return *f, true
		}
	}
	return Format{}, false
}

// Sources lists the sources of every record format, in pipeline.Sources
// order.
func Sources() []pipeline.Source {
	var out []pipeline.Source
	for _, s := range pipeline.Sources {
		if _, ok := ForSource(s); ok {
			out = append(out, s)
		}
	}
	return out
}

// Container is a member of a container format that holds records, for
// readers that stream an object too large to hold member by member.
type Container struct {
	f *Format
}

// Source is the source of the container's records ("" for log events).
func (c Container) Source() pipeline.Source { return c.f.recordSource }

// LogEvents reports whether the elements are CloudWatch Logs log events
// (for Decoder.ParseLogEvent and LogEventBatch).
func (c Container) LogEvents() bool { return c.f.logEvents }

// ContainerMember reports whether member key of an object holds an array
// of records, given the object's string members seen before it (members
// of a record make it a record, not a container).
func ContainerMember(key string, members map[string]string) (Container, bool) {
	if members["eventSource"] != "" {
		return Container{}, false
	}
	for _, f := range formats() {
		for _, r := range f.records {
			if r == key {
				return Container{f: f}, true
			}
		}
	}
	return Container{}, false
}

// StreamContext is the context of a streamed container's log events, from
// the object's string members seen so far; it reports false (having
// counted why) if they hold no records.
func (d *Decoder) StreamContext(c Container, members map[string]string, sample []byte, pos pipeline.Position) (*WrapContext, bool) {
	if c.f.context == nil {
		return &WrapContext{}, true
	}
	return c.f.context(d, members, sample, pos)
}

// detect returns the format of a decoded top-level document, or nil.
func detect(u *doc, fs []*Format) *Format {
	for _, f := range fs {
		if f.detect(u) {
			return f
		}
	}
	return nil
}

// Detect returns the format of a JSON document (a record, an envelope, a
// container), as Decode detects it.
func Detect(data []byte) (Format, error) {
	var u doc
	if err := unmarshalDoc(data, &u); err != nil {
		return Format{}, err
	}
	if f := detect(&u, formats()); f != nil {
		return *f, nil
	}
	return Format{}, errors.New("unrecognised record format")
}

// SetTime writes t into the time members of a record held as decoded JSON
// (rule tests' `at`), so that decoding it yields an event at t.
func SetTime(m map[string]any, t time.Time) error {
	f, err := detectMap(m)
	if err != nil {
		return errors.New("unrecognised record format (not CloudTrail, GuardDuty, Falco, Container Insights or EventBridge), cannot set its time")
	}
	if f.setTime == nil {
		return fmt.Errorf("cannot set the time of a %s; its records keep their own times", f.Name)
	}
	return f.setTime(m, t.UTC())
}

// SuffixID appends sfx to the members that make a record's ID (and its
// EventBridge detail's), so that a repeated record is a distinct event.
func SuffixID(m map[string]any, sfx string) {
	f, err := detectMap(m)
	if err != nil {
		return
	}
	for _, k := range f.idFields {
		if s, ok := m[k].(string); ok {
			m[k] = s + sfx
		}
	}
	if d, ok := m[f.inner].(map[string]any); ok && f.inner != "" {
		SuffixID(d, sfx)
	}
}

func detectMap(m map[string]any) (Format, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return Format{}, err
	}
	return Detect(raw)
}

// setEventBridgeTime sets the envelope's time and its detail's.
func setEventBridgeTime(m map[string]any, t time.Time) error {
	m["time"] = t.Format(time.RFC3339)
	d, _ := m["detail"].(map[string]any)
	if d == nil {
		return nil
	}
	if f, err := detectMap(d); err == nil && f.setTime != nil {
		return f.setTime(d, t)
	}
	if _, ok := d["updatedAt"]; ok { // ECS Task State Change
		d["updatedAt"] = isoMillis(t)
	}
	return nil
}

func isoSeconds(t time.Time) string {
	if t.Nanosecond() == 0 {
		return t.Format(time.RFC3339)
	}
	return isoMillis(t)
}

func isoMillis(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z") }
