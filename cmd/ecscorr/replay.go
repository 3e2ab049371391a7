package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/report/cases"
	"github.com/ecscorr/ecscorr/rules"
	"github.com/ecscorr/ecscorr/sources/archive"
)

type replayFlags struct {
	rules      multiFlag
	since      string
	until      string
	out        string
	format     string
	stateDir   string
	deadLetter string
	sortMem    int64
	quiet      bool
	cpuProfile string
	traceFile  string
	memProfile string
	wide       bool
	explain    bool
	verbose    bool
	// commitEvery is the processing time between state commits with --state.
	commitEvery  time.Duration
	batch        int
	config       string
	drainTimeout time.Duration
	stateMemory  byteSize
	report       string
	caseWindow   time.Duration
	// Exit codes and output filters (see replayHelp).
	failOn       string
	allowDamaged bool
	severity     string
	ruleFilter   multiFlag
	taskFilter   multiFlag
	tagFilter    multiFlag
}

// Exit codes of replay (and the other commands: 0, 1, 2).
const (
	exitOK      = 0
	exitError   = 1 // a failure: unwritable output, broken rules or config, ...
	exitUsage   = 2 // a bad command line: unknown flag, bad value, empty range, missing PATH
	exitFound   = 3 // --fail-on: an incident at or above that severity was written
	exitDamaged = 4 // input damaged or unreadable (truncated gzip, unreadable file or folder); wins over 3
)

const replayHelp = `Usage: ecscorr replay [flags] PATH...

Replays archived logs (files or folders, plain or gzip; - reads standard
input) in event-time order and writes incidents.

--since and --until (exclusive) take a date (2023-07-10, UTC midnight), a
date-time (2023-07-10T12:00:00Z, 2023-07-10T12:00+02:00; 2023-07-10 12:00 and
2023-07-10T12:00 without a zone are UTC), an offset from now (-24h, -90m, -7d,
now-1h) or from the newest event read (newest-24h: the archive's last day).

--severity, --rule, --task and --tag select what is written (stdout, --out);
every incident is still correlated, stored in --state and sent to --config's
sinks. All given filters must match; a repeated filter matches any value.

Exit status:
  0  done, nothing --fail-on asked about
  1  error (unwritable output, broken rules or config, ...)
  2  usage error (unknown flag, bad value, empty --since/--until range, missing PATH)
  3  --fail-on SEVERITY: an incident at or above it was written (after all output)
  4  damaged input: a file or folder could not be read whole (truncated gzip,
     unreadable file or folder; the summary lists them), unless --allow-damaged.
     4 wins over 3: the incidents may be incomplete.

Flags:`

