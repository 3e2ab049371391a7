// Package eventbridge is the stream sink that puts every incident change
// on an Amazon EventBridge bus (PutEvents), so rules there can route
// incidents to anything AWS reaches, the way GuardDuty findings are routed.
//
// Each event has Source "ecscorr" (configurable), DetailType
// "ecscorr Incident", the incident's JSONL record (as `replay --format
// jsonl` writes it) as Detail, the task and task definition ARNs as
// Resources and last_seen as Time. Endpoint, region and credentials come
// from the SDK's default chain, so AWS_ENDPOINT_URL_EVENTBRIDGE works.
package eventbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/file"
)

const (
	// DetailType is the detail-type of every event; EventBridge rules
	// match on it.
	DetailType = "ecscorr Incident"
	// MaxEntries is the most entries one PutEvents call takes.
	MaxEntries = 10
	// MaxRequestBytes is the most one PutEvents call takes, counted as
	// EventBridge counts entry sizes (EntrySize).
	MaxRequestBytes = 256 * 1024
)

// Config says where incidents go.
type Config struct {
	// Name of the sink in the outbox, logs and metrics (default
	// "eventbridge"); stable across restarts.
	Name string
	// BusName is the event bus name or ARN (default "default").
	BusName string
	// Source of the events (default "ecscorr").
	Source string
	// Region overrides the SDK's default chain (AWS_REGION, profile).
	Region string
	// ThrottleWait is how long a throttled call or entry waits at least
	// before it is tried again (default 1s); the outbox backoff applies
	// on top.
	ThrottleWait time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// DefaultPolicy is how the outbox drains to EventBridge: one PutEvents
// call per delivery (10 entries), far under the account's PutEvents quota,
// and about two hours of retries before an incident is dead-lettered.
func DefaultPolicy() pipeline.DeliveryPolicy {
	return pipeline.DeliveryPolicy{
		MaxAttempts: 30,
		BackoffBase: time.Second,
		BackoffMax:  5 * time.Minute,
		Rate:        50,
		Burst:       10,
		BatchSize:   MaxEntries,
	}
}

// Sink puts incidents on one bus.
type Sink struct {
	name, bus, source string
	throttleWait      time.Duration
	client            *eventbridge.Client
	log               *slog.Logger
}

// New loads the AWS configuration from the default chain and returns the
// sink. The SDK makes one attempt per call: the outbox owns retries, so
// its backoff, attempts and dead letters are what happens.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	s := &Sink{name: cfg.Name, bus: cfg.BusName, source: cfg.Source, throttleWait: cfg.ThrottleWait, log: cfg.Logger}
	if s.name == "" {
		s.name = "eventbridge"
	}
	if s.bus == "" {
		s.bus = "default"
	}
	if s.source == "" {
		s.source = "ecscorr"
	}
	if s.throttleWait <= 0 {
		s.throttleWait = time.Second
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	var opts []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("eventbridge: loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("eventbridge: no AWS region (set AWS_REGION or the sink's region)")
	}
	s.client = eventbridge.NewFromConfig(awsCfg, func(o *eventbridge.Options) { o.Retryer = aws.NopRetryer{} })
	return s, nil
}

func (s *Sink) Name() string                { return s.name }
func (s *Sink) Mode() pipeline.SinkMode     { return pipeline.SinkStream }
func (s *Sink) Close(context.Context) error { return nil }

// entry is one incident's event, with its size as EventBridge counts it.
type entry struct {
	id   string
	e    types.PutEventsRequestEntry
	size int
}

// Deliver puts incs on the bus in calls of at most MaxEntries entries and
// MaxRequestBytes. Entries the service refuses come back in a
// pipeline.BatchError by incident id: throttled and internal failures to
// be retried, the rest (MalformedDetail, InvalidArgument, ...) permanent.
func (s *Sink) Deliver(ctx context.Context, incs []pipeline.Incident) error {
	failed := map[string]error{}
	var chunks [][]entry
	var chunkBytes int
	for i := range incs {
		en, err := s.entry(&incs[i])
		if err != nil {
			failed[incs[i].ID] = err
			continue
		}
		if k := len(chunks); k == 0 || len(chunks[k-1]) == MaxEntries || chunkBytes+en.size > MaxRequestBytes {
			chunks, chunkBytes = append(chunks, nil), 0
		}
		chunks[len(chunks)-1] = append(chunks[len(chunks)-1], en)
		chunkBytes += en.size
	}
	for i, chunk := range chunks {
		if err := s.put(ctx, chunk, failed); err != nil {
			// Throttled or down: the rest of the delivery waits too.
			for _, rest := range chunks[i+1:] {
				for _, en := range rest {
					failed[en.id] = err
				}
			}
			break
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &pipeline.BatchError{Failed: failed}
}

// entry builds inc's event. An entry over MaxRequestBytes loses evidence
// from the end (events_dropped counts it) until it fits; one that does not
// fit even without evidence is a permanent failure.
func (s *Sink) entry(inc *pipeline.Incident) (entry, error) {
	en, err := s.entryOf(inc)
	if err != nil || en.size <= MaxRequestBytes {
		return en, err
	}
	full := en.size
	// The largest number of events kept that fits: keep[lo] fits, keep[hi] does not.
	lo, hi := -1, len(inc.Events)
	var best entry
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		t := *inc
		t.Events = inc.Events[:mid:mid]
		t.EventsDropped = inc.EventsDropped + len(inc.Events) - mid
		e, err := s.entryOf(&t)
		if err != nil {
			return entry{}, err
		}
		if e.size <= MaxRequestBytes {
			lo, best = mid, e
		} else {
			hi = mid
		}
	}
	if lo < 0 {
		return entry{}, pipeline.Permanent(fmt.Errorf("event of %d bytes is over EventBridge's %d-byte limit even without its evidence", full, MaxRequestBytes))
	}
	s.log.Warn("eventbridge: incident over the entry size limit, evidence trimmed", "sink", s.name, "incident", inc.ID,
		"bytes", full, "events_kept", lo, "events_dropped", len(inc.Events)-lo)
	return best, nil
}

func (s *Sink) entryOf(inc *pipeline.Incident) (entry, error) {
	detail, err := file.Record(inc)
	if err != nil {
		return entry{}, pipeline.Permanent(err)
	}
	e := types.PutEventsRequestEntry{
		EventBusName: aws.String(s.bus),
		Source:       aws.String(s.source),
		DetailType:   aws.String(DetailType),
		Detail:       aws.String(string(detail)),
		Resources:    resources(inc),
	}
	if !inc.LastSeen.IsZero() {
		e.Time = aws.Time(inc.LastSeen)
	}
	return entry{id: inc.ID, e: e, size: EntrySize(&e)}, nil
}

// resources are the ARNs the incident is about: its task and task
// definition, from its key or, failing that, its fields.
func resources(inc *pipeline.Incident) []string {
	var out []string
	for _, k := range []string{"task_arn", "task_definition_arn"} {
		v := inc.Key[k]
		if v == "" {
			v, _ = inc.Fields[k].(string)
		}
		if strings.HasPrefix(v, "arn:") {
			out = append(out, v)
		}
	}
	return out
}

// EntrySize is an entry's size as EventBridge counts it against the
// request limit: 14 bytes for Time, and the UTF-8 bytes of Source,
// DetailType, Detail and each resource.
func EntrySize(e *types.PutEventsRequestEntry) int {
	n := 0
	if e.Time != nil {
		n += 14
	}
	n += len(aws.ToString(e.Source)) + len(aws.ToString(e.DetailType)) + len(aws.ToString(e.Detail))
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

// put makes one PutEvents call and records in failed the entries that
// did not go through; it returns the error of a call that failed as a
// whole and may succeed later.
func (s *Sink) put(ctx context.Context, chunk []entry, failed map[string]error) error {
	in := &eventbridge.PutEventsInput{Entries: make([]types.PutEventsRequestEntry, len(chunk))}
	for i := range chunk {
		in.Entries[i] = chunk[i].e
	}
	out, err := s.client.PutEvents(ctx, in)
	if err != nil {
		err = s.callError(err)
		var api smithy.APIError
		if len(chunk) > 1 && errors.As(err, &api) && api.ErrorCode() == "ValidationException" {
			// One entry spoils the call: find it by putting them one by one.
			for i := range chunk {
				if err := s.put(ctx, chunk[i:i+1], failed); err != nil {
					for _, en := range chunk[i+1:] {
						failed[en.id] = err
					}
					return err
				}
			}
			return nil
		}
		for _, en := range chunk {
			failed[en.id] = err
		}
		if errors.Is(err, pipeline.ErrPermanent) {
			return nil
		}
		return err
	}
	if len(out.Entries) != len(chunk) {
		err := fmt.Errorf("eventbridge: PutEvents answered %d entries for %d", len(out.Entries), len(chunk))
		for _, en := range chunk {
			failed[en.id] = err
		}
		return nil
	}
	for i, r := range out.Entries {
		if code := aws.ToString(r.ErrorCode); code != "" {
			failed[chunk[i].id] = s.entryError(code, aws.ToString(r.ErrorMessage))
		}
	}
	return nil
}

// callError classifies the failure of a whole call.
func (s *Sink) callError(err error) error {
	err = fmt.Errorf("eventbridge: PutEvents: %w", err)
	var api smithy.APIError
	if !errors.As(err, &api) {
		return err // network, timeout: retried
	}
	switch api.ErrorCode() {
	case "ThrottlingException":
		return &pipeline.RetryAfterError{After: s.throttleWait, Err: err}
	case "ValidationException", "AccessDeniedException", "ResourceNotFoundException":
		// The payload or the bus: retrying the same call cannot help.
		return pipeline.Permanent(err)
	}
	return err
}

// entryError classifies the failure of one entry (PutEventsResultEntry).
func (s *Sink) entryError(code, msg string) error {
	err := fmt.Errorf("eventbridge: entry refused: %s: %s", code, msg)
	switch code {
	case "ThrottlingException":
		return &pipeline.RetryAfterError{After: s.throttleWait, Err: err}
	case "InternalFailure", "InternalException":
		return err
	case "AccessDeniedException", "InvalidAccountIdException", "InvalidArgument", "MalformedDetail",
		"RedactionFailure", "NotAuthorizedForSourceException", "NotAuthorizedForDetailTypeException":
		return pipeline.Permanent(err)
	}
	return err // an unknown code: retried until the attempts run out
}
