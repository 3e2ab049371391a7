package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/ruletest"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/rules"
)

// rulesFlagHelp describes a --rules value, for every command that takes it.
const rulesFlagHelp = "rule file or folder, or builtin for the embedded pack (repeatable; default: builtin; a folder named builtin is ./builtin)"

// warnBuiltinFolder warns when `builtin` is given while the current folder
// has a folder of that name: the word is the embedded pack, never it.
func warnBuiltinFolder(paths []string, stderr io.Writer) {
	if !slices.Contains(paths, rule.BuiltinName) {
		return
	}
	if st, err := os.Stat(rule.BuiltinName); err == nil && st.IsDir() {
		fmt.Fprintf(stderr, "ecscorr: warning: builtin is the embedded pack, not the folder builtin here; give ./builtin to load that folder\n")
	}
}

func cmdRulesCheck(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	builtin := fs.Bool("builtin", false, "also load the embedded built-in pack (the same as the PATH builtin)")
	maxRet := fs.Duration("max-retention", 7*24*time.Hour, "longest window a rule may keep state for")
	var more multiFlag
	fs.Var(&more, "rules", "a rule file or folder (ecscorr or Sigma rules) to check, as a PATH is, for the command line replay and run take (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: ecscorr rules check [flags] PATH...\n\n"+
			"Checks rule files and folders (ecscorr and Sigma rules), loaded together, and reports every\n"+
			"error with file:line:col. The PATH builtin is the embedded pack (a folder named builtin is\n"+
			"./builtin); with no PATH, checks the pack alone. Example: ecscorr rules check builtin my-rules/\n"+
			"(or, as replay takes them: ecscorr rules check --rules builtin --rules my-rules/)")
		fs.PrintDefaults()
	}
	paths, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	paths = append(append([]string(nil), more...), paths...)
	if *builtin {
		paths = append([]string{rule.BuiltinName}, paths...)
	}
	warnBuiltinFolder(paths, stderr)
	set, diags := rule.LoadPaths(paths, rule.LoadOptions{MaxRetention: *maxRet, Now: time.Now(), Builtin: rules.Builtin})
	if errs := printDiags(stderr, diags, true); errs > 0 {
		fmt.Fprintf(stderr, "%d error(s)\n", errs)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d signals, %d rules\n", len(set.Signals), len(set.Rules))
	return 0
}

func cmdRulesTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	run := fs.String("run", "", "run only the test cases whose name matches this regular `regexp` (as go test -run)")
	verbose := fs.Bool("v", false, "print every test case with its result and, for passing ones, the incidents each eval_time saw")
	var more multiFlag
	fs.Var(&more, "rules", "a rule file or folder (ecscorr or Sigma rules; builtin is the pack) loaded with every test file's rule_files, which may then be empty (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: ecscorr rules test [-run REGEXP] [-v] [--rules PATH]... FILE...\n\n"+
			"Runs rule unit tests (*_test.yaml, see docs/rules-testing.md); exits 1 when any fails.\n"+
			"In a test's rule_files, builtin is the embedded pack (a folder named builtin is ./builtin).")
		fs.PrintDefaults()
	}
	paths, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(paths) == 0 {
		fs.Usage()
		return 2
	}
	res, err := ruletest.RunFiles(ctx, paths, ruletest.Options{Run: *run, Rules: more})
	if err != nil {
		fmt.Fprintf(stderr, "ecscorr rules test: %v\n", err)
		return 1
	}
	if *verbose {
		fmt.Fprint(stdout, res.VerboseReport())
	} else {
		fmt.Fprint(stdout, res.Report())
	}
	if !res.OK() {
		return 1
	}
	return 0
}

// printDiags prints rule diagnostics (notes only when asked: they are for
// rule authors, not for every replay) and returns the number of errors.
func printDiags(w io.Writer, diags rule.Diagnostics, notes bool) int {
	errs := 0
	for _, d := range diags {
		if d.Severity == rule.SevNote && !notes {
			continue
		}
		fmt.Fprintln(w, d.String())
		if d.Severity == rule.SevError {
			errs++
		}
	}
	return errs
}

const rulesUsage = `Usage: ecscorr rules COMMAND [flags] ...

Commands:
  check [--builtin] [--max-retention D] PATH...
        check rule files and folders, loaded together; every error with file:line:col; exit 1 on any
  test [-run REGEXP] [-v] FILE...
        run rule unit tests (*_test.yaml, see docs/rules-testing.md); exit 1 when any fails
  list [--rules PATH]... [--format table|json]
        list the loaded rules: id, kind, severity, tags, sources and how many rule tests name each

The PATH builtin is the embedded pack (a folder named builtin is ./builtin).
Run "ecscorr rules COMMAND -h" for a command's flags.
`

// ruleInfo is one row of rules list.
type ruleInfo struct {
	ID       string   `json:"id"`
	Kind     string   `json:"kind"`
	Severity string   `json:"severity"`
	Tags     []string `json:"tags"`
	Mitre    []string `json:"mitre"`
	Sources  []string `json:"sources"`
	Tests    int      `json:"tests"`
	Enabled  bool     `json:"enabled"`
	File     string   `json:"file"`
}

