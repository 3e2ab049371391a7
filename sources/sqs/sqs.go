// Package sqs is the live input of Amazon SQS queues fed by EventBridge
// rules (GuardDuty findings, CloudTrail API calls, ECS events) and by S3
// event notifications of new CloudTrail and GuardDuty export objects
// (direct, through EventBridge "Object Created", or wrapped by SNS), which
// it then reads from S3 with sources/s3's object reader.
//
// One ReceiveMessage is one batch. The batch's messages are deleted
// (DeleteMessageBatch) only when the Runner acknowledges it, after the
// commit that holds its effects; until then a goroutine keeps them
// invisible (ChangeMessageVisibilityBatch at half their visibility
// timeout). A nacked batch is left to become visible again (or given a
// backoff visibility), never made visible at once, so that a message that
// keeps failing reaches the queue's redrive policy. A body that cannot be
// decoded is reported to Bad and deleted with its batch; an S3 object that
// cannot be read for a transient reason keeps its message on the queue
// for redelivery, while a missing object is reported and deleted.
package sqs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	json "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
	s3src "github.com/ecscorr/ecscorr/sources/s3"
)

// Defaults of Options.
const (
	DefaultWait        = 20 * time.Second
	DefaultMaxMessages = 10
	DefaultReceivers   = 4
	maxReceivers       = 64
	// maxVisibility is SQS's limit on a message's visibility (12 h).
	maxVisibility = 12 * time.Hour
)

