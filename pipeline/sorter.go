package pipeline

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// Sorter orders events by event time with bounded memory: it buffers up to
// MaxBytes of events, then sorts the buffer and spills it to a run file in
// Dir; Drain merges the runs. Replay uses it because archive files are not
// sorted and may be larger than RAM.
type Sorter struct {
	MaxBytes int64  // memory budget for buffered events (default 256 MiB)
	Dir      string // where runs are spilled (default os.TempDir())

	buf     []*Event
	bufSize int64
	runs    []string
	seq     uint64
	// Spilled counts events written to run files.
	Spilled uint64
}

func eventSize(ev *Event) int64 {
	return int64(len(ev.Raw)+len(ev.ID)+len(ev.Type)+len(ev.Entity.TaskARN)+len(ev.Entity.Principal)) + 256
}

// Add buffers an event; it assigns Seq in arrival order.
func (s *Sorter) Add(ev *Event) error {
	s.seq++
	ev.Seq = s.seq
	s.buf = append(s.buf, ev)
	s.bufSize += eventSize(ev)
	max := s.MaxBytes
	if max <= 0 {
		max = 256 << 20
	}
	if s.bufSize >= max {
		return s.spill()
	}
	return nil
}

func sortEvents(evs []*Event) {
	slices.SortFunc(evs, func(a, b *Event) int {
		if Less(a, b) {
			return -1
		}
		if Less(b, a) {
			return 1
		}
		return 0
	})
}

