package falco

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// Defaults of HTTPOptions.
const (
	DefaultHTTPName     = "falco_http"
	DefaultMaxBody      = 1 << 20
	DefaultSecretHeader = "Authorization"
)

// HTTPOptions configure a falco_http input.
type HTTPOptions struct {
	// Name of the input (positions, logs, metrics); default "falco_http".
	Name string
	// Listen is the address to listen on, e.g. "127.0.0.1:2801"
	// (required; port 0 picks one, see Addr).
	Listen string
	// Path is the URL path alerts are posted to. "" or "/" (the default)
	// accepts every path, so that any url: in falco.yaml or Falcosidekick
	// works; any other value must match exactly (404 otherwise).
	Path string
	// Secret, when set, must be the whole value of SecretHeader in every
	// request (compared in constant time; 401 otherwise). SecretEnv names
	// an environment variable to read it from instead. Falco's own
	// http_output cannot send headers: use this behind Falcosidekick
	// (webhook.customheaders) or a proxy.
	Secret    string
	SecretEnv string
	// SecretHeader is the header holding the secret; default
	// "Authorization" (so the secret is e.g. "Bearer <token>").
	SecretHeader string
	// MaxBody caps a request body; larger ones get 413. Default 1 MiB.
	MaxBody int64
	// SpoolDir is the spool's directory (required): state_dir/spool/<name>.
	SpoolDir string
	// Spool tunes the spool (segment size, size cap, group delay).
	Spool SpoolOptions
	// MaxBatch caps the records of one Batch; default DefaultMaxBatch.
	MaxBatch int
	// Bad receives every rejected record (a body that is not a Falco
	// alert, or a spooled record that no longer decodes); calls are
	// serialised.
	Bad func(format.RecordError)
	// Logger; nil discards. Secrets are never logged.
	Logger *slog.Logger
}

// HTTPInput receives Falco alerts over HTTP (Falco's http_output with
// json_output, or Falcosidekick's webhook output) and answers only once
// each is in the spool, synced. It implements pipeline.Input and
// pipeline.Readiness.
type HTTPInput struct {
	o      HTTPOptions
	secret [32]byte // SHA-256 of the secret: compares in constant time whatever the length
	hasSec bool
	log    *slog.Logger
	r      spoolReader
	where  string

	mu   sync.Mutex
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	err  error // the server's exit

	seq   atomic.Int64
	stats httpCounters
}

type httpCounters struct {
	accepted, rejected, unauthorized, tooLarge, unavailable atomic.Int64
}

// HTTPStats counts requests.
type HTTPStats struct {
	Accepted     int64 // alerts spooled
	Rejected     int64 // records answered 400 (reported to Bad)
	Unauthorized int64 // requests without the secret
	TooLarge     int64 // bodies over MaxBody
	Unavailable  int64 // requests answered 503 (spool full or failed)
}

