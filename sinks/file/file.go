// Package file is the sink that writes incidents to a file or stdout: JSON
// lines (one incident per line, the record every other sink is fed) or a
// table a person reads. As a replay report it gets the final state of every
// incident once, at the end (pipeline.SinkFinal); as a stream it appends
// every change as it commits (pipeline.SinkStream).
package file

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"

	json "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/pipeline"
)

// Format is how incidents are written.
type Format string

const (
	JSONL Format = "jsonl"
	Table Format = "table"
)

// ParseFormat accepts a --format value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case JSONL, Table:
		return Format(s), nil
	}
	return "", fmt.Errorf("format must be jsonl or table, not %q", s)
}

// Sink writes incidents to one writer.
type Sink struct {
	name   string
	mode   pipeline.SinkMode
	format Format
	w      io.Writer
	f      *os.File // nil for a writer the caller owns (stdout)
}

// Create opens path for writing up front, so that an unwritable
// destination stops a run before it has done anything; "" or "-" means
// stdout. A report (SinkFinal) replaces the file; a stream appends to it,
// so that a restart keeps what was delivered before.
func Create(path string, format Format, mode pipeline.SinkMode, stdout io.Writer) (*Sink, error) {
	if mode == pipeline.SinkStream && format != JSONL {
		return nil, fmt.Errorf("a stream of incidents is written as jsonl, not %s", format)
	}
	s := &Sink{name: "file", mode: mode, format: format, w: stdout}
	if path != "" && path != "-" {
		flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if mode == pipeline.SinkStream {
			flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
		}
		f, err := os.OpenFile(path, flags, 0o644)
		if err != nil {
			return nil, fmt.Errorf("creating %s: %w", path, err)
		}
		s.f, s.w = f, f
	}
	return s, nil
}

func (s *Sink) Name() string            { return s.name }
func (s *Sink) Mode() pipeline.SinkMode { return s.mode }

// Deliver writes incs and flushes them to the file (and, for a file, to
// disk: the outbox is cleared after this returns).
func (s *Sink) Deliver(_ context.Context, incs []pipeline.Incident) error {
	w := bufio.NewWriterSize(s.w, 64<<10)
	var err error
	if s.format == Table {
		err = WriteTable(w, incs)
	} else {
		err = WriteJSONL(w, incs)
	}
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing incidents: %w", err)
	}
	if s.f != nil {
		if err := s.f.Sync(); err != nil && !isNotSyncable(s.f) {
			return fmt.Errorf("writing incidents: %w", err)
		}
	}
	return nil
}

// isNotSyncable is true for /dev/null, pipes and terminals.
func isNotSyncable(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && !fi.Mode().IsRegular()
}

// Close closes the file.
func (s *Sink) Close(context.Context) error {
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

// WriteJSONL writes one incident per line. goccy's encoder writes what
// encoding/json does, byte for byte (TestJSONLIsEncodingJSON), three times
// faster: a replay's report may hold hundreds of thousands of incidents,
// so chunks of them are encoded on every core and written in order.
func WriteJSONL(w io.Writer, incs []pipeline.Incident) error {
	const chunk = 1024
	workers := min(runtime.GOMAXPROCS(0), (len(incs)+chunk-1)/chunk)
	if workers <= 1 {
		return encodeJSONL(w, incs)
	}
	bufs := make([]bytes.Buffer, workers)
	errs := make([]error, workers)
	for start := 0; start < len(incs); start += workers * chunk {
		var wg sync.WaitGroup
		n := 0
		for i := range workers {
			lo := start + i*chunk
			if lo >= len(incs) {
				break
			}
			hi := min(lo+chunk, len(incs))
			n++
			wg.Go(func() {
				bufs[i].Reset()
				errs[i] = encodeJSONL(&bufs[i], incs[lo:hi])
			})
		}
		wg.Wait()
		for i := range n {
			// What precedes a failed incident is written, as one encoder would.
			if _, err := w.Write(bufs[i].Bytes()); err != nil {
				return err
			}
			if errs[i] != nil {
				return errs[i]
			}
		}
	}
	return nil
}

func encodeJSONL(w io.Writer, incs []pipeline.Incident) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range incs {
		if err := enc.Encode(&incs[i]); err != nil {
			return fmt.Errorf("encoding incident %s: %w", incs[i].ID, err)
		}
	}
	return nil
}

// Record is inc's JSONL line without its newline: the record the other
// sinks send (an EventBridge event's detail, a Kafka record's value).
func Record(inc *pipeline.Incident) ([]byte, error) {
	var b bytes.Buffer
	if err := WriteJSONL(&b, []pipeline.Incident{*inc}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// WriteTable writes the 120-column table of incs, sorted by severity then
// first seen (see TableRows).
func WriteTable(w io.Writer, incs []pipeline.Incident) error {
	return WriteTableOpts(w, incs, TableOptions{})
}

// KeyString renders an incident key briefly: the task, the task
// definition, or name=value pairs.
func KeyString(k map[string]string) string {
	if td := k["task_definition_arn"]; td != "" && k["task_arn"] == "" {
		if i := strings.LastIndex(td, "task-definition/"); i >= 0 {
			return "taskdef " + td[i+len("task-definition/"):]
		}
	}
	if arn := k["task_arn"]; arn != "" {
		if t, ok := pipeline.ParseTaskARN(arn); ok {
			if t.Cluster != "" {
				return "task " + t.Cluster + "/" + t.ID
			}
			return "task " + t.ID
		}
		return arn
	}
	names := make([]string, 0, len(k))
	for n := range k {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		if k[n] != "" {
			parts = append(parts, n+"="+k[n])
		}
	}
	return strings.Join(parts, " ")
}
