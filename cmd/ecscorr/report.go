package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/report"
	"github.com/ecscorr/ecscorr/report/cases"
	"github.com/ecscorr/ecscorr/sinks/file"
	"github.com/ecscorr/ecscorr/sources/archive"
)

// formatCases is `replay --format cases`: one attack case per line (JSON).
const formatCases = "cases"

// taskDefs collects task ARN → task definition ARN from the events read
// (ECS task state changes, GuardDuty findings, RunTask, Container
// Insights), so that cases link a task to its task definition's drift.
type taskDefs struct{ m sync.Map }

func (t *taskDefs) observe(ev *pipeline.Event) {
	if ev.Entity.TaskARN == "" || ev.Entity.TaskDefinitionARN == "" {
		return
	}
	if _, ok := t.m.Load(ev.Entity.TaskARN); !ok {
		t.m.LoadOrStore(ev.Entity.TaskARN, ev.Entity.TaskDefinitionARN)
	}
}

func (t *taskDefs) snapshot() map[string]string {
	out := map[string]string{}
	t.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(string)
		return true
	})
	return out
}

// newReplaySink is replay's output: the file sink's jsonl as it is, and
// for table and cases the incidents grouped into cases first.
func newReplaySink(path, format string, wide bool, explain explainFunc, stdout io.Writer, o func() cases.Options) (pipeline.Sink, error) {
	if format == string(file.JSONL) && explain == nil {
		return file.Create(path, file.JSONL, pipeline.SinkFinal, stdout)
	}
	s := &casesSink{format: format, wide: wide, explain: explain, w: stdout, opts: o}
	if path != "" && path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("creating %s: %w", path, err)
		}
		s.f, s.w = f, f
	}
	return s, nil
}

// casesSink writes the final incidents as cases. Its name is the file
// sink's: the outbox of a kept --state is the same whatever the format.
type casesSink struct {
	format  string
	wide    bool        // --wide
	explain explainFunc // --explain: nil, or how to explain the incidents
	w       io.Writer
	f       *os.File
	opts    func() cases.Options
}

func (s *casesSink) Name() string            { return "file" }
func (s *casesSink) Mode() pipeline.SinkMode { return pipeline.SinkFinal }

func (s *casesSink) Deliver(ctx context.Context, incs []pipeline.Incident) error {
	w := bufio.NewWriterSize(s.w, 64<<10)
	var why func(pipeline.Incident) []string
	if s.explain != nil {
		var err error
		if why, err = s.explain(ctx, incs); err != nil {
			return err
		}
	}
	var err error
	switch s.format {
	case string(file.JSONL): // with --explain
		err = writeExplainedJSONL(w, incs, why)
	case formatCases:
		err = writeCasesJSONL(w, cases.Build(incs, s.opts()))
	default:
		err = writeCasesTable(w, cases.Build(incs, s.opts()), incs, file.TableOptions{Wide: s.wide, Explain: why})
	}
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing incidents: %w", err)
	}
	if s.f != nil {
		if fi, err := s.f.Stat(); err == nil && fi.Mode().IsRegular() {
			if err := s.f.Sync(); err != nil {
				return fmt.Errorf("writing incidents: %w", err)
			}
		}
	}
	return nil
}

func (s *casesSink) Close(context.Context) error {
	if s.f == nil {
		return nil
	}
	f := s.f
	s.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing incidents file: %w", err)
	}
	return nil
}

func writeCasesJSONL(w io.Writer, cs []cases.Case) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range cs {
		if err := enc.Encode(&cs[i]); err != nil {
			return fmt.Errorf("encoding case %s: %w", cs[i].ID, err)
		}
	}
	return nil
}

