package s3src

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// Defaults of Options.
const (
	DefaultInterval = time.Minute
	DefaultMaxKeys  = 1000
)

// Options configure a polling Input.
type Options struct {
	// Bucket is required. Prefix narrows the listing, e.g.
	// AWSLogs/123456789012/CloudTrail/us-east-1/ (one region per input:
	// see Input).
	Bucket, Prefix string
	// Name identifies the input (positions are stored under it); default
	// "s3:<bucket>/<prefix>".
	Name string
	// Interval is the wait between listings that found nothing new;
	// default DefaultInterval.
	Interval time.Duration
	// StartAfter is where a first run (no stored position) starts: keys
	// after it. "" reads the whole prefix.
	StartAfter string
	// MaxKeys per ListObjectsV2 page; default DefaultMaxKeys.
	MaxKeys int32
	// Client is the S3 client; nil takes one from the SDK's default chain
	// (NewClient).
	Client *s3.Client
	// MaxRecordBytes caps one record; 0 means format.DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Bad receives every record skipped (and every object that cannot be
	// read), with its position; nil only counts them.
	Bad func(format.RecordError)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Stats counts what an Input did.
type Stats struct {
	Listings, Objects, Events, Bad, Retries, Gone int64
}

// Input polls a prefix: ListObjectsV2 after the greatest key fully
// processed, GetObject of each new key in key order, one batch per object
// whose Position is {"after": key}, so that a restart resumes after the
// last committed object. CloudTrail keys sort by time within one region's
// prefix (…/CloudTrail/<region>/YYYY/MM/DD/), not across regions: give each
// region its own input, or an object of an earlier-sorting region
// delivered later is never listed.
type Input struct {
	o   Options
	log *slog.Logger
	or  *ObjectReader
	d   *format.Decoder
	cur []*pipeline.Event

	mu       sync.Mutex
	pending  []string // listed, not yet handed out
	listed   string   // greatest key listed
	acked    string   // greatest key acknowledged
	nacked   bool     // re-list from acked at the next Read
	nextList time.Time
	ready    error

	stats struct{ listings, objects, events, bad, retries, gone atomic.Int64 }
}

// New returns an Input with opts.
func New(opts Options) (*Input, error) {
	if opts.Bucket == "" {
		return nil, errors.New("s3src: bucket is required")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	if opts.Name == "" {
		opts.Name = "s3:" + opts.Bucket + "/" + opts.Prefix
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in := &Input{o: opts, log: log.With("input", opts.Name)}
	in.d = format.NewDecoder(format.DecoderOptions{
		Emit:           func(ev *pipeline.Event) error { in.cur = append(in.cur, ev); return nil },
		Bad:            in.bad,
		MaxRecordBytes: opts.MaxRecordBytes,
		Latest:         time.Now().Add(format.MaxClockSkew),
	})
	return in, nil
}

func (in *Input) bad(e format.RecordError) {
	in.stats.bad.Add(1)
	if in.o.Bad != nil {
		in.o.Bad(e)
	}
}

// Name implements pipeline.Input.
func (in *Input) Name() string { return in.o.Name }

// position is the stored form of the listing position.
type position struct {
	After string `json:"after"`
}

// Open implements pipeline.Input: pos is {"after": key} or nil.
func (in *Input) Open(ctx context.Context, pos []byte) error {
	after := in.o.StartAfter
	if pos != nil {
		var p position
		if err := json.Unmarshal(pos, &p); err != nil {
			return fmt.Errorf("s3src: %s: stored position %q: %w", in.o.Name, pos, err)
		}
		after = p.After
	}
	if in.o.Client == nil {
		c, err := NewClient(ctx)
		if err != nil {
			return err
		}
		in.o.Client = c
	}
	in.or = NewObjectReader(in.o.Client, in.o.MaxRecordBytes, in.log)
	in.mu.Lock()
	in.listed, in.acked = after, after
	in.mu.Unlock()
	if strings.HasSuffix(in.o.Prefix, "/CloudTrail/") {
		in.log.Warn("s3: a CloudTrail prefix without a region lists regions in name order; objects of an earlier region delivered later are missed: use one input per region prefix", "prefix", in.o.Prefix)
	}
	return nil
}

// Read implements pipeline.Input: one batch per new object. Transient
// failures are retried with backoff, never skipped.
func (in *Input) Read(ctx context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	backoff := time.Second
	for {
		if err := ctx.Err(); err != nil {
			return pipeline.Batch{}, nil, err
		}
		in.mu.Lock()
		if in.nacked {
			in.pending, in.listed, in.nacked, in.nextList = nil, in.acked, false, time.Time{}
		}
		var key string
		if len(in.pending) > 0 {
			key = in.pending[0]
		}
		wait := time.Until(in.nextList)
		in.mu.Unlock()
		if key == "" {
			if wait > 0 {
				if err := sleep(ctx, wait); err != nil {
					return pipeline.Batch{}, nil, err
				}
				continue
			}
			if err := in.list(ctx); err != nil {
				if ctx.Err() != nil {
					return pipeline.Batch{}, nil, ctx.Err()
				}
				in.fail(err, "listing")
				if err := sleep(ctx, backoff); err != nil {
					return pipeline.Batch{}, nil, err
				}
				backoff = min(2*backoff, max(in.o.Interval, time.Minute))
			}
			continue
		}
		evs, err := in.read(ctx, key)
		if err != nil && !Permanent(err) {
			if ctx.Err() != nil {
				return pipeline.Batch{}, nil, ctx.Err()
			}
			in.stats.retries.Add(1)
			in.fail(err, "reading "+ObjectURL(in.o.Bucket, key))
			if err := sleep(ctx, backoff); err != nil {
				return pipeline.Batch{}, nil, err
			}
			backoff = min(2*backoff, max(in.o.Interval, time.Minute))
			continue
		}
		if err != nil {
			// Deleted between listing and reading: nothing will ever read it.
			in.stats.gone.Add(1)
			in.bad(format.RecordError{Pos: pipeline.Position{File: ObjectURL(in.o.Bucket, key)}, Reason: err.Error()})
		}
		in.mu.Lock()
		in.pending = in.pending[1:]
		in.ready = nil
		in.mu.Unlock()
		pos, _ := json.Marshal(position{After: key})
		in.stats.objects.Add(1)
		in.stats.events.Add(int64(len(evs)))
		return pipeline.Batch{Events: evs, Position: pos}, in.ackFunc(key), nil
	}
}

func (in *Input) fail(err error, what string) {
	in.log.Warn("s3: "+what+" failed; retrying", "err", err)
	in.mu.Lock()
	in.ready = err
	in.mu.Unlock()
}

func (in *Input) read(ctx context.Context, key string) ([]*pipeline.Event, error) {
	in.cur = nil
	in.d.SetLatest(time.Now().Add(format.MaxClockSkew))
	err := in.or.ReadObject(ctx, in.o.Bucket, key, in.d)
	evs := in.cur
	in.cur = nil
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for _, ev := range evs {
		ev.Received = now
	}
	return evs, nil
}

// list appends the next page of keys after the greatest listed.
func (in *Input) list(ctx context.Context) error {
	in.mu.Lock()
	after := in.listed
	in.mu.Unlock()
	in.stats.listings.Add(1)
	out, err := in.o.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(in.o.Bucket), Prefix: aws.String(in.o.Prefix), StartAfter: aws.String(after), MaxKeys: aws.Int32(in.o.MaxKeys),
	})
	if err != nil {
		return fmt.Errorf("s3src: listing s3://%s/%s: %w", in.o.Bucket, in.o.Prefix, err)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.listed != after || in.nacked {
		return nil // a nack reset the listing meanwhile
	}
	for _, obj := range out.Contents {
		k := aws.ToString(obj.Key)
		if k > in.listed && !strings.HasSuffix(k, "/") {
			in.pending = append(in.pending, k)
			in.listed = k
		} else if k > in.listed {
			in.listed = k
		}
	}
	in.ready = nil
	if !aws.ToBool(out.IsTruncated) || len(out.Contents) == 0 {
		in.nextList = time.Now().Add(in.o.Interval)
	}
	return nil
}

func (in *Input) ackFunc(key string) pipeline.AckFunc {
	return func(_ context.Context, err error) error {
		in.mu.Lock()
		defer in.mu.Unlock()
		if err != nil {
			in.nacked = true
			return nil
		}
		if key > in.acked {
			in.acked = key
		}
		return nil
	}
}

// Ready implements pipeline.Readiness: the last listing or read's error.
func (in *Input) Ready() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.ready
}

// Stats returns the counters so far.
func (in *Input) Stats() Stats {
	return Stats{Listings: in.stats.listings.Load(), Objects: in.stats.objects.Load(), Events: in.stats.events.Load(),
		Bad: in.stats.bad.Load(), Retries: in.stats.retries.Load(), Gone: in.stats.gone.Load()}
}

// Close implements pipeline.Input.
func (in *Input) Close(context.Context) error { return nil }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

var (
	_ pipeline.Input     = (*Input)(nil)
	_ pipeline.Readiness = (*Input)(nil)
)
