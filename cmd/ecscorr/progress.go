package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/ecscorr/ecscorr/pipeline"
)

// clearLine returns the cursor to the start of the line and erases it.
const clearLine = "\r\033[K"

// statusLine keeps one status line at the bottom of a terminal and lets
// log lines through above it: every write of a log line clears the status
// line, writes the line and draws the status again, so the two never mix.
// Writers of partial lines are held until their newline.
type statusLine struct {
	mu      sync.Mutex
	w       io.Writer
	width   int    // columns (0: unknown); the status is cut to width-1 so it never wraps
	line    string // drawn now; "" when none
	partial []byte
}

// terminalStatus returns a statusLine over stderr when it is a terminal
// (or is one already: tests hand in a fake terminal), else nil: no
// progress is drawn into files and pipes.
func terminalStatus(stderr io.Writer) *statusLine {
	if s, ok := stderr.(*statusLine); ok {
		return s
	}
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		width = 0
	}
	return &statusLine{w: stderr, width: width}
}

// Write passes log output through, keeping the status line below it.
func (s *statusLine) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial = append(s.partial, p...)
	i := bytes.LastIndexByte(s.partial, '\n')
	if i < 0 {
		return len(p), nil
	}
	var b []byte
	if s.line != "" {
		b = append(b, clearLine...)
	}
	b = append(b, s.partial[:i+1]...)
	b = append(b, s.line...)
	s.partial = append(s.partial[:0], s.partial[i+1:]...)
	if _, err := s.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Draw replaces the status line with text.
func (s *statusLine) Draw(text string) {
	if s.width > 1 && len(text) > s.width-1 {
		text = text[:s.width-1]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if text == s.line {
		return
	}
	s.line = text
	_, _ = io.WriteString(s.w, clearLine+text)
}

// Clear erases the status line (and writes out a pending partial line):
// what follows is written on a clean line.
func (s *statusLine) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	if s.line != "" {
		b = append(b, clearLine...)
		s.line = ""
	}
	if len(s.partial) > 0 {
		b = append(b, s.partial...)
		b = append(b, '\n')
		s.partial = s.partial[:0]
	}
	if len(b) > 0 {
		_, _ = s.w.Write(b)
	}
}

// replayProgress counts what a replay has done, from every goroutine that
// does it, for the status line.
type replayProgress struct {
	start      time.Time
	totalBytes int64 // compressed bytes of every file to read; 0: unknown (a pipe)
	bytes      atomic.Int64
	// emitted counts the events the archive reader produced; filtered
	// reports the records its Filter rejected (out of range, irrelevant).
	emitted  atomic.Int64
	filtered func() int64
	readEnd  atomic.Int64 // UnixNano when reading ended; 0 while reading
	// From the Runner: events received and applied, and the events there
	// are to correlate (known once reading is done).
	received   atomic.Int64
	applied    atomic.Int64
	toCorr     atomic.Int64
	delivering atomic.Bool
}

// records is the number of records read so far.
func (p *replayProgress) records() int64 {
	n := p.emitted.Load()
	if p.filtered != nil {
		n += p.filtered()
	}
	return n
}

// readDone marks the end of reading.
func (p *replayProgress) readDone(now time.Time) { p.readEnd.Store(now.UnixNano()) }

// runner is the pipeline.ReplayOptions Progress callback.
func (p *replayProgress) runner(as pipeline.ArchiveStats, rs pipeline.RunStats) {
	if p.readEnd.Load() == 0 {
		return // reading: the archive's own counts are of kept events only
	}
	var read int64
	for _, n := range as.Read {
		read += n
	}
	total := read - as.OutOfRange - as.Dropped
	p.toCorr.Store(total)
	p.received.Store(rs.Received)
	p.applied.Store(rs.Applied)
	if rs.Received >= total {
		p.delivering.Store(true)
	}
}

// line renders the status at now.
func (p *replayProgress) line(now time.Time) string {
	recs, b := p.records(), p.bytes.Load()
	end := p.readEnd.Load()
	if end == 0 {
		el := max(now.Sub(p.start).Seconds(), 1e-3)
		s := "reading: " + mb(b)
		if p.totalBytes > 0 {
			s = fmt.Sprintf("reading: %s of %s (%d%%)", mb(b), mb(p.totalBytes), percent(b, p.totalBytes))
		}
		s += fmt.Sprintf(", %d records, %.0f records/s", recs, float64(recs)/el)
		if p.totalBytes > 0 && b > 0 {
			left := float64(p.totalBytes-b) / (float64(b) / el)
			s += ", ETA " + eta(left)
		}
		return s
	}
	readFor := time.Unix(0, end).Sub(p.start)
	read := fmt.Sprintf("%s and %d records read in %s", mb(b), recs, readFor.Round(100*time.Millisecond))
	applied := p.applied.Load()
	if p.delivering.Load() {
		return fmt.Sprintf("delivering: %d events correlated, %s; writing incidents", applied, read)
	}
	total, got := p.toCorr.Load(), p.received.Load()
	el := max(now.Sub(time.Unix(0, end)).Seconds(), 1e-3)
	rate := float64(got) / el
	s := fmt.Sprintf("correlating: %d of %d events (%d%%), %.0f events/s", got, total, percent(got, total), rate)
	if got > 0 && total > got {
		s += ", ETA " + eta(float64(total-got)/rate)
	}
	return s + "; " + read
}

func percent(n, of int64) int64 {
	if of <= 0 {
		return 0
	}
	return min(100, n*100/of)
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func eta(sec float64) string {
	return (time.Duration(sec*float64(time.Second)) + time.Second/2).Truncate(time.Second).String()
}

// drawEvery redraws s from p until stop is closed.
func drawEvery(s *statusLine, p *replayProgress, every time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	s.Draw(p.line(time.Now()))
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s.Draw(p.line(now))
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r    io.ReadCloser
	n    *atomic.Int64
	read int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	c.read += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
