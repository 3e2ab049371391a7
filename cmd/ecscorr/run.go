package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/partition"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/rules"
	kafkasrc "github.com/ecscorr/ecscorr/sources/kafka"
)

// cmdRun is `ecscorr run --config FILE`: the long-running service.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (YAML; see docs/config.md), or env:NAME to read it from an environment variable")
	logFormat := fs.String("log-format", "json", "log format on stderr: json or text")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: ecscorr run --config FILE\n\nRuns the live correlator: reads the configured sources, keeps state in state_dir, delivers incidents to the sinks.")
		fs.PrintDefaults()
	}
	rest, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if *cfgPath == "" || len(rest) > 0 {
		fmt.Fprintln(stderr, "ecscorr run: --config FILE is required, and nothing else")
		fs.Usage()
		return 2
	}
	if *logFormat != "json" && *logFormat != "text" {
		fmt.Fprintf(stderr, "ecscorr run: --log-format must be json or text, not %q\n", *logFormat)
		return 2
	}
	cfg, diags := loadConfig(*cfgPath)
	printDiags(stderr, diags, true)
	if diags.HasErrors() {
		fmt.Fprintln(stderr, "ecscorr: the config has errors; refusing to start")
		return 1
	}
	if len(cfg.Sources) == 0 && cfg.Role != roleCorrelate {
		fmt.Fprintf(stderr, "%s: no sources: (ecscorr run reads at least one; role correlate reads kafka.events_topic); refusing to start\n", *cfgPath)
		return 1
	}
	set, ok := loadRules(cfg.Rules, stderr, false)
	if !ok {
		return 1
	}
	stopProfiles, ok := startProfiles("run", *cpuProfile, "", stderr)
	if !ok {
		return 1
	}
	defer stopProfiles()
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(newRedactor(newHandler(stderr, *logFormat, level), cfg.secrets))

	// The second SIGTERM or SIGINT ends the process at once; SIGHUP
	// reloads the rules.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer func() {
		signal.Stop(sigs)
		close(sigs)
	}()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	svc := &service{cfg: cfg, log: log, stdout: stdout}
	go func() {
		stopping := false
		for s := range sigs {
			switch {
			case s == syscall.SIGHUP:
				if !stopping {
					svc.reload(rctx)
				}
			case stopping:
				log.Error("second signal: exiting at once; the state is as of the last commit", "signal", s.String())
				os.Exit(1)
			default:
				stopping = true
				log.Info("stopping: intake stops, state is committed, sinks drain", "signal", s.String(), "deadline", cfg.ShutdownTimeout.String())
				cancel()
			}
		}
	}()
	if err := svc.run(rctx, set); err != nil {
		log.Error("ecscorr run failed", "err", err)
		return 1
	}
	return 0
}

// service is one `ecscorr run`: the wiring of state, engine, inputs, sinks,
// metrics and the operations endpoint.
type service struct {
	cfg    *config
	log    *slog.Logger
	stdout io.Writer

	mu     sync.Mutex
	runner *pipeline.Runner
	eng    *engine.Engine
	set    *rule.Set
	st     *state.Store
	ins    []pipeline.Input
	m      *metrics
	ready  atomic.Bool // state open and the Runner running
	done   atomic.Bool // the Runner's loop has ended
	engOpt engine.Options
}