func cmdReplay(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var f replayFlags
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&f.rules, "rules", rulesFlagHelp)
	fs.StringVar(&f.since, "since", "", "only events at or after this `time` (a date, date-time or offset, see above)")
	fs.StringVar(&f.until, "until", "", "only events before this `time` (exclusive; as --since)")
	fs.StringVar(&f.failOn, "fail-on", "", "exit 3 when an incident at or above this `severity` (informational, low, medium, high, critical) is written")
	fs.BoolVar(&f.allowDamaged, "allow-damaged", false, "exit 0 (or 3) even when input files were damaged or unreadable (they are still counted in the summary)")
	fs.StringVar(&f.severity, "severity", "", "write only incidents at or above this `severity`")
	fs.Var(&f.ruleFilter, "rule", "write only incidents of this rule `id` (repeatable or comma-separated; * is a wildcard: 'ecs-drift-*')")
	fs.Var(&f.taskFilter, "task", "write only incidents whose task ARN contains this `text` (a task ARN, id or cluster/id; repeatable)")
	fs.Var(&f.tagFilter, "tag", "write only incidents with this `tag` or MITRE ATT&CK id (drift, T1078, attack.t1078; a technique matches its sub-techniques; repeatable)")
	fs.StringVar(&f.out, "out", "", "write incidents to this file instead of stdout")
	fs.BoolVar(&f.explain, "explain", false, "under each incident (table) or as its \"explain\" member (jsonl): the signals and conditions that matched and the values they saw (reads the evidence again)")
	fs.BoolVar(&f.wide, "wide", false, "with --format table: one line per incident with every column in full (title, key, summary, remediation)")
	fs.StringVar(&f.format, "format", "jsonl", "output format: jsonl, table (incidents grouped by attack case) or cases (one case per line, JSON)")
	fs.StringVar(&f.report, "report", "", "also write a self-contained HTML report (overview, cases, timelines, evidence) to this file")
	fs.DurationVar(&f.caseWindow, "case-window", cases.DefaultWindow, "how far apart in time linked incidents may be to form one case")
	fs.StringVar(&f.stateDir, "state", "", "Badger state directory to use and keep (default: a temporary one)")
	fs.StringVar(&f.deadLetter, "dead-letter", "", "write skipped records (JSON lines with position and reason) to this file")
	fs.Int64Var(&f.sortMem, "sort-mem", 256<<20, "bytes of events to hold in memory before spilling sorted runs to disk")
	fs.BoolVar(&f.quiet, "quiet", false, "no summary on stderr")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	fs.StringVar(&f.traceFile, "trace", "", "write a Go execution trace to this file (go tool trace): where the cores wait")
	fs.StringVar(&f.memProfile, "memprofile", "", "write a heap profile (at the end of the run) to this file")
	fs.BoolVar(&f.verbose, "v", false, "debug logging")
	fs.DurationVar(&f.commitEvery, "commit-interval", 30*time.Second, "with --state: processing time between atomic state commits (a replay killed in between resumes from the last)")
	fs.StringVar(&f.config, "config", "", "config file whose sinks (Slack, Security Hub, ...) also get the incidents, as live mode would send them")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "with --config: how long to wait at the end for sinks to take what is due (the rest stays in the --state outbox)")
	f.stateMemory = 256 << 20
	fs.Var(&f.stateMemory, "state-memory", "memory budget of correlation state (e.g. 256MiB, 1GiB; 0 = unbounded); past it the least recently used state lives in Badger (in --state, or a temporary store)")
	fs.IntVar(&f.batch, "batch", 1024, "events handed to the correlator at a time (a commit falls between batches)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), replayHelp)
		fs.PrintDefaults()
	}
	paths, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "ecscorr replay: no input paths")
		fs.Usage()
		return 2
	}
	stdinArgs := 0
	for _, p := range paths {
		if p == "-" {
			if stdinArgs++; stdinArgs > 1 {
				fmt.Fprintln(stderr, "ecscorr replay: - (standard input) given twice")
				return 2
			}
			continue
		}
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(stderr, "ecscorr replay: %v\n", err)
			return 2
		}
	}
	var failOn pipeline.Severity
	if f.failOn != "" {
		s, err := pipeline.ParseSeverity(f.failOn)
		if err != nil {
			fmt.Fprintf(stderr, "ecscorr replay: --fail-on: %v\n", err)
			return 2
		}
		failOn = s
	}
	filter, err := newOutputFilter(f.severity, f.ruleFilter, f.taskFilter, f.tagFilter)
	if err != nil {
		fmt.Fprintf(stderr, "ecscorr replay: %v\n", err)
		return 2
	}
	if f.out != "" && f.deadLetter != "" && sameFile(f.out, f.deadLetter) {
		fmt.Fprintf(stderr, "ecscorr replay: --dead-letter and --out name the same file %s: dead letters would overwrite the incidents\n", f.deadLetter)
		return 2
	}
	if f.format != "jsonl" && f.format != "table" && f.format != formatCases {
		fmt.Fprintf(stderr, "ecscorr replay: --format must be jsonl or table, or cases, not %q\n", f.format)
		return 2
	}
	var tr timeRange
	for _, p := range []struct {
		s, n string
		a    *timeArg
	}{{f.since, "--since", &tr.since}, {f.until, "--until", &tr.until}} {
		a, err := parseTimeArg(p.n, p.s)
		if err != nil {
			fmt.Fprintf(stderr, "ecscorr replay: %v\n", err)
			return 2
		}
		*p.a = a
	}
	now := time.Now()
	if err := tr.check(now); err != nil {
		fmt.Fprintf(stderr, "ecscorr replay: %v\n", err)
		return 2
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	// On a terminal the progress line and the log share one writer, so
	// that a log line never lands in the middle of the progress line.
	status := terminalStatus(stderr)
	errw := stderr
	if status != nil {
		errw = status
	}
	log := newLogger(errw, level)

	stopProfiles, ok := startProfiles("replay", f.cpuProfile, f.traceFile, stderr)
	if !ok {
		return 1
	}
	defer stopProfiles()
	if f.memProfile != "" {
		defer func() {
			if pf, err := os.Create(f.memProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(pf, 0)
				pf.Close()
			}
		}()
	}
	var cfg *config
	if f.config != "" {
		var diags rule.Diagnostics
		cfg, diags = loadConfig(f.config)
		printDiags(stderr, diags, true)
		if diags.HasErrors() {
			fmt.Fprintln(stderr, "ecscorr: the config has errors; refusing to start")
			return 1
		}
	}
	set, ok := loadRules(f.rules, stderr, f.verbose)
	if !ok {
		return 1
	}
	if err := filter.checkRules(set); err != nil {
		fmt.Fprintf(stderr, "ecscorr replay: %v\n", err)
		return 2
	}
	stopGC := tuneGC()
	defer stopGC()
	res, err := replay(ctx, replayRun{f: f, cfg: cfg, set: set, paths: paths, tr: tr, now: now, filter: filter, stdin: stdin, status: status}, stdout, errw, log)
	if err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "ecscorr replay: %v\n", ue)
			return 2
		}
		fmt.Fprintf(stderr, "ecscorr replay: %v\n", err)
		return 1
	}
	return res.exitCode(failOn, f.allowDamaged)
}