// writeCasesTable writes the incident table grouped by case: each case
// line (severity, id, subject, span, tactics), then its incidents in the
// case's order (its storyline), each as the table renders it.
func writeCasesTable(w io.Writer, cs []cases.Case, incs []pipeline.Incident, o file.TableOptions) error {
	if len(incs) == 0 {
		return file.WriteTableOpts(w, incs, o)
	}
	byID := make(map[string]pipeline.Incident, len(incs))
	for _, inc := range incs {
		byID[inc.ID] = inc
	}
	var ordered []pipeline.Incident
	for _, c := range cs {
		for _, m := range c.Incidents {
			ordered = append(ordered, byID[m.ID])
		}
	}
	o.Keep = true
	o.Width = file.TableWidth - 2 // rows are indented under their case
	head, rows, _ := file.TableRows(ordered, o)
	var b strings.Builder
	fmt.Fprintf(&b, "%d cases, %d incidents\n\n", len(cs), len(incs))
	b.WriteString("  " + head + "\n")
	row := 0
	for i, c := range cs {
		if i > 0 {
			b.WriteString("\n")
		}
		width := 0
		if !o.Wide {
			width = file.TableWidth
		}
		b.WriteString(caseLine(c, width) + "\n")
		for range c.Incidents {
			b.WriteString("  " + strings.ReplaceAll(rows[row], "\n", "\n  ") + "\n")
			row++
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// caseLine is a case's header in the table: severity, id, span, incident
// count and tactics, then its subject on the next line; with width > 0
// each line is shortened in the middle to fit.
func caseLine(c cases.Case, width int) string {
	span := c.FirstSeen.UTC().Format("2006-01-02 15:04:05") + " .. "
	if c.LastSeen.UTC().Format(time.DateOnly) == c.FirstSeen.UTC().Format(time.DateOnly) {
		span += c.LastSeen.UTC().Format("15:04:05")
	} else {
		span += c.LastSeen.UTC().Format("2006-01-02 15:04:05")
	}
	tactics := "-"
	if len(c.Tactics) > 0 {
		tactics = strings.Join(c.Tactics, ",")
	}
	n := "1 incident"
	if len(c.Incidents) != 1 {
		n = fmt.Sprintf("%d incidents", len(c.Incidents))
	}
	head := fmt.Sprintf("CASE %s %s  %s  %s  ", strings.ToUpper(c.Severity.String()), c.ID, span, n)
	subject := "     " + c.Subject
	if width > 0 {
		tactics = file.ShortenMiddle(tactics, max(width-len(head)-2, 8))
		subject = file.ShortenMiddle(subject, width)
	}
	return head + "[" + tactics + "]\n" + subject
}

// replayReport is the --report file, created before the run so that an
// unwritable path stops it before it has done anything.
type replayReport struct {
	path string
	f    *os.File
}

func createReport(path string) (*replayReport, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating report: %w", err)
	}
	return &replayReport{path: path, f: f}, nil
}

func (r *replayReport) Close() {
	if r != nil && r.f != nil {
		r.f.Close()
	}
}

// replayInputs is what replay counted, for the report's overview.
type replayInputs struct {
	paths                  []string
	reader                 archive.Stats
	archive                pipeline.ArchiveStats
	outOfRange, irrelevant int64
	run                    pipeline.RunStats
}

// write renders the report of a replay: the incidents, their cases, and
// the evidence read again from the inputs (position and raw record).
func (r *replayReport) write(ctx context.Context, in replayInputs, own map[string]bool, incs []pipeline.Incident, res *pipeline.Resolver, co cases.Options, log *slog.Logger) error {
	if r == nil {
		return nil
	}
	ev, err := readEvidence(ctx, in.paths, own, incs, res, log)
	if err != nil {
		return err
	}
	ri := &report.Inputs{
		Paths: in.paths, Files: int64(in.reader.Files), Records: in.reader.Read,
		SkippedRecs: map[string]int64{}, SkippedFiles: map[string]int64{},
		OutOfRange: in.archive.OutOfRange + in.outOfRange, Correlated: in.run.Applied,
		Irrelevant: in.archive.Dropped + in.irrelevant, First: in.run.First, Last: in.run.Last,
	}
	for c, n := range in.reader.Skipped {
		if archive.IsFileClass(c) {
			ri.SkippedFiles[c] = n
		} else {
			ri.SkippedRecs[c] = n
		}
	}
	for _, n := range in.run.Unresolved {
		ri.Unresolved += n
	}
	d := report.Data{
		Source:    "replay of " + strings.Join(in.paths, " "),
		Generated: time.Now(), Version: version,
		Inputs: ri, Incidents: incs, CaseOptions: co, Events: ev,
	}
	w := bufio.NewWriterSize(r.f, 64<<10)
	if err := report.Write(w, d); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing report %s: %w", r.path, err)
	}
	f := r.f
	r.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing report %s: %w", r.path, err)
	}
	return nil
}

