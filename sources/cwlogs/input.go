package cwlogs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/time/rate"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// Log group naming of Container Insights for ECS.
const (
	GroupPrefix = "/aws/ecs/containerinsights/"
	GroupSuffix = "/performance"
)

// Defaults of Options.
const (
	DefaultName        = "cloudwatch_logs"
	DefaultInterval    = 10 * time.Second
	DefaultStart       = 5 * time.Minute
	DefaultLookback    = time.Minute
	DefaultRelist      = 5 * time.Minute
	DefaultRate        = 5.0
	DefaultPageSize    = 10000
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = time.Minute
	defaultMaxRelistIn = 24 * time.Hour
)

// API is the part of the CloudWatch Logs client the input uses;
// *cloudwatchlogs.Client implements it.
type API interface {
	DescribeLogGroups(ctx context.Context, in *cloudwatchlogs.DescribeLogGroupsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DescribeLogGroupsOutput, error)
	FilterLogEvents(ctx context.Context, in *cloudwatchlogs.FilterLogEventsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error)
}

// Options configure an Input. Zero values take the defaults named.
type Options struct {
	// Name of the input, under which its position is stored
	// (DefaultName).
	Name string
	// Clusters to read; empty reads every cluster with a Container
	// Insights performance log group.
	Clusters []string
	// Region of the client made when Client is nil ("" = the SDK's
	// default chain: AWS_REGION, profile, ...).
	Region string
	// Interval between two polls of a log group that was read to its end
	// (DefaultInterval). Container Insights writes once a minute per
	// task; a shorter interval only lowers latency.
	Interval time.Duration
	// Start is how far back from now a log group without a stored
	// position is first read (DefaultStart).
	Start time.Duration
	// Lookback is how far before the newest event read in a group each
	// poll starts again, so that a stream whose events are ingested later
	// than another's still has them read (DefaultLookback). Events read
	// before are recognised from the per-stream position; streams with no
	// event within the lookback are dropped from it.
	Lookback time.Duration
	// Relist is the period of listing the log groups again, so that new
	// clusters join (DefaultRelist).
	Relist time.Duration
	// Rate caps the CloudWatch Logs requests per second of this input,
	// each SDK retry attempt included (DefaultRate: FilterLogEvents'
	// quota is 5 per second per account and region). Negative: no cap.
	Rate float64
	// PageSize is FilterLogEvents' limit (DefaultPageSize, the service's
	// maximum).
	PageSize int32
	// MinBackoff and MaxBackoff bound the jittered exponential wait after
	// a request failed even after the SDK's retries (throttling, 5xx,
	// network): it is tried again, never skipped.
	MinBackoff, MaxBackoff time.Duration
	// Client is a ready client (tests); nil makes one with
	// config.LoadDefaultConfig, so AWS_ENDPOINT_URL_CLOUDWATCH_LOGS and
	// AWS_ENDPOINT_URL apply.
	Client API
	// Bad receives every log event that cannot be decoded; nil only
	// counts them.
	Bad func(format.RecordError)
	// Logger for operations (slog.Default()).
	Logger *slog.Logger
}

// Stats are an Input's counters.
type Stats struct {
	Requests   int64 // API calls that succeeded
	Throttled  int64 // calls that failed with throttling after the SDK's retries
	Failed     int64 // calls that failed otherwise after the SDK's retries
	Events     int64 // events handed out
	Duplicates int64 // log events skipped as already read (lookback)
	Groups     int64 // log groups being read
}

// Input reads Container Insights performance events from CloudWatch Logs.
type Input struct {
	o        Options
	api      API
	log      *slog.Logger
	lim      *rate.Limiter
	clusters map[string]bool
	dec      *format.Decoder

	// Read's own state (one reader goroutine).
	st       *state
	runs     map[string]*groupRun
	listed   bool
	nextList time.Time
	out      []*pipeline.Event
	bad      int
	buf      []byte

	mu       sync.Mutex
	acked    []byte // the position of the last acknowledged batch (or Open's)
	rewind   bool   // a batch was nacked: read again from acked
	ready    error
	requests atomic.Int64
	throttle atomic.Int64
	failed   atomic.Int64
	events   atomic.Int64
	dups     atomic.Int64
	ngroups  atomic.Int64
}