func cmdRulesList(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths multiFlag
	fs.Var(&paths, "rules", rulesFlagHelp)
	format := fs.String("format", "table", "output `format`: table or json (one array)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: ecscorr rules list [--rules PATH]... [--format table|json]\n\n"+
			"Lists the rules that --rules loads (default: the built-in pack): id, kind, severity, tags,\n"+
			"the sources its signals read, and the number of test cases in the *_test.yaml files of those\n"+
			"paths (the pack's own for builtin) that expect incidents of it. Disabled rules are marked.")
		fs.PrintDefaults()
	}
	rest, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "ecscorr rules list: unexpected argument %q (give rule paths with --rules)\n", rest[0])
		return 2
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "ecscorr rules list: --format must be table or json, not %q\n", *format)
		return 2
	}
	warnBuiltinFolder(paths, stderr)
	set, diags := rule.LoadPaths(paths, rule.LoadOptions{Now: time.Now(), Builtin: rules.Builtin})
	if errs := printDiags(stderr, diags, false); errs > 0 {
		fmt.Fprintf(stderr, "%d error(s)\n", errs)
		return 1
	}
	tests, err := countRuleTests(paths)
	if err != nil {
		fmt.Fprintf(stderr, "ecscorr rules list: %v\n", err)
		return 1
	}
	var infos []ruleInfo
	for _, rs := range []struct {
		rules   []*rule.Rule
		enabled bool
	}{{set.Rules, true}, {set.Disabled, false}} {
		for _, r := range rs.rules {
			infos = append(infos, ruleInfo{ID: r.ID, Kind: r.Kind.String(), Severity: r.Severity.String(),
				Tags: nonNil(r.Tags), Mitre: nonNil(r.Mitre), Sources: ruleSources(r), Tests: tests[r.ID],
				Enabled: rs.enabled, File: r.Pos.File})
		}
	}
	slices.SortFunc(infos, func(a, b ruleInfo) int { return strings.Compare(a.ID, b.ID) })
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if infos == nil {
			infos = []ruleInfo{}
		}
		if err := enc.Encode(infos); err != nil {
			fmt.Fprintf(stderr, "ecscorr rules list: %v\n", err)
			return 1
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSEVERITY\tTAGS\tSOURCES\tTESTS")
	for _, in := range infos {
		id := in.ID
		if !in.Enabled {
			id += " (disabled)"
		}
		tags := strings.Join(append(slices.Clone(in.Tags), in.Mitre...), ",")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", id, in.Kind, in.Severity, dash(tags), dash(strings.Join(in.Sources, ",")), in.Tests)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "ecscorr rules list: %v\n", err)
		return 1
	}
	return 0
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ruleSources lists the sources of the signals a rule reads (steps,
// until, metric series and join, resolve), in pipeline.Sources order; a
// signal of any source makes it "any".
func ruleSources(r *rule.Rule) []string {
	var sigs []*rule.Signal
	switch {
	case r.Match != nil:
		sigs = append(sigs, r.Match.Signals...)
	case r.Threshold != nil:
		sigs = append(sigs, r.Threshold.Step.Signals...)
	case r.Sequence != nil:
		for _, st := range r.Sequence.Steps {
			sigs = append(sigs, st.Signals...)
		}
		sigs = append(sigs, r.Sequence.Until...)
	case r.Temporal != nil:
		for _, st := range r.Temporal.Signals {
			sigs = append(sigs, st.Signals...)
		}
	case r.Metric != nil:
		sigs = append(sigs, r.Metric.Series)
		if r.Metric.Join != nil {
			sigs = append(sigs, r.Metric.Join.Signals...)
		}
	}
	if r.Resolve != nil {
		sigs = append(sigs, r.Resolve.Signals...)
	}
	seen := map[pipeline.Source]bool{}
	anySource := false
	for _, s := range sigs {
		if s == nil {
			continue
		}
		if s.Source == "" {
			anySource = true
		}
		seen[s.Source] = true
	}
	var out []string
	for _, src := range pipeline.Sources {
		if seen[src] {
			out = append(out, string(src))
		}
	}
	if anySource {
		out = append(out, "any")
	}
	return nonNil(out)
}

// countRuleTests counts, per rule id, the test cases that expect incidents
// of it (an expect with rule: ID, or an expected incident with rule: ID)
// in the *_test.yaml files of paths: the pack's own for builtin (and for
// no path), those in a folder (recursively) or a test file given.
func countRuleTests(paths []string) (map[string]int, error) {
	if len(paths) == 0 {
		paths = []string{rule.BuiltinName}
	}
	counts := map[string]int{}
	add := func(name string, data []byte) error {
		f, err := ruletest.Parse(name, data)
		if err != nil {
			return fmt.Errorf("rule tests: %w", err)
		}
		for _, t := range f.Tests {
			named := map[string]bool{}
			for _, e := range t.Expect {
				if e.Rule != "" {
					named[e.Rule] = true
				}
				if e.Incidents != nil {
					for _, inc := range *e.Incidents {
						if inc.Rule != nil {
							named[*inc.Rule] = true
						}
					}
				}
			}
			for id := range named {
				counts[id]++
			}
		}
		return nil
	}
	isTest := func(name string) bool { return strings.HasSuffix(name, "_test.yaml") }
	for _, p := range paths {
		var err error
		if p == rule.BuiltinName {
			err = iofs.WalkDir(rules.Builtin, ".", func(name string, d iofs.DirEntry, err error) error {
				if err != nil || d.IsDir() || !isTest(name) {
					return err
				}
				data, err := iofs.ReadFile(rules.Builtin, name)
				if err != nil {
					return err
				}
				return add(path.Join("builtin", name), data)
			})
		} else {
			err = filepath.WalkDir(p, func(name string, d iofs.DirEntry, err error) error {
				if err != nil || d.IsDir() || !isTest(name) {
					return err
				}
				data, err := os.ReadFile(name)
				if err != nil {
					return err
				}
				return add(name, data)
			})
		}
		if err != nil {
			return nil, err
		}
	}
	return counts, nil
}
