package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sources/archive"
)

// The status line and log lines share one writer: each step of a scripted
// sequence writes exactly these bytes to the (fake) terminal.
func TestProgressStatusLineSequence(t *testing.T) {
	var term bytes.Buffer
	s := &statusLine{w: &term, width: 20}
	for i, step := range []struct {
		do   func()
		want string
	}{
		{func() { fmt.Fprint(s, "before any status\n") }, "before any status\n"},
		{func() { s.Draw("reading: 1 MB") }, "\r\033[Kreading: 1 MB"},
		{func() { s.Draw("reading: 1 MB") }, ""}, // unchanged: not redrawn
		{func() { fmt.Fprint(s, "level=WARN msg=x\n") }, "\r\033[Klevel=WARN msg=x\nreading: 1 MB"},
		{func() { fmt.Fprint(s, "par") }, ""}, // held until its newline
		{func() { fmt.Fprint(s, "tial\nnext ") }, "\r\033[Kpartial\nreading: 1 MB"},
		{func() { s.Draw("reading: 2 MB of 82.0 MB (2%), 10 records") }, "\r\033[Kreading: 2 MB of 82"}, // cut to width-1
		{func() { fmt.Fprint(s, "line\n") }, "\r\033[Knext line\nreading: 2 MB of 82"},
		{func() { fmt.Fprint(s, "a\nb") }, "\r\033[Ka\nreading: 2 MB of 82"},
		{func() { s.Clear() }, "\r\033[Kb\n"},
		{func() { s.Clear() }, ""},
		{func() { fmt.Fprint(s, "summary\n") }, "summary\n"},
		{func() { s.Draw("x") }, "\r\033[Kx"},
	} {
		term.Reset()
		step.do()
		if got := term.String(); got != step.want {
			t.Errorf("step %d: wrote %q, want %q", i, got, step.want)
		}
	}
}

// Concurrent log lines and redraws: every log line reaches the terminal
// whole, at the start of a line (after a clear), never glued to the status.
func TestProgressStatusLineConcurrent(t *testing.T) {
	var term bytes.Buffer
	s := &statusLine{w: &term}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if g == 0 {
					s.Draw(fmt.Sprintf("reading: %d records", i))
				} else {
					fmt.Fprintf(s, "log g%d i%d end\n", g, i)
				}
			}
		}()
	}
	wg.Wait()
	s.Clear()
	out := term.String()
	n := 0
	for _, seg := range strings.Split(out, "\n") {
		// What a terminal shows of a segment: the text after the last clear.
		if i := strings.LastIndex(seg, clearLine); i >= 0 {
			seg = seg[i+len(clearLine):]
		}
		if seg == "" {
			continue
		}
		if !strings.HasPrefix(seg, "log g") || !strings.HasSuffix(seg, " end") || strings.Contains(seg, "reading") {
			t.Fatalf("a log line is mixed with the status: %q", seg)
		}
		n++
	}
	if n != 600 {
		t.Errorf("%d log lines reached the terminal, want 600", n)
	}
}

// The line for each phase, from scripted counters and a fake clock.
func TestProgressLinePhases(t *testing.T) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	filtered := int64(0)
	p := &replayProgress{start: start, totalBytes: 82e6, filtered: func() int64 { return filtered }}
	at := func(d time.Duration) time.Time { return start.Add(d) }
	if got, want := p.line(at(0)), "reading: 0.0 MB of 82.0 MB (0%), 0 records, 0 records/s"; got != want {
		t.Errorf("start:\n got %q\nwant %q", got, want)
	}
	p.bytes.Store(41e6)
	p.emitted.Store(5_000)
	filtered = 495_000 // CloudTrail the reader's filter rejected: read all the same
	if got, want := p.line(at(2500*time.Millisecond)), "reading: 41.0 MB of 82.0 MB (50%), 500000 records, 200000 records/s, ETA 3s"; got != want {
		t.Errorf("reading:\n got %q\nwant %q", got, want)
	}
	// The Runner's counts while reading (the sorter's) are not the line's.
	p.runner(pipeline.ArchiveStats{Read: map[pipeline.Source]int64{pipeline.SourceFalco: 9}}, pipeline.RunStats{Received: 9})
	if p.toCorr.Load() != 0 || p.delivering.Load() {
		t.Errorf("runner stats taken while reading")
	}
	p.bytes.Store(82e6)
	p.emitted.Store(10_000)
	filtered = 990_500
	p.readDone(at(5 * time.Second))
	as := pipeline.ArchiveStats{Read: map[pipeline.Source]int64{pipeline.SourceCloudTrail: 28_000, pipeline.SourceFalco: 2_000}, OutOfRange: 1_000, Dropped: 5_000}
	p.runner(as, pipeline.RunStats{Received: 12_000, Applied: 11_990})
	if got, want := p.line(at(5240*time.Millisecond)), "correlating: 12000 of 24000 events (50%), 50000 events/s, ETA 0s; 82.0 MB and 1000500 records read in 5s"; got != want {
		t.Errorf("correlating:\n got %q\nwant %q", got, want)
	}
	p.runner(as, pipeline.RunStats{Received: 24_000, Applied: 23_998})
	if got, want := p.line(at(6*time.Second)), "delivering: 23998 events correlated, 82.0 MB and 1000500 records read in 5s; writing incidents"; got != want {
		t.Errorf("delivering:\n got %q\nwant %q", got, want)
	}
	// Standard input from a pipe: no total, no ETA.
	q := &replayProgress{start: start}
	q.bytes.Store(3e6)
	q.emitted.Store(100)
	if got, want := q.line(at(time.Second)), "reading: 3.0 MB, 100 records, 100 records/s"; got != want {
		t.Errorf("pipe:\n got %q\nwant %q", got, want)
	}
}

