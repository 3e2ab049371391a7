package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// cmdOutbox shows and re-drives what waits in a state's outbox:
//
//	ecscorr outbox list|retry|drop --state DIR [--sink NAME] [--dead]
//
// It opens the state directory itself, so the ecscorr that owns it must be
// stopped (Badger holds a lock on it).
func cmdOutbox(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "Usage: ecscorr outbox list|retry|drop --state DIR [--sink NAME] [--dead]")
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("outbox "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("state", "", "state directory (required)")
	sink := fs.String("sink", "", "only this sink's entries (default: every sink)")
	dead := fs.Bool("dead", false, "the dead-lettered entries (list, drop); retry always takes them")
	format := fs.String("format", "table", "list output: table or jsonl")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: ecscorr outbox list|retry|drop --state DIR [--sink NAME] [--dead]\n\n"+
			"list   shows the incidents waiting for a sink (or, with --dead, dead-lettered)\n"+
			"retry  makes dead-lettered incidents wait for delivery again, from their first attempt\n"+
			"drop   deletes waiting incidents (or, with --dead, dead-lettered ones)\n\n"+
			"The ecscorr that owns the state directory must be stopped.")
		fs.PrintDefaults()
	}
	rest, code, ok := parseArgs(fs, args[1:])
	if !ok {
		return code
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "ecscorr outbox: unexpected arguments %q\n", rest)
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "ecscorr outbox: --state DIR is required")
		return 2
	}
	if _, err := os.Stat(*dir); err != nil {
		fmt.Fprintf(stderr, "ecscorr outbox: %v\n", err)
		return 2
	}
	if verb != "list" && verb != "retry" && verb != "drop" {
		fmt.Fprintf(stderr, "ecscorr outbox: unknown command %q (want list, retry or drop)\n", verb)
		return 2
	}
	if *format != "table" && *format != "jsonl" {
		fmt.Fprintf(stderr, "ecscorr outbox: --format must be table or jsonl, not %q\n", *format)
		return 2
	}
	st, err := state.Open(*dir, state.Options{Logger: newLogger(stderr, slog.LevelError), GCInterval: -1})
	if err != nil {
		fmt.Fprintf(stderr, "ecscorr outbox: %v\n", err)
		return 1
	}
	defer st.Close()
	switch verb {
	case "list":
		es, err := pipeline.ListOutbox(st, *sink, *dead)
		if err != nil {
			fmt.Fprintf(stderr, "ecscorr outbox: %v\n", err)
			return 1
		}
		if *format == "jsonl" {
			enc := json.NewEncoder(stdout)
			enc.SetEscapeHTML(false)
			for i := range es {
				if err := enc.Encode(&es[i]); err != nil {
					fmt.Fprintf(stderr, "ecscorr outbox: %v\n", err)
					return 1
				}
			}
			return 0
		}
		writeOutboxTable(stdout, es, *dead)
	case "retry":
		n, err := pipeline.RetryOutbox(st, *sink)
		if err != nil {
			fmt.Fprintf(stderr, "ecscorr outbox: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%d dead-lettered incidents wait for delivery again\n", n)
	case "drop":
		n, err := pipeline.DropOutbox(st, *sink, *dead)
		if err != nil {
			fmt.Fprintf(stderr, "ecscorr outbox: %v\n", err)
			return 1
		}
		what := "waiting"
		if *dead {
			what = "dead-lettered"
		}
		fmt.Fprintf(stdout, "%d %s incidents dropped\n", n, what)
	}
	return 0
}

func writeOutboxTable(w io.Writer, es []pipeline.OutboxEntry, dead bool) {
	if len(es) == 0 {
		if dead {
			fmt.Fprintln(w, "no dead-lettered incidents")
		} else {
			fmt.Fprintln(w, "no incidents waiting")
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tSINK\tINCIDENT\tRULE\tSEVERITY\tENQUEUED (UTC)\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
	for _, e := range es {
		next := "-"
		if !e.NextAttempt.IsZero() && !e.Dead {
			next = e.NextAttempt.UTC().Format(time.DateTime)
		}
		msg := e.LastError
		if len(msg) > 80 {
			msg = msg[:77] + "..."
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.Seq, e.Sink, e.Incident.ID, e.Incident.Rule,
			strings.ToUpper(e.Incident.Severity.String()), e.Enqueued.UTC().Format(time.DateTime), e.Attempts, next, msg)
	}
	tw.Flush()
}