// Options configure an Input.
type Options struct {
	// QueueURL is the queue; or QueueName, resolved with GetQueueUrl.
	QueueURL, QueueName string
	// Name identifies the input; default "sqs:<queue name>".
	Name string
	// Wait is the long-poll wait (WaitTimeSeconds, whole seconds, at most
	// 20 s); default DefaultWait. Negative means short polling.
	Wait time.Duration
	// MaxMessages per ReceiveMessage (1..10); default DefaultMaxMessages.
	MaxMessages int32
	// VisibilityTimeout asked for at each receive; 0 means the queue's
	// (read with GetQueueAttributes at Open). Messages still unacknowledged
	// after half of it are extended by as much again.
	VisibilityTimeout time.Duration
	// Receivers is the number of ReceiveMessage loops in parallel (each
	// decodes its own messages); default DefaultReceivers, at most 64.
	// One loop moves at most 10 messages per round trip: against SQS
	// (10-20 ms a receive) 20,000 messages/s needs 20-40 of them.
	Receivers int
	// NackBackoff, when positive, sets a nacked (or S3-failed) message's
	// visibility to NackBackoff × its receive count (at most 12 h); 0
	// lets its current visibility lapse.
	NackBackoff time.Duration
	// Client is the SQS client; nil takes one from the SDK's default chain
	// (AWS_ENDPOINT_URL_SQS works). Its MD5 checks of bodies must stay on.
	Client *awssqs.Client
	// S3Client reads the objects S3 notifications announce; nil takes one
	// from the default chain when the first notification arrives.
	S3Client *s3.Client
	// MaxRecordBytes caps one record; 0 means format.DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Bad receives every record skipped with its position
	// (sqs://<queue>/<message id>, or s3://bucket/key for object records);
	// nil only counts them.
	Bad func(format.RecordError)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Stats counts what an Input did.
type Stats struct {
	Receives, ReceiveErrors, Messages, Events, Bad int64
	// Objects read from S3 notifications, ObjectRetries left for
	// redelivery after a transient failure, ObjectsGone missing objects.
	Objects, ObjectRetries, ObjectsGone int64
	// Deleted messages; DeleteExpired deletes refused because the receipt
	// handle was no longer valid (the message will come again and be
	// skipped as applied); DeleteFailed other failures.
	Deleted, DeleteExpired, DeleteFailed int64
	// Extended visibility changes; ExtendFailed refused ones.
	Extended, ExtendFailed int64
	// Nacked messages; Skipped S3 test events and non-creation
	// notifications.
	Nacked, Skipped int64
}

// Input reads one queue.
type Input struct {
	o     Options
	log   *slog.Logger
	queue string
	vis   time.Duration

	s3mu sync.Mutex
	objs *s3src.ObjectReader

	out    chan received
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Deletes run on their own goroutines: an ack returns at once, so
	// that the Runner's commit loop does not wait a round trip per batch.
	delMu     sync.RWMutex
	dels      chan []*flight
	delClosed bool
	delWG     sync.WaitGroup

	mu     sync.Mutex
	flight map[string]*flight // by receipt handle
	ready  error

	stats struct {
		receives, receiveErrors, messages, events, bad               atomic.Int64
		objects, objectRetries, objectsGone                          atomic.Int64
		deleted, deleteExpired, deleteFailed, extended, extendFailed atomic.Int64
		nacked, skipped                                              atomic.Int64
	}
}

// flight is a received message not yet deleted or released.
type flight struct {
	handle   string
	count    int       // ApproximateReceiveCount
	deadline time.Time // when its visibility lapses
}

// received is one receive's batch.
type received struct {
	b    pipeline.Batch
	keep []*flight // deleted on ack
}

// New returns an Input with opts.
func New(opts Options) (*Input, error) {
	if opts.QueueURL == "" && opts.QueueName == "" {
		return nil, errors.New("sqs: queue_url is required")
	}
	switch {
	case opts.Wait == 0:
		opts.Wait = DefaultWait
	case opts.Wait < 0:
		opts.Wait = 0
	case opts.Wait > 20*time.Second:
		return nil, fmt.Errorf("sqs: wait %s exceeds SQS's 20 s", opts.Wait)
	}
	if opts.MaxMessages == 0 {
		opts.MaxMessages = DefaultMaxMessages
	}
	if opts.MaxMessages < 1 || opts.MaxMessages > 10 {
		return nil, fmt.Errorf("sqs: max_messages %d is not within 1..10", opts.MaxMessages)
	}
	if opts.Receivers == 0 {
		opts.Receivers = DefaultReceivers
	}
	if opts.Receivers < 1 || opts.Receivers > maxReceivers {
		return nil, fmt.Errorf("sqs: receivers %d is not within 1..%d", opts.Receivers, maxReceivers)
	}
	if opts.VisibilityTimeout < 0 || opts.VisibilityTimeout > maxVisibility || opts.VisibilityTimeout > 0 && opts.VisibilityTimeout < time.Second {
		return nil, fmt.Errorf("sqs: visibility_timeout %s is not within 1s..12h", opts.VisibilityTimeout)
	}
	q := opts.QueueName
	if q == "" {
		q = queueName(opts.QueueURL)
	}
	if opts.Name == "" {
		opts.Name = "sqs:" + q
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Input{o: opts, log: log.With("input", opts.Name), queue: q, flight: map[string]*flight{}}, nil
}

func queueName(u string) string {
	u = strings.TrimRight(u, "/")
	return u[strings.LastIndexByte(u, '/')+1:]
}

// Name implements pipeline.Input.
func (in *Input) Name() string { return in.o.Name }

// Open implements pipeline.Input; SQS has no position (pos is ignored).
// It resolves the queue and its visibility timeout, then starts the
// receivers.
func (in *Input) Open(ctx context.Context, _ []byte) error {
	if in.o.Client == nil {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("sqs: loading the AWS configuration: %w", err)
		}
		in.o.Client = awssqs.NewFromConfig(cfg)
	}
	c := in.o.Client
	if in.o.QueueURL == "" {
		out, err := c.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(in.o.QueueName)})
		if err != nil {
			return fmt.Errorf("sqs: %s: resolving queue %q: %w", in.o.Name, in.o.QueueName, err)
		}
		in.o.QueueURL = aws.ToString(out.QueueUrl)
	}
	in.vis = in.o.VisibilityTimeout
	if in.vis == 0 {
		out, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(in.o.QueueURL),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout}})
		if err != nil {
			return fmt.Errorf("sqs: %s: reading the visibility timeout of %s: %w", in.o.Name, in.o.QueueURL, err)
		}
		secs, err := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameVisibilityTimeout)])
		if err != nil || secs < 0 {
			return fmt.Errorf("sqs: %s: queue visibility timeout %q: not a number of seconds", in.o.Name, out.Attributes[string(types.QueueAttributeNameVisibilityTimeout)])
		}
		in.vis = time.Duration(secs) * time.Second
	}
	if in.vis < time.Second {
		// A zero-visibility queue cannot hold a message through a commit.
		in.vis = time.Second
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	in.cancel = cancel
	in.out = make(chan received, in.o.Receivers)
	for range in.o.Receivers {
		r := in.newReceiver()
		in.wg.Go(func() { r.loop(rctx) })
	}
	in.wg.Go(func() { in.extendLoop(rctx) })
	in.dels = make(chan []*flight, 4*in.o.Receivers)
	for range max(2, in.o.Receivers) {
		in.delWG.Go(func() {
			for fs := range in.dels {
				in.deleteAll(context.Background(), fs)
			}
		})
	}
	return nil
}