// readEvidence reads paths again for the evidence of incs, keeping only
// those events (their position, record and entity): incidents keep
// references, not records, and holding every record through the run
// would double replay's memory.
func readEvidence(ctx context.Context, paths []string, own map[string]bool, incs []pipeline.Incident, res *pipeline.Resolver, log *slog.Logger) (map[report.EventKey]report.Event, error) {
	want := report.EvidenceKeys(incs)
	out := map[report.EventKey]report.Event{}
	if len(want) == 0 || len(paths) == 0 {
		return out, nil
	}
	types := map[string]bool{}
	var first, last time.Time
	note := func(e pipeline.EventRef) {
		types[string(e.Source)+"\x00"+e.Type] = true
		if first.IsZero() || e.Time.Before(first) {
			first = e.Time
		}
		if e.Time.After(last) {
			last = e.Time
		}
	}
	for i := range incs {
		for _, e := range incs[i].Events {
			note(e)
		}
		if r := incs[i].ResolvedBy; r != nil {
			note(*r)
		}
	}
	reader := archive.NewReader(archive.Options{Logger: log, Filter: pipeline.KeepIf(func(src pipeline.Source, typ string, t time.Time, _ pipeline.RawRecord) bool {
		return types[string(src)+"\x00"+typ] && !t.Before(first) && !t.After(last)
	})})
	var mu sync.Mutex
	err := readParallel(ctx, reader, paths, own, func(ev *pipeline.Event) error {
		k := report.EventKey{Source: ev.Source, ID: ev.ID}
		if !want[k] {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := out[k]; !ok {
			out[k] = report.Event{Pos: ev.Pos, Raw: bytes.Clone(ev.Raw), Entity: ev.Entity}
		}
		return nil
	}, func(archive.RecordError) {})
	if err != nil {
		return nil, fmt.Errorf("reading the evidence again: %w", err)
	}
	// Falco alerts name a container; the resolver of the run knows its task.
	if res != nil {
		for k, e := range out {
			if e.Entity.TaskARN == "" && e.Entity.ContainerID != "" {
				ev := pipeline.Event{Source: k.Source, ID: k.ID, Entity: e.Entity}
				if err := res.Resolve(ctx, &ev); err == nil {
					e.Entity = ev.Entity
					out[k] = e
				}
			}
		}
	}
	return out, nil
}

// cmdReport is `ecscorr report [--out FILE.html] INCIDENTS.jsonl`.
func cmdReport(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the HTML report to this file (default: stdout)")
	window := fs.Duration("case-window", cases.DefaultWindow, "how far apart in time linked incidents may be to form one case")
	title := fs.String("title", "", "title of the report")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: ecscorr report [flags] INCIDENTS.jsonl\n\nRenders incidents (as replay --format jsonl or the jsonl sink writes them; - is stdin) as one self-contained HTML file.")
		fs.PrintDefaults()
	}
	paths, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(paths) != 1 {
		fmt.Fprintln(stderr, "ecscorr report: want one incidents file")
		fs.Usage()
		return 2
	}
	var r io.Reader = os.Stdin
	name := "stdin"
	if paths[0] != "-" {
		f, err := os.Open(paths[0])
		if err != nil {
			fmt.Fprintf(stderr, "ecscorr report: %v\n", err)
			return 1
		}
		defer f.Close()
		r, name = f, filepath.Base(paths[0])
	}
	incs, err := report.ReadJSONL(r)
	if err != nil {
		fmt.Fprintf(stderr, "ecscorr report: %s: %v\n", paths[0], err)
		return 1
	}
	d := report.Data{Title: *title, Source: "incidents from " + name, Generated: time.Now(), Version: version,
		Incidents: incs, CaseOptions: cases.Options{Window: *window}}
	var w io.Writer = stdout
	var f *os.File
	if *out != "" && *out != "-" {
		f, err = os.Create(*out)
		if err != nil {
			fmt.Fprintf(stderr, "ecscorr report: %v\n", err)
			return 1
		}
		w = f
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	err = report.Write(bw, d)
	if err == nil {
		err = bw.Flush()
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "ecscorr report: %v\n", err)
		return 1
	}
	return 0
}

// explainFunc explains a run's incidents (see explainer).
type explainFunc func(ctx context.Context, incs []pipeline.Incident) (func(pipeline.Incident) []string, error)

// writeExplainedJSONL writes the jsonl output with each incident's
// explanation as an "explain" member (a list of lines).
func writeExplainedJSONL(w io.Writer, incs []pipeline.Incident, why func(pipeline.Incident) []string) error {
	for _, inc := range incs {
		line, err := file.Record(&inc)
		if err != nil {
			return err
		}
		ex, err := json.Marshal(why(inc))
		if err != nil {
			return err
		}
		if len(line) < 2 || line[len(line)-1] != '}' {
			return fmt.Errorf("incident %s: unexpected JSON", inc.ID)
		}
		if _, err := fmt.Fprintf(w, "%s,\"explain\":%s}\n", line[:len(line)-1], ex); err != nil {
			return err
		}
	}
	return nil
}
