package falco

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/falcosecurity/client-go/pkg/api/outputs"
	"github.com/falcosecurity/client-go/pkg/api/schema"
	"github.com/falcosecurity/client-go/pkg/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// Defaults of GRPCOptions.
const (
	DefaultGRPCName     = "falco_grpc"
	DefaultPollInterval = 100 * time.Millisecond
	DefaultKeepalive    = 5 * time.Minute
	DefaultBackoffMin   = 250 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
)

// GRPCOptions configure a falco_grpc input (Falco ≤ 0.43 with grpc and
// grpc_output enabled).
type GRPCOptions struct {
	// Name of the input; default "falco_grpc".
	Name string
	// Endpoints are Falco gRPC servers: "unix:///run/falco/falco.sock",
	// or "host:port" (also "tcp://host:port") over mutual TLS.
	Endpoints []string
	// CertFile, KeyFile (the client's) and CARootFile (the servers' CA)
	// for TCP endpoints; all required when there is one.
	CertFile, KeyFile, CARootFile string
	// PollInterval is how often the Sub stream's request is re-sent:
	// Falco answers each with the alerts queued so far (client-go's
	// OutputsWatch "timeout"). Default 100ms.
	PollInterval time.Duration
	// Keepalive is the interval of HTTP/2 pings that detect a dead peer;
	// default 5m (Falco's gRPC core rejects pings more frequent than
	// that without data).
	Keepalive time.Duration
	// BackoffMin and BackoffMax bound the reconnection delay, which
	// doubles from BackoffMin, with full jitter. Defaults 250ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// SpoolDir is the spool's directory (required): state_dir/spool/<name>.
	SpoolDir string
	Spool    SpoolOptions
	// MaxBatch caps the records of one Batch; default DefaultMaxBatch.
	MaxBatch int
	// Bad receives rejected records; calls are serialised.
	Bad    func(format.RecordError)
	Logger *slog.Logger
	// DialOptions are added to each connection's (tests).
	DialOptions []grpc.DialOption
}