// replayRun is what cmdReplay hands replay.
type replayRun struct {
	f      replayFlags
	cfg    *config
	set    *rule.Set
	paths  []string // "-" is standard input
	tr     timeRange
	now    time.Time // the start of the run, for offsets from now
	filter *outputFilter
	stdin  io.Reader
	status *statusLine // nil: no progress line
}

// replayResult is what decides replay's exit status.
type replayResult struct {
	written []pipeline.Incident // what the filters kept
	damaged int64               // files and folders not read whole
}

// exitCode: 4 for damaged input (unless allowed), then 3 for --fail-on.
func (r replayResult) exitCode(failOn pipeline.Severity, allowDamaged bool) int {
	if r.damaged > 0 && !allowDamaged {
		return exitDamaged
	}
	if failOn != pipeline.SeverityUnknown {
		for _, inc := range r.written {
			if inc.Severity >= failOn {
				return exitFound
			}
		}
	}
	return exitOK
}

// damagedClasses are the skip classes that mean input was lost (exit 4):
// a file that could not be opened or read to its end, a folder that could
// not be listed. Digests, README files, hidden files and repeated paths
// are skipped on purpose and do not count.
func damagedCount(rs archive.Stats) int64 {
	return rs.Skipped[archive.SkipBadFile] + rs.Skipped[archive.SkipUnreadableDir]
}

// loadRules loads the given rule paths (see rule.LoadPaths: `builtin` is
// the embedded pack, no path means the pack alone), printing diagnostics;
// it reports false when any error was found.
func loadRules(paths []string, stderr io.Writer, notes bool) (*rule.Set, bool) {
	warnBuiltinFolder(paths, stderr)
	set, diags := rule.LoadPaths(paths, rule.LoadOptions{Now: time.Now(), Builtin: rules.Builtin})
	printDiags(stderr, diags, notes)
	if diags.HasErrors() {
		fmt.Fprintf(stderr, "ecscorr: rules have errors; refusing to start\n")
		return nil, false
	}
	return set, true
}