func (s *Sorter) spill() error {
	sortEvents(s.buf)
	f, err := os.CreateTemp(s.Dir, "ecscorr-run-*.bin")
	if err != nil {
		return fmt.Errorf("creating sort run: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, ev := range s.buf {
		if err := encodeEvent(w, ev); err != nil {
			f.Close()
			return fmt.Errorf("writing sort run %s: %w", f.Name(), err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing sort run %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing sort run: %w", err)
	}
	s.runs = append(s.runs, f.Name())
	s.Spilled += uint64(len(s.buf))
	clear(s.buf)
	s.buf = s.buf[:0]
	s.bufSize = 0
	return nil
}

// Runs is the number of spilled runs so far.
func (s *Sorter) Runs() int { return len(s.runs) }

// Drain calls fn for every event in order and removes the run files. The
// sorter is empty afterwards.
func (s *Sorter) Drain(fn func(*Event) error) (err error) {
	defer func() {
		for _, r := range s.runs {
			os.Remove(r)
		}
		s.runs = nil
	}()
	sortEvents(s.buf)
	if len(s.runs) == 0 {
		for i, ev := range s.buf {
			s.buf[i] = nil // let processed events go
			if err := fn(ev); err != nil {
				return err
			}
		}
		s.buf = s.buf[:0]
		return nil
	}
	m := &mergeHeap{}
	mem := &sliceCursor{evs: s.buf}
	if mem.next() {
		m.items = append(m.items, mem)
	}
	for _, r := range s.runs {
		f, err := os.Open(r)
		if err != nil {
			return fmt.Errorf("opening sort run: %w", err)
		}
		defer f.Close()
		c := &runCursor{r: bufio.NewReaderSize(f, 256<<10), name: r}
		if c.next() {
			m.items = append(m.items, c)
		} else if c.err != nil {
			return c.err
		}
	}
	heap.Init(m)
	for m.Len() > 0 {
		c := m.items[0]
		ev := c.cur()
		if err := fn(ev); err != nil {
			return err
		}
		if c.next() {
			heap.Fix(m, 0)
		} else {
			if err := c.failed(); err != nil {
				return err
			}
			heap.Pop(m)
		}
	}
	s.buf = s.buf[:0]
	return nil
}

type cursor interface {
	next() bool
	cur() *Event
	failed() error
}

type sliceCursor struct {
	evs []*Event
	i   int
	c   *Event
}

func (s *sliceCursor) next() bool {
	if s.i >= len(s.evs) {
		return false
	}
	s.c = s.evs[s.i]
	s.evs[s.i] = nil
	s.i++
	return true
}
func (s *sliceCursor) cur() *Event   { return s.c }
func (s *sliceCursor) failed() error { return nil }

type runCursor struct {
	r    *bufio.Reader
	name string
	c    *Event
	err  error
}

func (r *runCursor) next() bool {
	ev, err := decodeEvent(r.r)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			r.err = fmt.Errorf("reading sort run %s: %w", r.name, err)
		}
		return false
	}
	r.c = ev
	return true
}
func (r *runCursor) cur() *Event   { return r.c }
func (r *runCursor) failed() error { return r.err }

type mergeHeap struct{ items []cursor }

func (m *mergeHeap) Len() int           { return len(m.items) }
func (m *mergeHeap) Less(i, j int) bool { return Less(m.items[i].cur(), m.items[j].cur()) }
func (m *mergeHeap) Swap(i, j int)      { m.items[i], m.items[j] = m.items[j], m.items[i] }
func (m *mergeHeap) Push(x any)         { m.items = append(m.items, x.(cursor)) }
func (m *mergeHeap) Pop() any {
	n := len(m.items)
	x := m.items[n-1]
	m.items = m.items[:n-1]
	return x
}

// The run format is a sequence of records of length-prefixed fields; it is
// private to one replay and never read by another version.
func encodeEvent(w *bufio.Writer, ev *Event) error {
	var tmp [binary.MaxVarintLen64]byte
	putU := func(v uint64) { n := binary.PutUvarint(tmp[:], v); w.Write(tmp[:n]) }
	putS := func(s string) { putU(uint64(len(s))); w.WriteString(s) }
	putB := func(b []byte) { putU(uint64(len(b))); w.Write(b) }
	putS(ev.ID)
	putS(string(ev.Source))
	putS(ev.Type)
	// Seconds and nanoseconds apart: UnixNano overflows outside about
	// 1678–2262, and a sort must not change a time whatever it is.
	n := binary.PutVarint(tmp[:], ev.Time.Unix())
	w.Write(tmp[:n])
	putU(uint64(ev.Time.Nanosecond()))
	e := &ev.Entity
	for _, s := range []string{e.Account, e.Region, e.Cluster, e.Service, e.TaskARN, e.TaskDefinitionARN, e.ContainerID, e.Principal} {
		putS(s)
	}
	putU(uint64(ev.Severity))
	if ev.Sample {
		putU(1)
	} else {
		putU(0)
	}
	putB(ev.Raw)
	putS(ev.Pos.File)
	putU(uint64(ev.Pos.Line))
	putU(uint64(ev.Pos.Record))
	putU(ev.Seq)
	putU(uint64(len(ev.Containers)))
	for _, c := range ev.Containers {
		putS(c)
	}
	// What the reader worked out of a record it may not have kept.
	putU(uint64(len(ev.Judged)))
	for _, w := range ev.Judged {
		putU(w)
	}
	putU(ev.JudgedBy)
	if ev.hashed {
		putU(1)
		putU(ev.contentHash)
	} else {
		putU(0)
	}
	return nil // bufio.Writer keeps the first error; Flush reports it
}

const maxFieldLen = 1 << 30

func decodeEvent(r *bufio.Reader) (*Event, error) {
	getU := func() (uint64, error) { return binary.ReadUvarint(r) }
	getB := func() ([]byte, error) {
		n, err := getU()
		if err != nil {
			return nil, err
		}
		if n > maxFieldLen {
			return nil, fmt.Errorf("corrupt run: field length %d", n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		return b, nil
	}
	getS := func() (string, error) { b, err := getB(); return string(b), err }
	ev := &Event{}
	var err error
	if ev.ID, err = getS(); err != nil {
		return nil, err // io.EOF at a record boundary ends the run
	}
	fail := func(err error) (*Event, error) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	src, err := getS()
	if err != nil {
		return fail(err)
	}
	ev.Source = Source(src)
	if ev.Type, err = getS(); err != nil {
		return fail(err)
	}
	sec, err := binary.ReadVarint(r)
	if err != nil {
		return fail(err)
	}
	nsec, err := getU()
	if err != nil {
		return fail(err)
	}
	if nsec >= 1e9 {
		return nil, fmt.Errorf("corrupt run: %d nanoseconds", nsec)
	}
	ev.Time = time.Unix(sec, int64(nsec)).UTC()
	e := &ev.Entity
	for _, p := range []*string{&e.Account, &e.Region, &e.Cluster, &e.Service, &e.TaskARN, &e.TaskDefinitionARN, &e.ContainerID, &e.Principal} {
		if *p, err = getS(); err != nil {
			return fail(err)
		}
	}
	sev, err := getU()
	if err != nil {
		return fail(err)
	}
	ev.Severity = Severity(sev)
	sample, err := getU()
	if err != nil {
		return fail(err)
	}
	ev.Sample = sample == 1
	raw, err := getB()
	if err != nil {
		return fail(err)
	}
	if len(raw) > 0 {
		ev.Raw = raw
	}
	if ev.Pos.File, err = getS(); err != nil {
		return fail(err)
	}
	line, err := getU()
	if err != nil {
		return fail(err)
	}
	rec, err := getU()
	if err != nil {
		return fail(err)
	}
	ev.Pos.Line, ev.Pos.Record = int(line), int(rec)
	if ev.Seq, err = getU(); err != nil {
		return fail(err)
	}
	nc, err := getU()
	if err != nil {
		return fail(err)
	}
	if nc > 1<<16 {
		return nil, fmt.Errorf("corrupt run: %d containers", nc)
	}
	for range nc {
		c, err := getS()
		if err != nil {
			return fail(err)
		}
		ev.Containers = append(ev.Containers, c)
	}
	nj, err := getU()
	if err != nil {
		return fail(err)
	}
	if nj > 1<<16 {
		return nil, fmt.Errorf("corrupt run: %d verdict words", nj)
	}
	if nj > 0 {
		ev.Judged = make([]uint64, nj)
		for i := range ev.Judged {
			if ev.Judged[i], err = getU(); err != nil {
				return fail(err)
			}
		}
	}
	if ev.JudgedBy, err = getU(); err != nil {
		return fail(err)
	}
	hashed, err := getU()
	if err != nil {
		return fail(err)
	}
	if hashed == 1 {
		ev.hashed = true
		if ev.contentHash, err = getU(); err != nil {
			return fail(err)
		}
	}
	return ev, nil
}