// Read implements pipeline.Input: the next receive's batch.
func (in *Input) Read(ctx context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	select {
	case <-ctx.Done():
		return pipeline.Batch{}, nil, ctx.Err()
	case r := <-in.out:
		return r.b, func(ctx context.Context, err error) error { return in.ack(ctx, r.keep, err) }, nil
	}
}

// Close implements pipeline.Input: receiving stops, acknowledged messages
// are deleted; messages not acknowledged become visible again when their
// visibility lapses.
func (in *Input) Close(context.Context) error {
	if in.cancel == nil {
		return nil
	}
	in.cancel()
	in.wg.Wait()
	in.delMu.Lock()
	if !in.delClosed {
		in.delClosed = true
		close(in.dels)
	}
	in.delMu.Unlock()
	in.delWG.Wait()
	return nil
}

// Ready implements pipeline.Readiness: nil while receives succeed.
func (in *Input) Ready() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cancel == nil {
		return errors.New("sqs: not open")
	}
	return in.ready
}

func (in *Input) setReady(err error) {
	in.mu.Lock()
	in.ready = err
	in.mu.Unlock()
}

// Stats returns the counters so far.
func (in *Input) Stats() Stats {
	s := &in.stats
	return Stats{Receives: s.receives.Load(), ReceiveErrors: s.receiveErrors.Load(), Messages: s.messages.Load(), Events: s.events.Load(),
		Bad: s.bad.Load(), Objects: s.objects.Load(), ObjectRetries: s.objectRetries.Load(), ObjectsGone: s.objectsGone.Load(),
		Deleted: s.deleted.Load(), DeleteExpired: s.deleteExpired.Load(), DeleteFailed: s.deleteFailed.Load(),
		Extended: s.extended.Load(), ExtendFailed: s.extendFailed.Load(), Nacked: s.nacked.Load(), Skipped: s.skipped.Load()}
}

func (in *Input) bad(e format.RecordError) {
	in.stats.bad.Add(1)
	if in.o.Bad != nil {
		in.o.Bad(e)
	}
}

// ack deletes the batch's messages (err == nil) or releases them (a nack).
// The deletes are queued: failures are logged and counted (a message not
// deleted comes again and is skipped as applied).
func (in *Input) ack(ctx context.Context, fs []*flight, err error) error {
	if err != nil {
		in.untrack(fs)
		in.stats.nacked.Add(int64(len(fs)))
		in.release(ctx, fs)
		return nil
	}
	if len(fs) == 0 {
		return nil
	}
	in.delMu.RLock()
	if !in.delClosed && in.dels != nil {
		// Still extended while queued; untracked once deleted.
		in.dels <- fs
		in.delMu.RUnlock()
		return nil
	}
	in.delMu.RUnlock()
	return in.deleteAll(ctx, fs)
}