// groupRun is the polling state of one log group.
type groupRun struct {
	name   string
	file   string // "cwl://<group>/"
	wc     *format.WrapContext
	floor0 int64 // the floor it started with (for a rewind to nothing)
	token  *string
	from   int64 // startTime of the query being paged
	due    time.Time
}

// New returns an Input; the client is made in Open when o.Client is nil.
func New(o Options) *Input {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Start <= 0 {
		o.Start = DefaultStart
	}
	if o.Lookback <= 0 {
		o.Lookback = DefaultLookback
	}
	if o.Relist <= 0 {
		o.Relist = DefaultRelist
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.PageSize <= 0 || o.PageSize > DefaultPageSize {
		o.PageSize = DefaultPageSize
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	in := &Input{o: o, api: o.Client, log: o.Logger.With("input", o.Name), runs: map[string]*groupRun{}, st: newState()}
	in.ready = errors.New("cloudwatch_logs: log groups not listed yet")
	lim := rate.Limit(o.Rate)
	if o.Rate < 0 {
		lim = rate.Inf
	}
	in.lim = rate.NewLimiter(lim, max(1, int(o.Rate)))
	if len(o.Clusters) > 0 {
		in.clusters = map[string]bool{}
		for _, c := range o.Clusters {
			in.clusters[c] = true
		}
	}
	in.dec = format.NewDecoder(format.DecoderOptions{
		Emit: func(ev *pipeline.Event) error {
			in.out = append(in.out, ev)
			return nil
		},
		Bad: func(e format.RecordError) {
			in.bad++
			if o.Bad != nil {
				o.Bad(e)
			}
		},
		Latest: time.Now().Add(format.MaxClockSkew),
	})
	return in
}

// Name implements pipeline.Input.
func (in *Input) Name() string { return in.o.Name }

// Open implements pipeline.Input: pos is a position this input returned.
func (in *Input) Open(ctx context.Context, pos []byte) error {
	st, err := decodeState(pos)
	if err != nil {
		return err
	}
	in.st = st
	in.acked = pos
	if in.api == nil {
		var opts []func(*config.LoadOptions) error
		if in.o.Region != "" {
			opts = append(opts, config.WithRegion(in.o.Region))
		}
		cfg, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return fmt.Errorf("cloudwatch_logs: AWS configuration: %w", err)
		}
		in.api = cloudwatchlogs.NewFromConfig(cfg)
	}
	return nil
}

// Close implements pipeline.Input.
func (in *Input) Close(context.Context) error { return nil }

// Ready implements pipeline.Readiness: nil once the log groups were listed
// and while requests succeed or are only throttled.
func (in *Input) Ready() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.ready
}

// Stats returns the input's counters.
func (in *Input) Stats() Stats {
	return Stats{
		Requests: in.requests.Load(), Throttled: in.throttle.Load(), Failed: in.failed.Load(),
		Events: in.events.Load(), Duplicates: in.dups.Load(), Groups: in.ngroups.Load(),
	}
}

// Read implements pipeline.Input: it polls the log groups in turn and
// returns the first page that holds events (or bad records).
func (in *Input) Read(ctx context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	in.mu.Lock()
	if in.rewind {
		in.rewind = false
		acked := in.acked
		in.mu.Unlock()
		if err := in.reset(acked); err != nil {
			return pipeline.Batch{}, nil, err
		}
	} else {
		in.mu.Unlock()
	}
	for {
		if err := ctx.Err(); err != nil {
			return pipeline.Batch{}, nil, err
		}
		now := time.Now()
		if !now.Before(in.nextList) {
			if err := in.list(ctx); err != nil {
				return pipeline.Batch{}, nil, err
			}
			continue
		}
		g := in.nextDue()
		if g == nil || g.due.After(now) {
			wake := in.nextList
			if g != nil && g.due.Before(wake) {
				wake = g.due
			}
			t := time.NewTimer(wake.Sub(now))
			select {
			case <-ctx.Done():
				t.Stop()
				return pipeline.Batch{}, nil, ctx.Err()
			case <-t.C:
			}
			continue
		}
		b, ok, err := in.poll(ctx, g)
		if err != nil {
			return pipeline.Batch{}, nil, err
		}
		if ok {
			pos := b.Position
			return b, func(_ context.Context, err error) error {
				in.mu.Lock()
				defer in.mu.Unlock()
				if err != nil {
					in.rewind = true
					return nil
				}
				in.acked = pos
				return nil
			}, nil
		}
	}
}

