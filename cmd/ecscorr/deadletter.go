package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// deadLetters is where `run` puts what it skips: every bad record and
// every event not applied for a reason other than a plain redelivery is
// counted, logged (the first few per input and reason, then one in a
// thousand) and, with dead_letter: set, appended to that JSON-lines file
// with its position and reason.
type deadLetters struct {
	mu     sync.Mutex
	f      *os.File
	enc    *json.Encoder
	log    *slog.Logger
	m      *metrics
	counts map[string]int
}

func newDeadLetters(path string, log *slog.Logger, m *metrics) (*deadLetters, error) {
	d := &deadLetters{log: log, m: m, counts: map[string]int{}}
	if path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, fmt.Errorf("dead_letter: %w", err)
		}
		d.f, d.enc = f, json.NewEncoder(f)
	}
	return d, nil
}

func (d *deadLetters) Close() error {
	if d.f == nil {
		return nil
	}
	return d.f.Close()
}

// shouldLog reports whether the n-th problem of a kind is logged.
func (d *deadLetters) shouldLog(kind string) bool {
	d.counts[kind]++
	n := d.counts[kind]
	return n <= 10 || n%1000 == 0
}

// bad is the format.RecordError callback of one input.
func (d *deadLetters) bad(input string) func(format.RecordError) {
	return func(e format.RecordError) {
		reason := e.Class
		if reason == "" {
			reason = "other"
		}
		d.m.parseErrors.WithLabelValues(input, reason).Inc()
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.shouldLog(input + "\x00" + reason) {
			d.log.Warn("skipped record", "input", input, "pos", e.Pos.String(), "source", string(e.Source), "reason", e.Reason, "count", d.counts[input+"\x00"+reason])
		}
		d.write(map[string]any{"time": time.Now().UTC(), "kind": "record", "input": input, "pos": e.Pos, "source": e.Source, "reason": e.Reason, "sample": string(e.Sample)})
	}
}

// skipped is the Runner's OnSkip: a redelivery is only counted; a
// conflicting reuse of an id and an event too late for any rule are
// dead-lettered with both positions.
func (d *deadLetters) skipped(reason pipeline.SkipReason, ev *pipeline.Event, first *pipeline.Position) {
	if reason == pipeline.SkipDuplicate {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	args := []any{"pos", ev.Pos.String(), "source", string(ev.Source), "id", ev.ID, "reason", string(reason)}
	rec := map[string]any{"time": time.Now().UTC(), "kind": string(reason), "pos": ev.Pos, "source": ev.Source, "id": ev.ID, "event_time": ev.Time.UTC(), "reason": string(reason)}
	if first != nil {
		rec["first"] = first
		args = append(args, "first", first.String())
	}
	if len(ev.Raw) > 0 {
		rec["sample"] = string(ev.Raw)
	}
	if d.shouldLog(string(reason)) {
		d.log.Warn("skipped event", args...)
	}
	d.write(rec)
}

func (d *deadLetters) write(rec map[string]any) {
	kind, _ := rec["kind"].(string)
	d.m.deadLetters.WithLabelValues(kind).Inc()
	if d.enc != nil {
		if err := d.enc.Encode(rec); err != nil && d.shouldLog("dead-letter-write") {
			d.log.Error("writing a dead letter", "err", err)
		}
	}
}
