package ruletest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// BuiltinName in rule_files stands for the embedded rule pack.
const BuiltinName = rule.BuiltinName

// Options configure a run.
type Options struct {
	// Builtin is the pack loaded for `builtin` (default rules.Builtin).
	Builtin fs.FS
	// Run, when set, is a regular expression (RE2, unanchored, as go test
	// -run): only the tests whose name it matches run.
	Run string
	// Rules are rule files and folders (relative to the working
	// directory, `builtin` for the pack) loaded with every test file's
	// rule_files (rules test --rules); a test file may then name none.
	Rules  []string
	Logger *slog.Logger
}

// Result is the outcome of RunFiles.
type Result struct {
	Files []FileResult
}

// FileResult is the outcome of one test file.
type FileResult struct {
	Path  string
	Tests []TestResult
}

// TestResult is the outcome of one test.
type TestResult struct {
	Name   string
	Passed bool
	// Failures are readable failure descriptions (diffs, input errors).
	Failures []string
	// Evals summarises, per expectation, the incidents that existed.
	Evals []EvalSummary
}

// EvalSummary counts the incidents compared at one eval_time.
type EvalSummary struct {
	EvalTime  time.Duration
	Rule      string // "" = all rules
	Incidents int
	Events    []int // evidence count per incident, in first-seen order
}

func (s EvalSummary) String() string {
	r := s.Rule
	if r == "" {
		r = "all rules"
	}
	return fmt.Sprintf("at %s %s: %d incident(s), events %v", formatOffset(s.EvalTime), r, s.Incidents, s.Events)
}

// Failed reports whether any test failed.
func (r Result) Failed() bool {
	for _, f := range r.Files {
		for _, t := range f.Tests {
			if !t.Passed {
				return true
			}
		}
	}
	return false
}

// Counts returns the number of passed and failed tests.
func (r Result) Counts() (passed, failed int) {
	for _, f := range r.Files {
		for _, t := range f.Tests {
			if t.Passed {
				passed++
			} else {
				failed++
			}
		}
	}
	return passed, failed
}

// Report renders the result for people: one line per test, failures with
// their diffs, and a final count.
func (r Result) Report() string { return r.report(false) }

// VerboseReport is Report plus, for every test, what each eval_time saw.
func (r Result) VerboseReport() string { return r.report(true) }

func (r Result) report(verbose bool) string {
	var b strings.Builder
	for _, f := range r.Files {
		fmt.Fprintf(&b, "%s\n", f.Path)
		for _, t := range f.Tests {
			if t.Passed {
				fmt.Fprintf(&b, "  ok    %s\n", t.Name)
				if verbose {
					for _, e := range t.Evals {
						fmt.Fprintf(&b, "        %s\n", e)
					}
				}
				continue
			}
			fmt.Fprintf(&b, "  FAIL  %s\n", t.Name)
			for _, msg := range t.Failures {
				for _, l := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
					fmt.Fprintf(&b, "        %s\n", l)
				}
			}
		}
	}
	p, fl := r.Counts()
	if fl > 0 {
		fmt.Fprintf(&b, "FAIL: %d of %d tests failed\n", fl, p+fl)
	} else {
		fmt.Fprintf(&b, "PASS: %d tests\n", p)
	}
	return b.String()
}