func (s *service) run(ctx context.Context, set *rule.Set) error {
	cfg := s.cfg
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("creating state_dir: %w", err)
	}
	reg := prometheus.NewRegistry()
	s.m = newMetrics(reg, s)
	dl, err := newDeadLetters(cfg.DeadLetter, s.log, s.m)
	if err != nil {
		return err
	}
	defer dl.Close()

	st, err := state.Open(cfg.StateDir, state.Options{Logger: s.log})
	if err != nil {
		return fmt.Errorf("opening state %s: %w", cfg.StateDir, err)
	}
	s.st = st
	// Badger closes last, after the Runner's final commit and the drain.
	defer func() {
		if err := st.Close(); err != nil {
			s.log.Error("closing state", "err", err)
		}
	}()

	var httpSrv *http.Server
	if cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen: %w", err)
		}
		httpSrv = &http.Server{Handler: s.handler(reg), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("http endpoint", "err", err)
			}
		}()
		defer func() {
			sctx, c := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer c()
			_ = httpSrv.Shutdown(sctx)
		}()
		s.log.Info("operations endpoint", "listen", ln.Addr().String())
	}

	sinks, policies, err := buildSinks(ctx, cfg, st, s.stdout, s.log)
	if err != nil {
		return err
	}
	ins, err := buildInputs(ctx, cfg, s.log, dl)
	if err != nil {
		for _, sk := range sinks {
			_ = sk.Close(ctx)
		}
		return err
	}
	var most time.Duration
	for _, d := range cfg.Lateness {
		most = max(most, d)
	}
	s.engOpt = engine.Options{Logger: s.log, MemoryBudget: cfg.StateMemory, Lateness: most}
	// The correlator of the role, and what closes it.
	var corr pipeline.Correlator
	var closeCorr func(context.Context) error
	switch cfg.Role {
	case roleIngest:
		pub, err := partition.NewPublisher(set, partition.PublisherOptions{Brokers: cfg.Kafka.Brokers, Topic: cfg.Kafka.EventsTopic,
			Lateness: most, TLS: kafkaTLS(cfg.Kafka.TLS)})
		if err != nil {
			return err
		}
		s.log.Info("role ingest: publishing each event once per key family it feeds", "topic", cfg.Kafka.EventsTopic,
			"families", pub.Families().String())
		corr, closeCorr = pub, func(context.Context) error { return pub.Close() }
	case roleCorrelate:
		eo := s.engOpt
		eo.MemoryBudget = 0 // partition engines hold their state in memory; it is rebuilt from the topic
		ro := partition.RouterOptions{Brokers: cfg.Kafka.Brokers, Topic: cfg.Kafka.EventsTopic,
			Engine: eo, TLS: kafkaTLS(cfg.Kafka.TLS), Logger: s.log}
		if cfg.Kafka.ChangelogTopic != "" {
			ro.Changelog, ro.Store = cfg.Kafka.ChangelogTopic, st
		}
		rt, err := partition.NewRouter(ctx, set, ro)
		if err != nil {
			return err
		}
		name := "kafka:" + cfg.Kafka.EventsTopic
		in, err := kafkasrc.New(kafkasrc.Options{Name: name, Brokers: cfg.Kafka.Brokers, Topics: []string{cfg.Kafka.EventsTopic},
			Group: cfg.Kafka.Group, Format: kafkasrc.FormatEvents, ClientID: cfg.Kafka.ClientID, TLS: kafkaTLS(cfg.Kafka.TLS),
			SessionTimeout: cfg.Kafka.SessionTimeout, OnAssign: rt.Assigned, OnRevoke: rt.Revoked, Bad: dl.bad(name), Logger: s.log})
		if err != nil {
			return err
		}
		ins = append(ins, in)
		s.log.Info("role correlate: an engine per partition and key family", "topic", cfg.Kafka.EventsTopic,
			"group", cfg.Kafka.Group, "families", rt.Families().String())
		corr, closeCorr = rt, rt.Close
	default:
		eng, err := engine.New(ctx, set, st, s.engOpt)
		if err != nil {
			return fmt.Errorf("starting engine: %w", err)
		}
		s.mu.Lock()
		s.eng = eng
		s.mu.Unlock()
		corr = eng
		closeCorr = func(ctx context.Context) error {
			s.mu.Lock()
			eng := s.eng
			s.mu.Unlock()
			return eng.Close(ctx)
		}
	}
	s.mu.Lock()
	s.set = set
	s.mu.Unlock()
	s.ins = ins
	counted := make([]pipeline.Input, len(ins))
	for i, in := range ins {
		counted[i] = s.m.countInput(in)
	}

	lateness, defLate := cfg.Lateness, most
	if cfg.Role == roleCorrelate {
		// The ingest waited for the sources; here only the partitions'
		// skew is waited for.
		lateness, defLate = nil, cfg.Kafka.Lateness
	}
	r, err := pipeline.NewRunner(pipeline.RunnerOptions{
		Inputs: counted, Correlator: corr, Store: st, Sinks: sinks, Delivery: policies,
		Lateness: lateness, DefaultLateness: defLate, IdleAfter: cfg.IdleAfter, ProcessingClock: true,
		CommitEvery: cfg.CommitInterval, Eager: cfg.Eager && cfg.Role == roleAll, MaxApplied: cfg.MaxApplied,
		ShutdownDrain: cfg.ShutdownTimeout,
		OnSkip:        dl.skipped,
		OnIncidents:   s.m.incidents,
		Progress:      s.m.progress,
		Logger:        s.log,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.runner = r
	s.mu.Unlock()
	s.ready.Store(true)
	s.log.Info("ecscorr running", "version", version, "role", cfg.Role, "state_dir", cfg.StateDir, "rules", len(set.Rules),
		"sources", len(ins), "sinks", len(sinks), "eager", cfg.Eager)
	stats, err := r.Run(ctx)
	s.ready.Store(false)
	s.done.Store(true)
	s.m.progress(stats)
	if cerr := closeCorr(context.WithoutCancel(ctx)); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing the correlator: %w", cerr))
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	s.log.Info("ecscorr stopped", "received", stats.Received, "applied", stats.Applied, "late", stats.Late,
		"duplicates", stats.Duplicates, "commits", stats.Commits)
	return err
}

// reload loads the rules again (SIGHUP); a set that fails to load is
// reported and the running one stays, as Prometheus does.
func (s *service) reload(ctx context.Context) {
	s.mu.Lock()
	r := s.runner
	s.mu.Unlock()
	if r == nil {
		return
	}
	if s.cfg.Role != roleAll {
		s.log.Error("rule reload in role " + s.cfg.Role + " needs a restart of every instance (ingest and correlate must load the same rules); keeping the running rules")
		s.m.reloads.WithLabelValues("failed").Inc()
		return
	}
	set, diags := rule.LoadPaths(s.cfg.Rules, rule.LoadOptions{Now: time.Now(), Builtin: rules.Builtin})
	if diags.HasErrors() {
		var msgs []string
		for _, d := range diags {
			if d.Severity == rule.SevError {
				msgs = append(msgs, d.String())
			}
		}
		s.log.Error("rule reload failed; keeping the running rules", "errors", msgs)
		s.m.reloads.WithLabelValues("failed").Inc()
		return
	}
	err := r.Swap(ctx, func(old pipeline.Correlator) (pipeline.Correlator, error) {
		oe := old.(*engine.Engine)
		if err := oe.Close(ctx); err != nil {
			return nil, err
		}
		ne, err := engine.New(ctx, set, s.st, s.engOpt)
		if err != nil {
			// Start the running rules again from the state just written.
			back, berr := engine.New(ctx, s.set, s.st, s.engOpt)
			if berr != nil {
				return nil, errors.Join(err, berr)
			}
			s.mu.Lock()
			s.eng = back
			s.mu.Unlock()
			return back, nil
		}
		s.mu.Lock()
		s.eng, s.set = ne, set
		s.mu.Unlock()
		return ne, nil
	})
	if err != nil {
		s.log.Error("rule reload failed; keeping the running rules", "err", err)
		s.m.reloads.WithLabelValues("failed").Inc()
		return
	}
	s.m.reloads.WithLabelValues("ok").Inc()
	s.log.Info("rules reloaded", "rules", len(set.Rules))
}

// kafkaTLS is the TLS of a Kafka client's connections (tls: true, for
// MSK), or nil.
func kafkaTLS(on bool) *tls.Config {
	if !on {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

func (s *service) engine() *engine.Engine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eng
}

func (s *service) handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if s.done.Load() {
			http.Error(w, "stopped\n", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		problems := map[string]string{}
		if !s.ready.Load() {
			problems["runner"] = "not running"
		}
		for _, in := range s.ins {
			if rd, ok := in.(pipeline.Readiness); ok {
				if err := rd.Ready(); err != nil {
					problems[in.Name()] = err.Error()
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{"ready": false, "problems": problems})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": true})
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// cmdConfigCheck is `ecscorr config check FILE`: the config and the rules
// it names, checked as `run` checks them, without starting anything.
func cmdConfigCheck(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "Usage: ecscorr config check FILE")
		return 2
	}
	cfg, diags := loadConfig(args[0])
	errs := printDiags(stderr, diags, true)
	if diags.HasErrors() {
		fmt.Fprintf(stderr, "%s: %d error(s)\n", args[0], errs)
		return 1
	}
	if _, ok := loadRules(cfg.Rules, stderr, false); !ok {
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d sources, %d sinks, rules %v, state in %s)\n", args[0], len(cfg.Sources), len(cfg.Sinks), cfg.Rules, cfg.StateDir)
	return 0
}

// spoolDir is where an input that must hold what it accepted before the
// Runner commits it (Falco) keeps its spool.
func spoolDir(cfg *config, name string) string {
	return filepath.Join(cfg.StateDir, "spool", safeName(name))
}

func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}