func replay(ctx context.Context, run replayRun, stdout, stderr io.Writer, log *slog.Logger) (replayResult, error) {
	f, cfg, set, paths := run.f, run.cfg, run.set, run.paths
	start := run.now
	// The destination is opened first: an unwritable --out stops the run
	// before it has read or committed anything.
	var tds taskDefs
	caseOpts := func() cases.Options { return cases.Options{Window: f.caseWindow, TaskDefinitions: tds.snapshot()} }
	// --explain reads the evidence again once the run is over; what it
	// needs is known further down.
	var explain explainFunc
	var explainWith func(ctx context.Context, incs []pipeline.Incident) (func(pipeline.Incident) []string, error)
	if f.explain {
		explain = func(ctx context.Context, incs []pipeline.Incident) (func(pipeline.Incident) []string, error) {
			return explainWith(ctx, incs)
		}
	}
	fileSink, err := newReplaySink(f.out, f.format, f.wide, explain, stdout, caseOpts)
	if err != nil {
		return replayResult{}, err
	}
	defer fileSink.Close(ctx)
	// The output filters sit between the Runner and what writes the
	// report (jsonl, table, cases; --report gets the same selection):
	// everything is still correlated and kept in the outbox.
	sink := fileSink
	if run.filter.active() {
		sink = filterSink{Sink: fileSink, f: run.filter}
	}
	// A range from now is fixed at the start; one from the newest event
	// is decided by the archive input once it has read everything.
	var since, until time.Time
	var window func(time.Time) (time.Time, time.Time, error)
	if run.tr.needsNewest() {
		window = func(newest time.Time) (time.Time, time.Time, error) { return run.tr.resolve(run.now, newest) }
	} else if since, until, err = run.tr.resolve(run.now, time.Time{}); err != nil {
		return replayResult{}, err
	}
	rep, err := createReport(f.report)
	if err != nil {
		return replayResult{}, err
	}
	defer rep.Close()
	tmp, err := os.MkdirTemp("", "ecscorr-replay-")
	if err != nil {
		return replayResult{}, fmt.Errorf("creating temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	// Without --state the engine runs ephemeral: its state lives in memory
	// (as it does anyway) and is not written to a store nobody will read.
	var (
		st    *state.Store
		store pipeline.StateStore
		cm    pipeline.ContainerMap
		eng   *engine.Engine
	)
	if f.stateDir != "" {
		st, err = state.Open(f.stateDir, state.Options{Logger: log})
		if err != nil {
			return replayResult{}, fmt.Errorf("opening state %s: %w", f.stateDir, err)
		}
		defer st.Close()
		store, cm = st, st
	}
	streams, policies, err := buildSinks(ctx, cfg, store, stdout, log)
	if err != nil {
		return replayResult{}, err
	}
	// The memory budget needs a store to evict to: --state, or a scratch
	// store in the temp dir that holds evicted state only.
	engStore := st
	if engStore == nil && f.stateMemory > 0 {
		scratch, err := state.Open(filepath.Join(tmp, "scratch"), state.Options{Logger: log, GCInterval: -1})
		if err != nil {
			return replayResult{}, fmt.Errorf("opening a scratch store: %w", err)
		}
		defer scratch.Close()
		engStore = scratch
	}
	eng, err = engine.New(ctx, set, engStore, engine.Options{Logger: log, Ephemeral: st == nil, MemoryBudget: int64(f.stateMemory)})
	if err != nil {
		return replayResult{}, fmt.Errorf("starting engine: %w", err)
	}

	// Skipped records: counted by the reader per class (see the summary),
	// logged here with position and reason (the first few), and
	// dead-lettered when asked.
	var (
		badMu     sync.Mutex
		badLogged int
		dl        *json.Encoder
		dlFile    *os.File
	)
	if f.deadLetter != "" {
		dlFile, err = os.Create(f.deadLetter)
		if err != nil {
			return replayResult{}, fmt.Errorf("creating dead-letter file: %w", err)
		}
		defer dlFile.Close()
		dl = json.NewEncoder(dlFile)
	}
	logBad := func(msg string, args ...any) {
		if badLogged < 20 {
			log.Warn(msg, args...)
			badLogged++
			if badLogged == 20 {
				log.Warn("further skipped records are only counted (see the summary)")
			}
		}
	}
	bad := func(e archive.RecordError) {
		badMu.Lock()
		defer badMu.Unlock()
		logBad("skipped record", "pos", e.Pos.String(), "source", string(e.Source), "reason", e.Reason)
		if dl != nil {
			_ = dl.Encode(map[string]any{"file": e.Pos.File, "line": e.Pos.Line, "record": e.Pos.Record, "source": e.Source, "reason": e.Reason, "sample": string(e.Sample)})
		}
	}
	// Events the Runner does not apply: a conflicting reuse of an id is bad
	// input (logged and dead-lettered with both positions); a redelivery
	// or a rerun over kept state is counted only.
	onSkip := func(reason pipeline.SkipReason, ev *pipeline.Event, first *pipeline.Position) {
		if reason == pipeline.SkipDuplicate {
			return
		}
		badMu.Lock()
		defer badMu.Unlock()
		rec := map[string]any{"file": ev.Pos.File, "line": ev.Pos.Line, "record": ev.Pos.Record, "source": ev.Source, "id": ev.ID, "reason": string(reason)}
		args := []any{"pos", ev.Pos.String(), "source", string(ev.Source), "id", ev.ID, "reason", string(reason)}
		if first != nil {
			rec["first"] = map[string]any{"file": first.File, "line": first.Line, "record": first.Record}
			args = append(args, "first", first.String())
		}
		logBad("skipped event", args...)
		if dl != nil {
			if len(ev.Raw) > 0 {
				rec["sample"] = string(ev.Raw)
			}
			_ = dl.Encode(rec)
		}
	}

	// CloudTrail is most of any archive and mostly irrelevant: let the
	// reader skip what no rule can match before it does the expensive part.
	// The matchers' verdicts go with the event, and the record itself only
	// when a rule reads it past them. The reader counts what is rejected
	// and why, and the event times read: nothing shared is written per
	// record from the reading goroutines.
	reader := archive.NewReader(archive.Options{Logger: log, Filter: func(src pipeline.Source, typ string, t time.Time, rec pipeline.RawRecord) pipeline.Verdict {
		if (!since.IsZero() && t.Before(since)) || (!until.IsZero() && !t.Before(until)) {
			return pipeline.Verdict{Outside: true}
		}
		v := set.Judge(src, typ, rec)
		if v.Keep {
			v.NoRaw = v.Matched != nil && !eng.RecordNeeded(v.Matched)
		}
		return v
	}})
	// Never read what this run writes: a dead-letter or output file inside
	// an input folder would feed the replay its own records.
	own := map[string]bool{}
	for _, p := range []string{f.deadLetter, f.out, f.report} {
		if p != "" {
			if abs, err := filepath.Abs(p); err == nil {
				own[abs] = true
			}
		}
	}
	prog := &replayProgress{start: start, filtered: reader.FilteredSoFar}
	jobs := readJobs(reader, paths, own, run.stdin, bad)
	for _, j := range jobs {
		prog.totalBytes += j.size
	}
	read := func(ctx context.Context, emit func(*pipeline.Event) error) error {
		err := readJobsParallel(ctx, reader, jobs, &prog.bytes, func(ev *pipeline.Event) error {
			prog.emitted.Add(1)
			tds.observe(ev)
			return emit(ev)
		}, bad)
		prog.readDone(time.Now())
		return err
	}
	var progress func(pipeline.ArchiveStats, pipeline.RunStats)
	stopProgress := func() {}
	if run.status != nil {
		progress = prog.runner
		stop, done := make(chan struct{}), make(chan struct{})
		go drawEvery(run.status, prog, 250*time.Millisecond, stop, done)
		stopProgress = sync.OnceFunc(func() {
			close(stop)
			<-done
			run.status.Clear()
		})
		defer stopProgress()
	}
	res := pipeline.NewResolver(cm, 0)
	explainWith = func(ctx context.Context, incs []pipeline.Incident) (func(pipeline.Incident) []string, error) {
		x, err := newExplainer(ctx, set, paths, own, incs, res, log)
		if err != nil {
			return nil, err
		}
		return x.lines, nil
	}
	incs, as, rs, err := pipeline.Replay(ctx, read, eng, pipeline.ReplayOptions{
		Archive: pipeline.ArchiveOptions{
			Since: since, Until: until, Window: window,
			NewestFiltered: func() time.Time { return reader.Stats().Last },
			Relevant:       relevance(set),
			SortMem:        f.sortMem,
			TempDir:        tmp,
			BatchSize:      f.batch,
		},
		Resolver:     res,
		Store:        store,
		Sinks:        append([]pipeline.Sink{sink}, streams...),
		Delivery:     policies,
		DrainTimeout: f.drainTimeout,
		CommitEvery:  f.commitEvery,
		OnSkip:       onSkip,
		Progress:     progress,
		Logger:       log,
	})
	if err != nil {
		return replayResult{}, err
	}
	correlated := time.Now()
	es := eng.Stats()
	if err := eng.Close(ctx); err != nil {
		return replayResult{}, fmt.Errorf("closing engine: %w", err)
	}
	rst := reader.Stats()
	outOfRange, irrelevant := filteredWhy(rst)
	result := replayResult{written: run.filter.apply(incs), damaged: damagedCount(rst)}
	if err := rep.write(ctx, replayInputs{paths, rst, as, outOfRange, irrelevant, rs}, own, result.written, res, caseOpts(), log); err != nil {
		return replayResult{}, err
	}
	stopProgress()
	if !f.quiet {
		as.OutOfRange += outOfRange
		as.Dropped += irrelevant
		now := time.Now()
		phases := replayPhases{total: now.Sub(start), writing: now.Sub(correlated)}
		if end := prog.readEnd.Load(); end != 0 {
			phases.reading = time.Unix(0, end).Sub(start)
			phases.correlating = correlated.Sub(time.Unix(0, end))
		}
		writeSummary(stderr, rst, as, rs, incs, es, phases)
		if run.filter.active() {
			fmt.Fprintf(stderr, "  incidents written: %d (%d filtered out by %s)\n", len(result.written), len(incs)-len(result.written), run.filter.describe())
		}
		if result.damaged > 0 {
			verdict := "exit status 4; --allow-damaged accepts it"
			if f.allowDamaged {
				verdict = "accepted with --allow-damaged"
			}
			fmt.Fprintf(stderr, "  input damaged or unreadable: %d file(s) or folder(s); the incidents may be incomplete (%s)\n", result.damaged, verdict)
		}
	}
	return result, nil
}

// readJob is one file, or standard input, to read.
type readJob struct {
	name  string    // the path, or "stdin"
	stdin io.Reader // set for standard input
	size  int64     // bytes on disk (compressed, for gzip); 0 when unknown
}

// readJobs lists what to read: standard input first if "-" is a PATH,
// then the files the archive reader's walk lists (and in its order), with
// their sizes for the progress line.
func readJobs(r *archive.Reader, paths []string, skip map[string]bool, stdin io.Reader, bad func(archive.RecordError)) []readJob {
	var jobs []readJob
	files := make([]string, 0, len(paths))
	for _, p := range paths {
		if p != "-" {
			files = append(files, p)
			continue
		}
		if stdin == nil {
			continue // a second read (the report's evidence) cannot read it again
		}
		j := readJob{name: "stdin", stdin: stdin}
		if f, ok := stdin.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				j.size = fi.Size() // < file.json.gz
			}
		}
		jobs = append(jobs, j)
	}
	for _, file := range r.Files(files, func(abs string) bool { return skip[abs] }, bad) {
		j := readJob{name: file}
		if archive.SkipClass(file) == "" {
			if fi, err := os.Stat(file); err == nil {
				j.size = fi.Size()
			}
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// readJob reads one job, counting its bytes into done; once the job is
// over the rest of its size counts as done too (a file skipped after its
// first bytes, or cut short), so that the total is reached at the end.
func readOne(ctx context.Context, r *archive.Reader, j readJob, done *atomic.Int64, emit func(*pipeline.Event) error, bad func(archive.RecordError)) error {
	var cr *countingReader
	open := func() (io.ReadCloser, error) {
		if j.stdin != nil {
			cr = &countingReader{r: io.NopCloser(j.stdin), n: done}
			return cr, nil
		}
		f, err := os.Open(j.name)
		if err != nil {
			return nil, err
		}
		cr = &countingReader{r: f, n: done}
		return cr, nil
	}
	err := r.ReadFrom(ctx, j.name, open, emit, bad)
	if read := int64(0); j.size > 0 {
		if cr != nil {
			read = cr.read
		}
		if j.size > read {
			done.Add(j.size - read)
		}
	}
	return err
}

// readParallel reads the files under paths on up to GOMAXPROCS goroutines.
func readParallel(ctx context.Context, r *archive.Reader, paths []string, skip map[string]bool, emit func(*pipeline.Event) error, bad func(archive.RecordError)) error {
	return readJobsParallel(ctx, r, readJobs(r, paths, skip, nil, bad), new(atomic.Int64), emit, bad)
}

// readJobsParallel reads the jobs on up to GOMAXPROCS goroutines, counting
// the bytes read into done.
func readJobsParallel(ctx context.Context, r *archive.Reader, jobs []readJob, done *atomic.Int64, emit func(*pipeline.Event) error, bad func(archive.RecordError)) error {
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	if workers <= 1 {
		for _, j := range jobs {
			if err := readOne(ctx, r, j, done, emit, bad); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan readJob)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				if err := readOne(ctx, r, j, done, emit, bad); err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errc)
	for err := range errc {
		return err
	}
	return ctx.Err()
}

// relevance drops events that no signal can match before they are
// buffered for ordering. What they teach the container resolver has been
// learned while reading (pipeline.Replay calls Resolver.LearnEvent).
func relevance(set *rule.Set) func(*pipeline.Event) pipeline.Relevance {
	return func(ev *pipeline.Event) pipeline.Relevance {
		if byType, anyType := set.Candidates(ev.Source, ev.Type); len(byType)+len(anyType) > 0 {
			return pipeline.Keep
		}
		return pipeline.Drop
	}
}

// replayPhases is where a replay's time went: reading (and filtering)
// every input, then sorting and correlating the events kept and
// delivering the incidents, then writing the outputs.
type replayPhases struct{ total, reading, correlating, writing time.Duration }

func writeSummary(w io.Writer, rs archive.Stats, st pipeline.ArchiveStats, run pipeline.RunStats, incs []pipeline.Incident, es engine.Stats, took replayPhases) {
	var total int64
	fmt.Fprintln(w, "\nreplay summary")
	fmt.Fprintf(w, "  files read: %d\n", rs.Files)
	for _, s := range pipeline.Sources {
		if n := rs.Read[s]; n > 0 {
			fmt.Fprintf(w, "  records read  %-19s %d\n", s, n)
			total += n
		}
	}
	var recSkipped, fileSkipped int64
	var recLines, fileLines []string
	classes := make([]string, 0, len(rs.Skipped))
	for c := range rs.Skipped {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	for _, c := range classes {
		n := rs.Skipped[c]
		if archive.IsFileClass(c) {
			fileSkipped += n
			fileLines = append(fileLines, fmt.Sprintf("    %-40s %d", c, n))
		} else {
			recSkipped += n
			recLines = append(recLines, fmt.Sprintf("    %-40s %d", c, n))
		}
	}
	fmt.Fprintf(w, "  records skipped: %d\n", recSkipped)
	for _, l := range recLines {
		fmt.Fprintln(w, l)
	}
	if fileSkipped > 0 {
		fmt.Fprintf(w, "  files skipped: %d\n", fileSkipped)
		for _, l := range fileLines {
			fmt.Fprintln(w, l)
		}
	}
	if st.OutOfRange > 0 {
		fmt.Fprintf(w, "  outside --since/--until: %d\n", st.OutOfRange)
	}
	fmt.Fprintf(w, "  events correlated: %d (irrelevant to every rule: %d)\n", run.Applied, st.Dropped)
	if run.Duplicates > 0 {
		fmt.Fprintf(w, "  events already applied (repeated, or in the kept --state): %d\n", run.Duplicates)
	}
	if run.Conflicts > 0 {
		fmt.Fprintf(w, "  events reusing an applied id with other content (dead-lettered): %d\n", run.Conflicts)
	}
	if run.AppliedEvicted > 0 {
		fmt.Fprintf(w, "  applied events forgotten early (the applied-event set was full): %d\n", run.AppliedEvicted)
	}
	if run.TooLate > 0 {
		fmt.Fprintf(w, "  events older than every rule's reach behind the watermark: %d\n", run.TooLate)
	}
	var unresolved int64
	for _, n := range run.Unresolved {
		unresolved += n
	}
	fmt.Fprintf(w, "  events unresolved to a task: %d", unresolved)
	if unresolved > 0 {
		var parts []string
		for _, s := range pipeline.Sources {
			if n := run.Unresolved[s]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", s, n))
			}
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	if !rs.First.IsZero() {
		fmt.Fprintf(w, "  event time of the records read: %s .. %s\n", rs.First.UTC().Format(time.RFC3339), rs.Last.UTC().Format(time.RFC3339))
	}
	if !run.First.IsZero() {
		fmt.Fprintf(w, "  event time: %s .. %s (correlated)\n", run.First.Format(time.RFC3339), run.Last.Format(time.RFC3339))
	}
	if st.Runs > 0 {
		fmt.Fprintf(w, "  sorted on disk: %d events in %d runs\n", st.Spilled, st.Runs)
	}
	bySev := map[pipeline.Severity]int{}
	for _, inc := range incs {
		bySev[inc.Severity]++
	}
	fmt.Fprintf(w, "  incidents: %d", len(incs))
	var parts []string
	for s := pipeline.SeverityCritical; s >= pipeline.SeverityInformational; s-- {
		if n := bySev[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	sinkNames := make([]string, 0, len(run.Sinks))
	for n := range run.Sinks {
		sinkNames = append(sinkNames, n)
	}
	slices.Sort(sinkNames)
	for _, n := range sinkNames {
		s := run.Sinks[n]
		fmt.Fprintf(w, "  sink %s: %d delivered, %d retries, %d dead-lettered, %d waiting", n, s.Delivered, s.Retries, s.DeadLetters, s.Depth)
		if s.Depth > 0 {
			fmt.Fprintf(w, " (oldest %s; see ecscorr outbox list)", s.OldestAge.Round(time.Second))
		}
		if s.Dead > 0 {
			fmt.Fprintf(w, ", %d dead in the outbox", s.Dead)
		}
		fmt.Fprintln(w)
	}
	for _, line := range es.SummaryLines() {
		fmt.Fprintf(w, "  %s\n", line)
	}
	rate := float64(total) / took.total.Seconds()
	fmt.Fprintf(w, "  time: %s (%.0f events/s)", took.total.Round(time.Millisecond), rate)
	if took.reading > 0 {
		fmt.Fprintf(w, ": reading %s, sorting and correlating %s, writing %s",
			took.reading.Round(time.Millisecond), took.correlating.Round(time.Millisecond), took.writing.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
}

// tuneGC caps replay's heap with a soft memory limit, so that peak RSS
// stays under 1 GiB while the live heap is small. It leaves GOGC at its
// default: measured on the 1,000,500-record bench, a lazier collector
// (GOGC=400) is slower, not faster, as the extra heap is fresh memory the
// kernel must fault in and the runtime must clear (0.5 s more wall time,
// twice the RSS). GOMEMLIMIT, when set, wins. It returns a stop function.
//
// A fixed limit under the live heap makes the collector run back to back:
// a replay whose rules raise hundreds of thousands of incidents (a noisy
// Sigma rule over a year of CloudTrail) took 142 s instead of about 20.
// So the limit follows the live heap up, to twice what the last cycle
// kept, which is what GOGC=100 gives.
func tuneGC() (stop func()) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	const floor = 700 << 20
	debug.SetMemoryLimit(floor)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
		limit := int64(floor)
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			rtmetrics.Read(sample)
			if sample[0].Value.Kind() != rtmetrics.KindUint64 {
				return
			}
			if want := gcLimit(int64(sample[0].Value.Uint64()), floor); want != limit {
				limit = want
				debug.SetMemoryLimit(limit)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// gcLimit is the memory limit for a live heap: floor, or twice the live
// heap once that passes half the floor.
func gcLimit(live, floor int64) int64 {
	return max(floor, 2*live)
}

// byteSize is a flag of bytes with an optional unit: 512MiB, 1GiB, 64MB.
type byteSize int64

func (b *byteSize) String() string { return fmt.Sprint(int64(*b)) }

func (b *byteSize) Set(s string) error {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("want a size such as 256MiB or 1GiB")
	}
	*b = byteSize(n * mult)
	return nil
}

// filteredWhy splits the records the reader's filter rejected into
// those outside the run's time range and those no rule can match.
func filteredWhy(rs archive.Stats) (outOfRange, irrelevant int64) {
	var all int64
	for _, n := range rs.Filtered {
		all += n
	}
	return rs.OutOfRange, all - rs.OutOfRange
}