// RunFiles runs every test of the given test files. The error is for files
// that cannot be read, parsed or whose rules do not load; failing
// assertions are reported in the Result. Files with errors are skipped and
// the errors joined, so one bad file does not hide the others.
func RunFiles(ctx context.Context, paths []string, opts Options) (Result, error) {
	var res Result
	if _, err := compileRun(opts.Run); err != nil {
		return res, err
	}
	var errs []error
	for _, p := range paths {
		fr, err := RunFile(ctx, p, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res.Files = append(res.Files, fr)
	}
	return res, errors.Join(errs...)
}

// RunFile runs one test file.
func RunFile(ctx context.Context, path string, opts Options) (FileResult, error) {
	f, err := ParseFile(path)
	if err != nil {
		return FileResult{}, err
	}
	set, err := loadRules(f, opts)
	if err != nil {
		return FileResult{}, err
	}
	if err := checkRuleRefs(f, set); err != nil {
		return FileResult{}, err
	}
	run, err := compileRun(opts.Run)
	if err != nil {
		return FileResult{}, err
	}
	fr := FileResult{Path: path}
	for i := range f.Tests {
		t := &f.Tests[i]
		if run != nil && !run.MatchString(t.Name) {
			continue
		}
		fr.Tests = append(fr.Tests, runTest(ctx, f, t, set, opts))
	}
	return fr, nil
}

// loadRules loads the rule files named by the test file, relative to it,
// and opts.Rules, as every command loads rules (rule.LoadPaths): `builtin`
// is the pack.
func loadRules(f *File, opts Options) (*rule.Set, error) {
	if len(f.RuleFiles) == 0 && len(opts.Rules) == 0 {
		return nil, fmt.Errorf("%s: rule_files is empty (and no --rules given)", f.path)
	}
	dir := filepath.Dir(f.path)
	var paths []string
	for _, rf := range f.RuleFiles {
		if rf == BuiltinName {
			paths = append(paths, rf)
			continue
		}
		p := rf
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("%s: rule_files %q: %w", f.path, rf, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s: rule_files %q: no such file", f.path, rf)
		}
		for _, m := range matches {
			if m == BuiltinName { // a folder named builtin, not the pack
				m = "." + string(filepath.Separator) + m
			}
			paths = append(paths, m)
		}
	}
	for _, p := range opts.Rules {
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	set, diags := rule.LoadPaths(paths, rule.LoadOptions{Builtin: opts.Builtin})
	if diags.HasErrors() {
		return nil, fmt.Errorf("%s: rules do not load:\n%w", f.path, diags.Errors())
	}
	return set, nil
}

// runTest runs one test on a fresh engine; every problem becomes a failure.
func runTest(ctx context.Context, f *File, t *Test, set *rule.Set, opts Options) TestResult {
	tr := TestResult{Name: t.Name}
	fail := func(format string, args ...any) TestResult {
		tr.Failures = append(tr.Failures, fmt.Sprintf(format, args...))
		return tr
	}
	v := vars{"START": t.start.Format(time.RFC3339Nano)}
	maps.Copy(v, f.Vars)
	maps.Copy(v, t.Entities)
	maps.Copy(v, t.Vars)

	events, err := buildEvents(f, t, v)
	if err != nil {
		return fail("input: %v", err)
	}

	st, err := state.OpenInMemory()
	if err != nil {
		return fail("state: %v", err)
	}
	defer st.Close()
	eng, err := engine.New(ctx, set, st, engine.Options{Logger: opts.Logger})
	if err != nil {
		return fail("engine: %v", err)
	}
	defer eng.Close(ctx)

	resolver := pipeline.NewResolver(nil, 0)
	incidents := map[string]*pipeline.Incident{}
	collect := func(incs []pipeline.Incident) {
		for i := range incs {
			inc := incs[i]
			incidents[inc.ID] = &inc
		}
	}
	expects := slices.Clone(t.Expect)
	sort.SliceStable(expects, func(i, j int) bool { return expects[i].EvalTime < expects[j].EvalTime })

	var wm time.Time // zero: nothing advanced yet
	next := 0
	for _, ex := range expects {
		evalAt := t.start.Add(time.Duration(ex.EvalTime))
		for ; next < len(events) && !events[next].Time.After(evalAt); next++ {
			ev := events[next]
			// As in replay: everything strictly before this event has been
			// seen, so the watermark may move to just before it.
			if w := ev.Time.Add(-time.Nanosecond); wm.IsZero() || w.After(wm) {
				incs, err := eng.Advance(ctx, w)
				if err != nil {
					return fail("engine advance to %s: %v", w.Format(time.RFC3339Nano), err)
				}
				collect(incs)
				wm = w
			}
			if err := resolver.Resolve(ctx, ev, ev.Containers...); err != nil {
				return fail("resolve %s: %v", ev.Pos, err)
			}
			incs, err := eng.Process(ctx, ev)
			if err != nil {
				return fail("engine process %s (%s): %v", ev.ID, ev.Pos, err)
			}
			collect(incs)
		}
		if wm.IsZero() || evalAt.After(wm) {
			incs, err := eng.Advance(ctx, evalAt)
			if err != nil {
				return fail("engine advance to %s: %v", evalAt.Format(time.RFC3339Nano), err)
			}
			collect(incs)
			wm = evalAt
		}
		if msg, sum, err := check(f, t, &ex, incidents, v); err != nil {
			return fail("%s:%d: %v", f.path, ex.line, err)
		} else {
			tr.Evals = append(tr.Evals, sum)
			if msg != "" {
				tr.Failures = append(tr.Failures, msg)
			}
		}
	}
	if next < len(events) {
		tr.Failures = append(tr.Failures, fmt.Sprintf("%d input event(s) after the last eval_time were never processed (first: %s at %s)",
			len(events)-next, events[next].Pos, formatOffset(events[next].Time.Sub(t.start))))
	}
	tr.Passed = len(tr.Failures) == 0
	return tr
}

// check compares one expectation; msg is empty when it holds.
func check(f *File, t *Test, ex *Expect, all map[string]*pipeline.Incident, v vars) (string, EvalSummary, error) {
	var got []*pipeline.Incident
	for _, inc := range all {
		if ex.Rule == "" || inc.Rule == ex.Rule {
			got = append(got, inc)
		}
	}
	sortIncidents(got)
	sum := EvalSummary{EvalTime: time.Duration(ex.EvalTime), Rule: ex.Rule, Incidents: len(got)}
	for _, inc := range got {
		sum.Events = append(sum.Events, len(inc.Events))
	}
	exp := make([]ExpectedIncident, len(*ex.Incidents))
	for i, e := range *ex.Incidents {
		x, err := expandExpected(e, v)
		if err != nil {
			return "", sum, err
		}
		exp[i] = x
	}
	c := compareSet(exp, got, t.start)
	if c.ok() {
		return "", sum, nil
	}
	var b strings.Builder
	rule := ex.Rule
	if rule == "" {
		rule = "(all rules)"
	}
	fmt.Fprintf(&b, "%s:%d: eval_time %s, rule %s: expected %d incident(s), got %d\n",
		f.path, ex.line, ex.EvalTime, rule, len(exp), len(got))
	for _, p := range c.Pairs {
		fmt.Fprintf(&b, "  incident #%d differs:\n", p.Expected+1)
		for _, d := range p.Diffs {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	}
	for _, i := range c.Missing {
		fmt.Fprintf(&b, "  missing incident #%d: %s\n", i+1, describeExpected(&exp[i]))
	}
	for _, inc := range c.Unexpected {
		fmt.Fprintf(&b, "  unexpected incident: %s\n", describeIncident(inc, t.start))
	}
	return b.String(), sum, nil
}

// buildEvents renders and decodes every input of a test, in event-time order.
func buildEvents(f *File, t *Test, v vars) ([]*pipeline.Event, error) {
	fixtures := filepath.Dir(f.path)
	if f.FixturesDir != "" {
		fixtures = filepath.Join(fixtures, f.FixturesDir)
	}
	var recs []record
	for i := range t.InputEvents {
		in := &t.InputEvents[i]
		rs, err := buildRecords(in, fixtures, t.start, v)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", f.path, in.line, err)
		}
		recs = append(recs, rs...)
	}
	for i := range t.InputSeries {
		s := &t.InputSeries[i]
		rs, err := seriesRecords(s, t.start, v)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", f.path, s.line, err)
		}
		recs = append(recs, rs...)
	}
	var events []*pipeline.Event
	for _, r := range recs {
		pos := pipeline.Position{File: r.file, Line: r.line, Record: r.idx}
		var bad []string
		n := 0
		err := format.Decode(r.raw, pos, func(ev *pipeline.Event) error {
			n++
			ev.Seq = uint64(len(events))
			events = append(events, ev)
			return nil
		}, func(e format.RecordError) { bad = append(bad, e.Error()) })
		where := fmt.Sprintf("%s:%d (%s record %d)", f.path, r.line, r.file, r.idx)
		if err != nil {
			return nil, fmt.Errorf("%s: decode: %w", where, err)
		}
		if len(bad) > 0 {
			return nil, fmt.Errorf("%s: decode: %s", where, strings.Join(bad, "; "))
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: the decoder produced no event from this record", where)
		}
		for _, ev := range events[len(events)-n:] {
			if r.source != "" && string(ev.Source) != r.source {
				return nil, fmt.Errorf("%s: decoded as source %s, but the test says source: %s", where, ev.Source, r.source)
			}
		}
		if !r.at.IsZero() {
			for _, ev := range events[len(events)-n:] {
				if !ev.Time.Equal(r.at) {
					return nil, fmt.Errorf("%s: decoded event time %s, want %s (the time field set from `at` is not the one the decoder reads)",
						where, ev.Time.UTC().Format(time.RFC3339Nano), r.at.Format(time.RFC3339Nano))
				}
			}
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return pipeline.Less(events[i], events[j]) })
	return events, nil
}

// OK reports whether every test passed.
func (r Result) OK() bool { return !r.Failed() }