func (in *Input) deleteAll(ctx context.Context, fs []*flight) error {
	defer in.untrack(fs)
	var errs []error
	for i := 0; i < len(fs); i += 10 {
		if err := in.deleteBatch(ctx, fs[i:min(i+10, len(fs))]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		in.log.Warn("sqs: delete failed; the messages will be redelivered and skipped as applied", "err", err)
		return err
	}
	return nil
}

// deleteBatch deletes up to 10 messages, retrying entries that failed on
// the service's side; an expired receipt handle is counted, not an error.
func (in *Input) deleteBatch(ctx context.Context, fs []*flight) error {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(fs))
	for i, f := range fs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(f.handle)}
	}
	for attempt := 0; ; attempt++ {
		out, err := in.o.Client.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(in.o.QueueURL), Entries: entries})
		if err != nil {
			// The SDK retried already; the messages will be redelivered
			// and skipped as applied.
			in.stats.deleteFailed.Add(int64(len(entries)))
			return fmt.Errorf("sqs: %s: deleting %d messages: %w", in.o.Name, len(entries), err)
		}
		in.stats.deleted.Add(int64(len(out.Successful)))
		var retry []types.DeleteMessageBatchRequestEntry
		for _, f := range out.Failed {
			code := aws.ToString(f.Code)
			switch {
			case code == "ReceiptHandleIsInvalid" || code == "InvalidParameterValue":
				in.stats.deleteExpired.Add(1)
				in.log.Info("sqs: receipt handle expired before the delete; the message will be redelivered and skipped as applied",
					"entry", aws.ToString(f.Id), "code", code, "message", aws.ToString(f.Message))
			case !f.SenderFault && attempt < 3:
				for _, e := range entries {
					if aws.ToString(e.Id) == aws.ToString(f.Id) {
						retry = append(retry, e)
					}
				}
			default:
				in.stats.deleteFailed.Add(1)
				in.log.Warn("sqs: delete failed; the message will be redelivered", "code", code, "message", aws.ToString(f.Message))
			}
		}
		if len(retry) == 0 {
			return nil
		}
		entries = retry
	}
}

// release gives nacked messages back: their visibility lapses, or is set
// to the backoff.
func (in *Input) release(ctx context.Context, fs []*flight) {
	if in.o.NackBackoff <= 0 || len(fs) == 0 {
		return
	}
	for i := 0; i < len(fs); i += 10 {
		part := fs[i:min(i+10, len(fs))]
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(part))
		for j, f := range part {
			v := min(in.o.NackBackoff*time.Duration(max(f.count, 1)), maxVisibility)
			entries[j] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), ReceiptHandle: aws.String(f.handle), VisibilityTimeout: int32(v / time.Second)}
		}
		if _, err := in.o.Client.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(in.o.QueueURL), Entries: entries}); err != nil {
			in.log.Warn("sqs: setting the backoff visibility failed; the current one lapses", "err", err)
		}
	}
}

func (in *Input) track(fs []*flight) {
	in.mu.Lock()
	for _, f := range fs {
		in.flight[f.handle] = f
	}
	in.mu.Unlock()
}

func (in *Input) untrack(fs []*flight) {
	in.mu.Lock()
	for _, f := range fs {
		delete(in.flight, f.handle)
	}
	in.mu.Unlock()
}

// extendLoop keeps unacknowledged messages invisible: each one within
// half its visibility of lapsing is extended by the visibility timeout.
func (in *Input) extendLoop(ctx context.Context) {
	tick := min(max(in.vis/4, 100*time.Millisecond), 5*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var due []*flight
		in.mu.Lock()
		for _, f := range in.flight {
			if f.deadline.Sub(now) <= in.vis/2 {
				due = append(due, f)
			}
		}
		in.mu.Unlock()
		for i := 0; i < len(due); i += 10 {
			in.extend(ctx, due[i:min(i+10, len(due))], now)
		}
	}
}

func (in *Input) extend(ctx context.Context, fs []*flight, now time.Time) {
	secs := int32(in.vis / time.Second)
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(fs))
	for i, f := range fs {
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(f.handle), VisibilityTimeout: secs}
	}
	out, err := in.o.Client.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(in.o.QueueURL), Entries: entries})
	if err != nil {
		if ctx.Err() == nil {
			in.log.Warn("sqs: extending visibility failed; retrying at the next tick", "err", err)
		}
		return
	}
	in.mu.Lock()
	for _, s := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(s.Id)); err == nil && i < len(fs) {
			fs[i].deadline = now.Add(in.vis)
		}
	}
	for _, f := range out.Failed {
		// Expired or deleted meanwhile: it will be redelivered (and skipped
		// if applied); stop extending it.
		if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i < len(fs) {
			delete(in.flight, fs[i].handle)
		}
	}
	in.mu.Unlock()
	in.stats.extended.Add(int64(len(out.Successful)))
	in.stats.extendFailed.Add(int64(len(out.Failed)))
	for _, f := range out.Failed {
		in.log.Info("sqs: visibility extension refused", "code", aws.ToString(f.Code), "message", aws.ToString(f.Message))
	}
}