// GRPCInput subscribes to Falco's outputs service on each endpoint and
// spools what arrives (the stream cannot redeliver). It implements
// pipeline.Input and pipeline.Readiness.
type GRPCInput struct {
	o   GRPCOptions
	log *slog.Logger
	r   spoolReader
	eps []*endpoint

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type endpoint struct {
	addr string
	cfg  client.Config

	mu        sync.Mutex
	connected bool
	lastErr   error
	streams   int // streams opened, for tests
}

// NewGRPC checks opts and returns the input; Open connects.
func NewGRPC(opts GRPCOptions) (*GRPCInput, error) {
	if opts.Name == "" {
		opts.Name = DefaultGRPCName
	}
	if len(opts.Endpoints) == 0 {
		return nil, fmt.Errorf("%s: endpoints is required", opts.Name)
	}
	if opts.SpoolDir == "" {
		return nil, fmt.Errorf("%s: no spool directory", opts.Name)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Keepalive <= 0 {
		opts.Keepalive = DefaultKeepalive
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = DefaultBackoffMin
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(DefaultBackoffMax, opts.BackoffMin)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("input", opts.Name)
	in := &GRPCInput{o: opts, log: log}
	dial := append([]grpc.DialOption{grpc.WithKeepaliveParams(keepalive.ClientParameters{
		Time: opts.Keepalive, Timeout: 20 * time.Second})}, opts.DialOptions...)
	for _, e := range opts.Endpoints {
		ep := &endpoint{addr: e}
		if strings.HasPrefix(e, "unix://") {
			ep.cfg = client.Config{UnixSocketPath: e, DialOptions: dial}
		} else {
			hp := strings.TrimPrefix(e, "tcp://")
			host, port, err := net.SplitHostPort(hp)
			if err != nil {
				return nil, fmt.Errorf("%s: endpoint %q: want unix:///path or host:port: %w", opts.Name, e, err)
			}
			p, err := strconv.ParseUint(port, 10, 16)
			if err != nil || p == 0 {
				return nil, fmt.Errorf("%s: endpoint %q: bad port", opts.Name, e)
			}
			if opts.CertFile == "" || opts.KeyFile == "" || opts.CARootFile == "" {
				return nil, fmt.Errorf("%s: endpoint %q is TCP: cert_file, key_file and ca_root_file are required (mutual TLS)", opts.Name, e)
			}
			ep.cfg = client.Config{Hostname: host, Port: uint16(p), CertFile: opts.CertFile, KeyFile: opts.KeyFile,
				CARootFile: opts.CARootFile, DialOptions: dial}
		}
		in.eps = append(in.eps, ep)
	}
	in.r = spoolReader{name: opts.Name, scheme: "spool", dir: opts.SpoolDir, sopts: opts.Spool, max: opts.MaxBatch,
		log: log, bad: &badFunc{bad: opts.Bad}}
	return in, nil
}

// Name implements pipeline.Input.
func (in *GRPCInput) Name() string { return in.o.Name }

// Open opens the spool after pos and starts a subscriber per endpoint.
func (in *GRPCInput) Open(ctx context.Context, pos []byte) error {
	if err := in.r.open(pos); err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	in.cancel = cancel
	for _, ep := range in.eps {
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			in.run(sctx, ep)
		}()
	}
	return nil
}

// Read implements pipeline.Input.
func (in *GRPCInput) Read(ctx context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	return in.r.read(ctx)
}

// Ready implements pipeline.Readiness: nil while at least one endpoint
// has an open stream and the spool works.
func (in *GRPCInput) Ready() error {
	if in.r.spool == nil {
		return fmt.Errorf("%s: not open", in.o.Name)
	}
	if err := in.r.spool.Failed(); err != nil {
		return fmt.Errorf("%s: %w", in.o.Name, err)
	}
	var errs []error
	for _, ep := range in.eps {
		ep.mu.Lock()
		ok, err := ep.connected, ep.lastErr
		ep.mu.Unlock()
		if ok {
			return nil
		}
		if err == nil {
			err = errors.New("connecting")
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep.addr, err))
	}
	return fmt.Errorf("%s: no Falco endpoint connected: %w", in.o.Name, errors.Join(errs...))
}

// Close stops the subscribers and then the spool.
func (in *GRPCInput) Close(context.Context) error {
	if in.cancel != nil {
		in.cancel()
		in.wg.Wait()
	}
	return in.r.close()
}

func (ep *endpoint) set(connected bool, err error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.connected = connected
	if err != nil {
		ep.lastErr = err
	}
	if connected {
		ep.streams++
	}
}

// run keeps a subscription to one endpoint until ctx is done.
func (in *GRPCInput) run(ctx context.Context, ep *endpoint) {
	log := in.log.With("endpoint", ep.addr)
	var c *client.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	delay := in.o.BackoffMin
	for ctx.Err() == nil {
		var err error
		if c == nil {
			c, err = client.NewForConfig(ctx, &ep.cfg)
		}
		var got int
		var lived time.Duration
		if err == nil {
			start := time.Now()
			got, err = in.subscribe(ctx, c, ep)
			lived = time.Since(start)
		}
		ep.set(false, err)
		if ctx.Err() != nil {
			return
		}
		// A stream that delivered or lived a while resets the backoff.
		if got > 0 || lived > in.o.BackoffMax {
			delay = in.o.BackoffMin
		}
		wait := time.Duration(rand.Int64N(int64(delay)) + 1)
		log.Warn("falco gRPC stream broken; reconnecting", "err", err, "alerts", got, "retry_in", wait.String())
		delay = min(2*delay, in.o.BackoffMax)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// subscribe runs one Sub stream: requests every PollInterval, each
// response converted, validated and spooled. It returns the alerts
// spooled and why the stream ended.
func (in *GRPCInput) subscribe(ctx context.Context, c *client.Client, ep *endpoint) (int, error) {
	oc, err := c.Outputs()
	if err != nil {
		return 0, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := oc.Sub(sctx)
	if err != nil {
		return 0, fmt.Errorf("subscribing: %w", err)
	}
	if err := st.Send(&outputs.Request{}); err != nil {
		return 0, fmt.Errorf("subscribing: %w", err)
	}
	ep.set(true, nil)
	in.log.Info("subscribed to Falco outputs", "endpoint", ep.addr)
	sendErr := make(chan error, 1)
	go func() {
		t := time.NewTicker(in.o.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := st.Send(&outputs.Request{}); err != nil {
					sendErr <- err
					cancel()
					return
				}
			case <-sctx.Done():
				return
			}
		}
	}()
	n := 0
	var buf bytes.Buffer
	for {
		res, err := st.Recv()
		if err != nil {
			select {
			case serr := <-sendErr:
				err = fmt.Errorf("%w (sending: %v)", err, serr)
			default:
			}
			return n, err
		}
		recv := time.Now()
		buf.Reset()
		if err := responseJSON(&buf, res); err != nil {
			in.r.bad.report(format.RecordError{Pos: pipeline.Position{File: "falco_grpc://" + ep.addr}, Source: pipeline.SourceFalco,
				Reason: "converting a gRPC response: " + err.Error()})
			continue
		}
		alerts, rejected := validate(buf.Bytes(), pipeline.Position{File: "falco_grpc://" + ep.addr})
		for _, e := range rejected {
			in.r.bad.report(e)
		}
		if len(alerts) == 0 {
			continue
		}
		if err := in.spool(ctx, recv, alerts); err != nil {
			return n, err
		}
		n++
	}
}

// spool appends without waiting for the sync (the stream cannot be
// answered anyway; the writer groups consecutive alerts). A full spool
// holds the stream back until there is room.
func (in *GRPCInput) spool(ctx context.Context, recv time.Time, alerts [][]byte) error {
	for {
		_, err := in.r.spool.Append(recv, alerts...)
		if !errors.Is(err, ErrSpoolFull) {
			return err
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// falcoPriority names priorities as Falco's json_output does.
var falcoPriority = map[schema.Priority]string{
	schema.Priority_EMERGENCY: "Emergency", schema.Priority_ALERT: "Alert", schema.Priority_CRITICAL: "Critical",
	schema.Priority_ERROR: "Error", schema.Priority_WARNING: "Warning", schema.Priority_NOTICE: "Notice",
	schema.Priority_INFORMATIONAL: "Informational", schema.Priority_DEBUG: "Debug",
}

// jsonAlert is Falco's json_output alert, members in the order Falco
// writes them (sorted: nlohmann::json objects are maps).
type jsonAlert struct {
	Hostname     string         `json:"hostname"`
	Output       string         `json:"output"`
	OutputFields map[string]any `json:"output_fields"`
	Priority     string         `json:"priority"`
	Rule         string         `json:"rule"`
	Source       string         `json:"source"`
	Tags         []string       `json:"tags"`
	Time         string         `json:"time"`
}

// falcoTimeLayout is json_output's time: always nine fractional digits
// (formats.cpp prints ".%09luZ"), so that the text, and the content id
// hashed from it, match the HTTP path's.
const falcoTimeLayout = "2006-01-02T15:04:05.000000000Z"

// responseJSON writes res as the alert Falco's json_output gives for the
// same event. gRPC output_fields are all strings (Falco JSON-dumps the
// other primitives); "null", a field Falco could not extract, becomes
// JSON null as in json_output. Other values stay strings.
func responseJSON(buf *bytes.Buffer, res *outputs.Response) error {
	if res.GetTime() == nil {
		return errors.New("no time")
	}
	a := jsonAlert{Hostname: res.GetHostname(), Output: res.GetOutput(), Rule: res.GetRule(), Source: res.GetSource(),
		Tags: res.GetTags(), Time: res.GetTime().AsTime().UTC().Format(falcoTimeLayout)}
	if a.Tags == nil {
		a.Tags = []string{}
	}
	p, ok := falcoPriority[res.GetPriority()]
	if !ok {
		return fmt.Errorf("unknown priority %d", res.GetPriority())
	}
	a.Priority = p
	if a.Source == "" {
		//lint:ignore SA1019 the deprecated enum is all an old Falco sends
		switch res.GetSourceDeprecated() {
		case schema.Source_SYSCALL:
			a.Source = "syscall"
		case schema.Source_K8S_AUDIT:
			a.Source = "k8s_audit"
		}
	}
	a.OutputFields = make(map[string]any, len(res.GetOutputFields()))
	for k, v := range res.GetOutputFields() {
		if v == "null" {
			a.OutputFields[k] = nil
		} else {
			a.OutputFields[k] = v
		}
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	return enc.Encode(a)
}
