// Command ecscorr correlates security signals from Amazon ECS workloads:
// GuardDuty findings, CloudTrail records, Container Insights metrics and
// Falco alerts, linked by ECS task in event-time windows.
//
// This is the one place where sources, the engine and sinks are wired
// together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/ecscorr/ecscorr/rules"
)

const usage = `ecscorr correlates ECS security signals (GuardDuty, CloudTrail, Container Insights, Falco).

Usage:
  ecscorr run --config FILE           run the live correlator (sources → state → sinks)
  ecscorr config check FILE           check a config and the rules it names; errors with file:line:col
  ecscorr replay [flags] PATH...      replay archived logs and print incidents
  ecscorr rules check PATH...         check rule files; every error with file:line:col
  ecscorr rules test FILE...          run rule unit tests (*_test.yaml)
  ecscorr rules list [--rules PATH]   list the rules: id, kind, severity, tags, sources, tests
  ecscorr report [flags] FILE.jsonl   render incidents as one self-contained HTML report
  ecscorr outbox list|retry|drop      show and re-drive incidents waiting for (or dead-lettered by) a sink
  ecscorr healthcheck [--url URL]     exit 0 if the running service's /healthz answers 200 (for container health checks)
  ecscorr version

Run "ecscorr <command> -h" or "ecscorr help <command>" for a command's flags.
`

// cmdHelp is "ecscorr help COMMAND": the command's usage on stdout, exit 0.
func cmdHelp(ctx context.Context, name string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch name {
	case "rules":
		fmt.Fprint(stdout, rulesUsage)
		return 0
	case "run", "replay", "outbox", "healthcheck":
		// The command's own -h, written where help was asked for.
		runIO(ctx, []string{name, "-h"}, stdin, stdout, stdout)
		return 0
	case "config":
		runIO(ctx, []string{"config", "check", "-h"}, stdin, stdout, stdout)
		return 0
	case "version":
		fmt.Fprintln(stdout, "Usage: ecscorr version\n\nPrints the version, the commit it was built from, the Go version and the built-in rule pack's version.")
		return 0
	}
	fmt.Fprintf(stderr, "ecscorr: unknown command %q\n\n%s", name, usage)
	return 2
}

// version and commit are stamped by the build (-ldflags "-X main.version=...
// -X main.commit=..."; see the Makefile and deploy/Dockerfile).
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit code: 0 success,
// 1 a failure found (failed rule test, broken rules), 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runIO(ctx, args, os.Stdin, stdout, stderr)
}

// runIO is run with standard input given (replay -).
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprint(stderr, usage)
			return 2
		}
		return cmdConfigCheck(ctx, args[2:], stdout, stderr)
	case "replay":
		return cmdReplay(ctx, args[1:], stdin, stdout, stderr)
	case "outbox":
		return cmdOutbox(ctx, args[1:], stdout, stderr)
	case "report":
		return cmdReport(ctx, args[1:], stdout, stderr)
	case "rules":
		if len(args) < 2 {
			fmt.Fprint(stderr, rulesUsage)
			return 2
		}
		switch args[1] {
		case "check":
			return cmdRulesCheck(ctx, args[2:], stdout, stderr)
		case "test":
			return cmdRulesTest(ctx, args[2:], stdout, stderr)
		case "list":
			return cmdRulesList(ctx, args[2:], stdout, stderr)
		case "-h", "-help", "--help", "help":
			fmt.Fprint(stdout, rulesUsage)
			return 0
		}
		fmt.Fprintf(stderr, "ecscorr: unknown rules command %q\n\n%s", args[1], rulesUsage)
		return 2
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "ecscorr %s (commit %s, %s, rule pack %s)\n", version, commit, runtime.Version(), rules.PackVersion())
		return 0
	case "healthcheck":
		return cmdHealthcheck(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		if len(args) > 1 && args[0] == "help" {
			return cmdHelp(ctx, args[1], stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "ecscorr: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// parseInterspersed parses flags that may come before or after the
// positional arguments ("replay testdata/demo --format table").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// parseArgs parses a command's flags (before or after its arguments). When
// it reports false the command returns code: 0 for -h, 2 for a bad flag.
func parseArgs(fs *flag.FlagSet, args []string) (paths []string, code int, ok bool) {
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		}
		return nil, 2, false
	}
	return paths, 0, true
}