// reset goes back to the acknowledged position after a nack.
func (in *Input) reset(acked []byte) error {
	st, err := decodeState(acked)
	if err != nil {
		return err
	}
	for name, g := range in.runs {
		if st.groups[name] == nil {
			st.groups[name] = &groupPos{floor: g.floor0, streams: map[string]*streamPos{}}
		}
		g.token, g.due = nil, time.Time{}
	}
	in.st = st
	return nil
}

// nextDue is the group to poll next: the one due longest ago.
func (in *Input) nextDue() *groupRun {
	var best *groupRun
	for _, g := range in.runs {
		if best == nil || g.due.Before(best.due) || (g.due.Equal(best.due) && g.name < best.name) {
			best = g
		}
	}
	return best
}

// list finds the Container Insights performance log groups to read.
func (in *Input) list(ctx context.Context) error {
	now := time.Now()
	found := map[string]types.LogGroup{}
	var token *string
	for {
		var out *cloudwatchlogs.DescribeLogGroupsOutput
		err := in.call(ctx, "DescribeLogGroups", func(ctx context.Context) error {
			var err error
			out, err = in.api.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{
				LogGroupNamePrefix: aws.String(GroupPrefix),
				NextToken:          token,
			}, in.pace)
			return err
		})
		if err != nil {
			return err
		}
		for _, lg := range out.LogGroups {
			name := aws.ToString(lg.LogGroupName)
			cluster, ok := ClusterOf(name)
			if !ok || (in.clusters != nil && !in.clusters[cluster]) {
				continue
			}
			found[name] = lg
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	for name, lg := range found {
		if in.runs[name] != nil {
			continue
		}
		gp := in.st.groups[name]
		if gp == nil {
			// The first listing starts Start back; a group that appears
			// later is new and is read from its creation (bounded).
			floor := now.Add(-in.o.Start).UnixMilli()
			if in.listed {
				if c := aws.ToInt64(lg.CreationTime); c > 0 {
					floor = max(min(floor, c), now.Add(-defaultMaxRelistIn).UnixMilli())
				}
			}
			gp = &groupPos{floor: floor, streams: map[string]*streamPos{}}
			in.st.groups[name] = gp
		}
		owner, region := arnParts(aws.ToString(lg.Arn))
		if region == "" {
			region = in.o.Region
		}
		in.runs[name] = &groupRun{
			name: name, file: "cwl://" + name + "/", wc: format.LogGroupContext(owner, region, name), floor0: gp.floor,
		}
		in.log.Info("reading log group", "log_group", name)
	}
	for name := range in.runs {
		if _, ok := found[name]; !ok {
			in.drop(name, "log group no longer listed")
		}
	}
	forget := now.Add(-defaultMaxRelistIn).UnixMilli()
	for name, gp := range in.st.groups {
		if in.runs[name] == nil && max(gp.cursor, gp.floor) < forget {
			delete(in.st.groups, name) // a stored group gone for a day
		}
	}
	if len(in.runs) == 0 {
		in.log.Warn("no Container Insights performance log group to read yet", "clusters", in.o.Clusters)
	}
	in.listed = true
	in.setReady(nil)
	in.nextList = now.Add(in.o.Relist)
	in.ngroups.Store(int64(len(in.runs)))
	return nil
}

// drop stops reading a group; its position is kept for a while (list
// forgets it), so that a group missing from one listing resumes where it
// was.
func (in *Input) drop(name, why string) {
	delete(in.runs, name)
	in.ngroups.Store(int64(len(in.runs)))
	in.log.Info("stopped reading log group", "log_group", name, "reason", why)
}

// poll reads one page of g and reports whether it made a batch.
func (in *Input) poll(ctx context.Context, g *groupRun) (pipeline.Batch, bool, error) {
	gp := in.st.groups[g.name]
	if g.token == nil {
		g.from = max(gp.floor, gp.cursor-in.o.Lookback.Milliseconds())
		if gp.cursor-in.o.Lookback.Milliseconds() >= gp.floor {
			gp.floor = 0
		}
		gp.prune(g.from)
	}
	var out *cloudwatchlogs.FilterLogEventsOutput
	err := in.call(ctx, "FilterLogEvents", func(ctx context.Context) error {
		var err error
		out, err = in.api.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{
			LogGroupName: aws.String(g.name),
			StartTime:    aws.Int64(g.from),
			NextToken:    g.token,
			Limit:        aws.Int32(in.o.PageSize),
		}, in.pace)
		return err
	})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		in.drop(g.name, "log group does not exist")
		return pipeline.Batch{}, false, nil
	}
	if err != nil {
		return pipeline.Batch{}, false, err
	}
	if g.token = out.NextToken; g.token != nil {
		g.due = time.Now()
	} else {
		g.due = time.Now().Add(in.o.Interval)
	}
	in.out, in.bad = nil, 0
	now := time.Now()
	for i := range out.Events {
		e := &out.Events[i]
		stream, id, ts := aws.ToString(e.LogStreamName), aws.ToString(e.EventId), aws.ToInt64(e.Timestamp)
		if gp.seen(stream, ts, aws.ToInt64(e.IngestionTime), id) {
			in.dups.Add(1)
			continue
		}
		n := len(in.out)
		in.dec.SetLatest(now.Add(format.MaxClockSkew))
		in.dec.LogMessage([]byte(aws.ToString(e.Message)), pipeline.Position{File: g.file + stream + "#" + id}, g.wc)
		for _, ev := range in.out[n:] {
			ev.Received = now
		}
	}
	if len(in.out) == 0 && in.bad == 0 {
		return pipeline.Batch{}, false, nil
	}
	in.events.Add(int64(len(in.out)))
	in.buf = in.st.encode(in.buf)
	return pipeline.Batch{Events: in.out, Position: append([]byte(nil), in.buf...)}, true, nil
}