// receiver is one ReceiveMessage loop with its decoder.
type receiver struct {
	in  *Input
	d   *format.Decoder
	cur []*pipeline.Event
}

func (in *Input) newReceiver() *receiver {
	r := &receiver{in: in}
	r.d = format.NewDecoder(format.DecoderOptions{
		Emit:           func(ev *pipeline.Event) error { r.cur = append(r.cur, ev); return nil },
		Bad:            in.bad,
		MaxRecordBytes: in.o.MaxRecordBytes,
		Latest:         time.Now().Add(format.MaxClockSkew),
	})
	return r
}

func (r *receiver) loop(ctx context.Context) {
	in := r.in
	backoff := 100 * time.Millisecond
	req := &awssqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(in.o.QueueURL),
		MaxNumberOfMessages:         in.o.MaxMessages,
		WaitTimeSeconds:             int32(in.o.Wait / time.Second),
		VisibilityTimeout:           int32(in.vis / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
	}
	for ctx.Err() == nil {
		start := time.Now()
		out, err := in.o.Client.ReceiveMessage(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			in.stats.receiveErrors.Add(1)
			in.setReady(err)
			in.log.Warn("sqs: receive failed; retrying", "err", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, 20*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		in.setReady(nil)
		in.stats.receives.Add(1)
		if len(out.Messages) == 0 {
			continue
		}
		rc, ok := r.batch(ctx, out.Messages, start)
		if !ok {
			return
		}
		select {
		case in.out <- rc:
		case <-ctx.Done():
			return
		}
	}
}

// batch decodes one receive's messages. Messages whose S3 object could not
// be read are released at once, their events dropped.
func (r *receiver) batch(ctx context.Context, msgs []types.Message, start time.Time) (received, bool) {
	in := r.in
	now := time.Now()
	fs := make([]*flight, len(msgs))
	for i, m := range msgs {
		n, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		fs[i] = &flight{handle: aws.ToString(m.ReceiptHandle), count: n, deadline: start.Add(in.vis)}
	}
	in.track(fs)
	in.stats.messages.Add(int64(len(msgs)))
	r.cur = nil
	keep := fs[:0:0]
	var retry []*flight
	for i, m := range msgs {
		n := len(r.cur)
		r.d.SetLatest(time.Now().Add(format.MaxClockSkew))
		pos := pipeline.Position{File: "sqs://" + in.queue + "/" + aws.ToString(m.MessageId)}
		if err := r.body(ctx, []byte(aws.ToString(m.Body)), pos, 0); err != nil {
			if ctx.Err() != nil {
				return received{}, false
			}
			clear(r.cur[n:])
			r.cur = r.cur[:n]
			in.stats.objectRetries.Add(1)
			in.log.Warn("sqs: S3 object not readable now; the message stays on the queue", "message", aws.ToString(m.MessageId), "err", err)
			retry = append(retry, fs[i])
			continue
		}
		keep = append(keep, fs[i])
	}
	if len(retry) > 0 {
		in.untrack(retry)
		in.release(ctx, retry)
	}
	for _, ev := range r.cur {
		ev.Received = now
	}
	in.stats.events.Add(int64(len(r.cur)))
	evs := r.cur
	r.cur = nil
	return received{b: pipeline.Batch{Events: evs}, keep: keep}, true
}

// wrapper is what tells S3 notifications and SNS envelopes apart. goccy
// matches member names case-insensitively, so values are checked exactly.
type wrapper struct {
	Type     string  `json:"Type"`
	TopicArn string  `json:"TopicArn"`
	Message  *string `json:"Message"`
	Event    string  `json:"Event"`
	Records  []struct {
		EventSource string `json:"eventSource"`
		EventName   string `json:"eventName"`
		S3          struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key string `json:"key"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
	DetailType string `json:"detail-type"`
	Source     string `json:"source"`
	Detail     struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key string `json:"key"`
		} `json:"object"`
	} `json:"detail"`
}

var (
	markS3     = []byte(`"aws:s3"`)
	markTest   = []byte(`s3:TestEvent`)
	markObject = []byte(`"Object Created"`)
	markSNS    = []byte(`"Notification"`)
)

// body decodes one message body; it returns an error only when an S3
// object could not be read for a reason a retry may cure.
func (r *receiver) body(ctx context.Context, data []byte, pos pipeline.Position, depth int) error {
	in := r.in
	// Only bodies that may be wrappers pay for the probe.
	if bytes.Contains(data, markS3) || bytes.Contains(data, markTest) || bytes.Contains(data, markObject) || bytes.Contains(data, markSNS) {
		var w wrapper
		if json.Unmarshal(data, &w) == nil {
			switch {
			case w.Type == "Notification" && w.Message != nil && w.TopicArn != "" && depth == 0:
				return r.body(ctx, []byte(*w.Message), pos, 1)
			case w.Event == "s3:TestEvent":
				in.stats.skipped.Add(1)
				return nil
			case len(w.Records) > 0 && w.Records[0].EventSource == "aws:s3":
				for i, rec := range w.Records {
					p := pos
					p.Record = i
					if rec.EventSource != "aws:s3" || !strings.HasPrefix(rec.EventName, "ObjectCreated:") {
						in.stats.skipped.Add(1)
						continue
					}
					// Keys in S3 notifications are URL-encoded, '+' for a space.
					key, err := url.QueryUnescape(rec.S3.Object.Key)
					if err != nil {
						r.d.Reject(p, "", format.SkipInvalid, fmt.Sprintf("S3 notification: object key %q: %v", rec.S3.Object.Key, err), data)
						continue
					}
					if err := r.object(ctx, rec.S3.Bucket.Name, key, p, data); err != nil {
						return err
					}
				}
				return nil
			case w.DetailType == "Object Created" && w.Source == "aws.s3":
				// EventBridge carries the key as it is.
				return r.object(ctx, w.Detail.Bucket.Name, w.Detail.Object.Key, pos, data)
			}
		}
	}
	r.d.Decode(data, pos)
	return nil
}

// object reads one announced object into the batch.
func (r *receiver) object(ctx context.Context, bucket, key string, pos pipeline.Position, data []byte) error {
	in := r.in
	if bucket == "" || key == "" {
		r.d.Reject(pos, "", format.SkipInvalid, "S3 notification without a bucket or key", data)
		return nil
	}
	objs, err := in.objectReader(ctx)
	if err != nil {
		return err
	}
	n := len(r.cur)
	err = objs.ReadObject(ctx, bucket, key, r.d)
	if err == nil {
		in.stats.objects.Add(1)
		return nil
	}
	clear(r.cur[n:])
	r.cur = r.cur[:n]
	if !s3src.Permanent(err) {
		return err
	}
	in.stats.objectsGone.Add(1)
	in.bad(format.RecordError{Pos: pipeline.Position{File: s3src.ObjectURL(bucket, key)}, Reason: err.Error(), Sample: bytes.Clone(data[:min(len(data), format.SampleLen)])})
	return nil
}

func (in *Input) objectReader(ctx context.Context) (*s3src.ObjectReader, error) {
	in.s3mu.Lock()
	defer in.s3mu.Unlock()
	if in.objs == nil {
		c := in.o.S3Client
		if c == nil {
			var err error
			if c, err = s3src.NewClient(ctx); err != nil {
				return nil, err
			}
		}
		in.objs = s3src.NewObjectReader(c, in.o.MaxRecordBytes, in.log)
	}
	return in.objs, nil
}

var (
	_ pipeline.Input     = (*Input)(nil)
	_ pipeline.Readiness = (*Input)(nil)
)
