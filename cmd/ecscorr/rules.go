package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/ruletest"
	"github.com/ecscorr/ecscorr/rules"
)

func cmdRulesCheck(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	builtin := fs.Bool("builtin", false, "also load the embedded built-in pack (as replay does without --rules)")
	maxRet := fs.Duration("max-retention", 7*24*time.Hour, "longest window a rule may keep state for")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: ecscorr rules check [flags] PATH...\n\nChecks rule files and folders and reports every error with file:line:col. With no PATH, checks the built-in pack.")
		fs.PrintDefaults()
	}
	paths, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	opts := rule.LoadOptions{MaxRetention: *maxRet, Now: time.Now()}
	var (
		set   *rule.Set
		diags rule.Diagnostics
	)
	if len(paths) == 0 {
		set, diags = rule.LoadFS(rules.Builtin, opts)
	} else {
		files := make([]rule.NamedSource, 0)
		if *builtin {
			b, err := rule.ReadFS(rules.Builtin)
			if err != nil {
				fmt.Fprintf(stderr, "ecscorr rules check: reading built-in pack: %v\n", err)
				return 1
			}
			files = append(files, b...)
		}
		more, err := rule.ReadPaths(paths)
		if err != nil {
			fmt.Fprintf(stderr, "ecscorr rules check: %v\n", err)
			return 1
		}
		set, diags = rule.Load(append(files, more...), opts)
	}
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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: ecscorr rules test FILE...\n\nRuns rule unit tests (*_test.yaml, see docs/rules-testing.md); exits 1 when any fails.")
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
	res, err := ruletest.RunFiles(ctx, paths, ruletest.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "ecscorr rules test: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, res.Report())
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