// pace makes every attempt of a request, retries included, wait for the
// input's rate limiter.
func (in *Input) pace(o *cloudwatchlogs.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		mw := middleware.FinalizeMiddlewareFunc("cwlogsPace", func(ctx context.Context, fi middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if err := in.lim.Wait(ctx); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
			return next.HandleFinalize(ctx, fi)
		})
		if _, ok := st.Finalize.Get("Retry"); ok {
			return st.Finalize.Insert(mw, "Retry", middleware.After)
		}
		return st.Finalize.Add(mw, middleware.After)
	})
}

// call runs f until it succeeds, a log group is missing, or ctx is done,
// backing off with full jitter between failures: the SDK has retried each
// already, and nothing may be skipped.
func (in *Input) call(ctx context.Context, op string, f func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := f(ctx)
		if err == nil {
			in.requests.Add(1)
			in.setReady(nil)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			in.requests.Add(1)
			return err
		}
		if isThrottle(err) {
			in.throttle.Add(1)
			in.log.Debug("throttled", "op", op, "attempt", attempt+1)
		} else {
			in.failed.Add(1)
			in.setReady(fmt.Errorf("cloudwatch_logs %s: %w", op, err))
			in.log.Warn("request failed; retrying", "op", op, "attempt", attempt+1, "err", err)
		}
		d := in.o.MinBackoff << min(attempt, 20)
		if d > in.o.MaxBackoff || d <= 0 {
			d = in.o.MaxBackoff
		}
		t := time.NewTimer(d/2 + rand.N(d/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// setReady records the outcome of a request (Read's goroutine only): ready
// once the groups were listed and while requests succeed.
func (in *Input) setReady(err error) {
	if err == nil && !in.listed {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.ready = err
}

func isThrottle(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded":
		return true
	}
	return false
}

// ClusterOf returns the cluster of a Container Insights performance log
// group name, and whether it is one.
func ClusterOf(group string) (string, bool) {
	rest, ok := strings.CutPrefix(group, GroupPrefix)
	if !ok {
		return "", false
	}
	c, ok := strings.CutSuffix(rest, GroupSuffix)
	if !ok || c == "" || strings.Contains(c, "/") {
		return "", false
	}
	return c, true
}

// arnParts returns the account and region of a log group ARN
// (arn:aws:logs:<region>:<account>:log-group:<name>[:*]).
func arnParts(arn string) (account, region string) {
	p := strings.SplitN(arn, ":", 6)
	if len(p) < 6 || p[0] != "arn" || p[2] != "logs" {
		return "", ""
	}
	return p[4], p[3]
}