// NewHTTP checks opts and returns the input; Open starts listening.
func NewHTTP(opts HTTPOptions) (*HTTPInput, error) {
	if opts.Name == "" {
		opts.Name = DefaultHTTPName
	}
	if opts.Listen == "" {
		return nil, fmt.Errorf("%s: listen is required", opts.Name)
	}
	if opts.Path == "" {
		opts.Path = "/"
	}
	if opts.Path[0] != '/' {
		return nil, fmt.Errorf("%s: path %q must start with /", opts.Name, opts.Path)
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.SecretEnv != "" {
		if opts.Secret != "" {
			return nil, fmt.Errorf("%s: set secret or secret_env, not both", opts.Name)
		}
		v, ok := os.LookupEnv(opts.SecretEnv)
		if !ok || v == "" {
			return nil, fmt.Errorf("%s: secret_env %s is not set", opts.Name, opts.SecretEnv)
		}
		opts.Secret = v
	}
	if opts.SecretHeader == "" {
		opts.SecretHeader = DefaultSecretHeader
	}
	if opts.SpoolDir == "" {
		return nil, fmt.Errorf("%s: no spool directory", opts.Name)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("input", opts.Name)
	in := &HTTPInput{o: opts, log: log, where: "falco_http://" + opts.Listen + opts.Path}
	if opts.Secret != "" {
		in.secret, in.hasSec = sha256.Sum256([]byte(opts.Secret)), true
	}
	in.o.Secret = "" // not kept in clear
	in.r = spoolReader{name: opts.Name, scheme: "spool", dir: opts.SpoolDir, sopts: opts.Spool, max: opts.MaxBatch,
		log: log, bad: &badFunc{bad: opts.Bad}}
	return in, nil
}

// Name implements pipeline.Input.
func (in *HTTPInput) Name() string { return in.o.Name }

// Open opens the spool after pos and starts the HTTP server.
func (in *HTTPInput) Open(ctx context.Context, pos []byte) error {
	if err := in.r.open(pos); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", in.o.Listen)
	if err != nil {
		in.r.close()
		return fmt.Errorf("%s: %w", in.o.Name, err)
	}
	srv := &http.Server{
		Handler:           in,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(in.log.Handler(), slog.LevelDebug),
	}
	in.where = "falco_http://" + ln.Addr().String() + in.o.Path
	in.mu.Lock()
	in.ln, in.srv, in.done = ln, srv, make(chan struct{})
	in.mu.Unlock()
	go func() {
		err := srv.Serve(ln)
		in.mu.Lock()
		if !errors.Is(err, http.ErrServerClosed) {
			in.err = err
			in.log.Error("falco_http server stopped", "err", err)
		}
		in.mu.Unlock()
		close(in.done)
	}()
	in.log.Info("listening for Falco alerts", "addr", ln.Addr().String(), "path", in.o.Path, "secret", in.hasSec)
	return nil
}

// Addr is the address listened on (after Open).
func (in *HTTPInput) Addr() net.Addr {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ln == nil {
		return nil
	}
	return in.ln.Addr()
}

// Read implements pipeline.Input.
func (in *HTTPInput) Read(ctx context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	return in.r.read(ctx)
}

// Ready implements pipeline.Readiness: nil while listening with a working
// spool.
func (in *HTTPInput) Ready() error {
	in.mu.Lock()
	srv, err := in.srv, in.err
	in.mu.Unlock()
	switch {
	case srv == nil:
		return fmt.Errorf("%s: not open", in.o.Name)
	case err != nil:
		return fmt.Errorf("%s: server stopped: %w", in.o.Name, err)
	}
	if err := in.r.spool.Failed(); err != nil {
		return fmt.Errorf("%s: %w", in.o.Name, err)
	}
	return nil
}

// Stats returns the request counters.
func (in *HTTPInput) Stats() HTTPStats {
	c := &in.stats
	return HTTPStats{Accepted: c.accepted.Load(), Rejected: c.rejected.Load(), Unauthorized: c.unauthorized.Load(),
		TooLarge: c.tooLarge.Load(), Unavailable: c.unavailable.Load()}
}

// Close stops the server (requests in flight finish, under ctx) and then
// the spool.
func (in *HTTPInput) Close(ctx context.Context) error {
	in.mu.Lock()
	srv := in.srv
	in.mu.Unlock()
	if srv != nil {
		// Requests in flight get a moment to finish; after it they are
		// cut off, unanswered, so their senders retry: nothing they sent
		// was acknowledged, so nothing is lost by the cut.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := srv.Shutdown(sctx); err != nil {
			in.log.Warn("falco_http: requests still open at close were cut off", "input", in.o.Name, "err", err)
			srv.Close()
		}
		cancel()
		<-in.done
	}
	return in.r.close()
}

func (in *HTTPInput) authorised(r *http.Request) bool {
	if !in.hasSec {
		return true
	}
	got := sha256.Sum256([]byte(r.Header.Get(in.o.SecretHeader)))
	return subtle.ConstantTimeCompare(got[:], in.secret[:]) == 1
}

// ServeHTTP accepts one alert (or a JSON array of alerts) per request.
func (in *HTTPInput) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	recv := time.Now()
	if in.o.Path != "/" && r.URL.Path != in.o.Path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "POST a Falco alert", http.StatusMethodNotAllowed)
		return
	}
	if !in.authorised(r) {
		in.stats.unauthorized.Add(1)
		in.log.Warn("falco_http: request without the shared secret", "remote", r.RemoteAddr, "header", in.o.SecretHeader)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		http.Error(w, "unsupported Content-Encoding "+strconv.Quote(ce), http.StatusUnsupportedMediaType)
		return
	}
	if r.ContentLength > in.o.MaxBody {
		in.tooLarge(w, r.ContentLength)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, in.o.MaxBody+1))
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if int64(len(body)) > in.o.MaxBody {
		in.tooLarge(w, -1)
		return
	}
	pos := pipeline.Position{File: in.where, Line: int(in.seq.Add(1))}
	alerts, rejected := validate(body, pos)
	for _, e := range rejected {
		in.r.bad.report(e)
	}
	in.stats.rejected.Add(int64(len(rejected)))
	if len(alerts) == 0 {
		reason := "empty body"
		if len(rejected) > 0 {
			reason = rejected[0].Reason
		}
		in.log.Warn("falco_http: rejected a body that is not a Falco alert (json_output must be true)", "remote", r.RemoteAddr, "reason", reason)
		http.Error(w, "not a Falco json_output alert: "+reason, http.StatusBadRequest)
		return
	}
	p, err := in.r.spool.Append(recv, alerts...)
	if err == nil {
		err = p.Wait(r.Context())
	}
	if err != nil {
		in.stats.unavailable.Add(1)
		in.log.Warn("falco_http: alert not accepted", "err", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "alert not accepted: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	in.stats.accepted.Add(int64(len(alerts)))
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"accepted":%d,"rejected":%d}`+"\n", len(alerts), len(rejected))
}

func (in *HTTPInput) tooLarge(w http.ResponseWriter, n int64) {
	in.stats.tooLarge.Add(1)
	in.log.Warn("falco_http: body too large", "content_length", n, "max_body", in.o.MaxBody)
	http.Error(w, fmt.Sprintf("body larger than %d bytes", in.o.MaxBody), http.StatusRequestEntityTooLarge)
}
