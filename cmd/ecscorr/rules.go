package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/ruletest"
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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: ecscorr rules check [flags] PATH...\n\n"+
			"Checks rule files and folders, loaded together, and reports every error with file:line:col.\n"+
			"The PATH builtin is the embedded pack (a folder named builtin is ./builtin); with no PATH,\n"+
			"checks the pack alone. Example: ecscorr rules check builtin my-rules/")
		fs.PrintDefaults()
	}
	paths, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: ecscorr rules test [-run REGEXP] [-v] FILE...\n\n"+
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
	res, err := ruletest.RunFiles(ctx, paths, ruletest.Options{Run: *run})
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