// The counters the line reads count every record and every byte: the old
// line counted only the events kept after the reader's filter (641 of the
// demo's 3,547 records, ~1 % on a CloudTrail-heavy archive).
func TestProgressCountsEveryRecord(t *testing.T) {
	var rejected, seen int64
	var mu sync.Mutex
	r := archive.NewReader(archive.Options{Filter: pipeline.KeepIf(func(src pipeline.Source, typ string, _ time.Time, _ pipeline.RawRecord) bool {
		mu.Lock()
		defer mu.Unlock()
		seen++
		if src == pipeline.SourceCloudTrail && !strings.HasSuffix(typ, ":StopLogging") {
			rejected++
			return false
		}
		return true
	})})
	p := &replayProgress{start: time.Now(), filtered: func() int64 { mu.Lock(); defer mu.Unlock(); return rejected }}
	jobs := readJobs(r, []string{demo}, nil, nil, func(archive.RecordError) {})
	var size int64
	for _, j := range jobs {
		p.totalBytes += j.size
		if archive.SkipClass(j.name) == "" {
			fi, err := os.Stat(j.name)
			if err != nil {
				t.Fatal(err)
			}
			size += fi.Size()
		}
	}
	err := readJobsParallel(context.Background(), r, jobs, &p.bytes, func(*pipeline.Event) error { p.emitted.Add(1); return nil }, func(archive.RecordError) {})
	if err != nil {
		t.Fatal(err)
	}
	var read int64
	for _, n := range r.Stats().Read {
		read += n
	}
	if p.records() != 3547 || read != 3547 {
		t.Errorf("records %d, reader's count %d; want 3547 (2906 CloudTrail, 5 GuardDuty, 624 Container Insights, 7 Falco, 5 ECS)", p.records(), read)
	}
	if p.totalBytes != size || p.bytes.Load() != size || size == 0 {
		t.Errorf("bytes read %d of %d, want all %d bytes of the files read", p.bytes.Load(), p.totalBytes, size)
	}
}

// A replay on a (fake) terminal draws the progress line and keeps debug
// log lines off it; the summary starts on a clean line.
func TestProgressReplayOnTerminal(t *testing.T) {
	var term bytes.Buffer
	var mu sync.Mutex
	s := &statusLine{w: lockedWriter{&mu, &term}}
	var out bytes.Buffer
	code := run(context.Background(), []string{"replay", "-v", demo}, &out, s)
	mu.Lock()
	got := term.String()
	mu.Unlock()
	if code != 0 || out.String() != demoGolden(t) {
		t.Fatalf("exit %d\n%s", code, got)
	}
	if !strings.Contains(got, clearLine+"reading: ") {
		t.Errorf("no progress line drawn:\n%q", got)
	}
	if !strings.Contains(got, "level=DEBUG") {
		t.Fatalf("no debug log lines to check")
	}
	for _, seg := range strings.Split(got, "\n") {
		if i := strings.LastIndex(seg, clearLine); i >= 0 {
			seg = seg[i+len(clearLine):]
		}
		if strings.Contains(seg, "level=") && !strings.HasPrefix(seg, "time=") {
			t.Errorf("log line glued to the status: %q", seg)
		}
	}
	i := strings.Index(got, "\nreplay summary\n")
	if i < 0 || !(strings.HasSuffix(got[:i], clearLine) || strings.HasSuffix(got[:i], "\n")) {
		t.Errorf("the summary does not start on a clean line:\n%q", got)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
