package falco

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The spool is an append-only log of accepted alerts, cut into segment
// files named by the logical offset of their first byte (%016x.seg), so
// that offsets grow across segments and a segment can be deleted whole
// once everything in it is acknowledged.
//
// A record is
//
//	length uint32 | crc uint32 | received int64 (Unix ns) | payload
//
// little-endian, where length is that of the payload and the CRC-32C
// covers received and payload. A record whose header or CRC does not
// check out ends the segment: only the last segment can have one (a write
// that a crash cut short), and reopening truncates it there. Records are
// written by one goroutine in groups that share one fdatasync; a group is
// visible to readers (and its writers are answered) only once synced.

const (
	recHeader = 16
	// maxRecord bounds a record's length when reading, so that a damaged
	// header cannot make us allocate gigabytes.
	maxRecord = 64 << 20
	segSuffix = ".seg"
	// groupBytes caps one write+sync group.
	groupBytes = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrSpoolFull is returned by Append when the spool holds MaxBytes of
// unacknowledged records.
var ErrSpoolFull = errors.New("spool full: the correlator is not keeping up")

// errSpoolClosed is returned by Append after Close.
var errSpoolClosed = errors.New("spool closed")

// SpoolOptions configure a spool.
type SpoolOptions struct {
	// SegmentBytes is the size at which a segment is closed and a new one
	// started; 0 means 16 MiB.
	SegmentBytes int64
	// MaxBytes caps the bytes on disk; appends beyond it fail with
	// ErrSpoolFull. 0 means 1 GiB.
	MaxBytes int64
	// GroupDelay is how long the writer waits for more records after the
	// first of a group before it syncs; 0 syncs at once (concurrent
	// appends still share a sync: they queue while the previous one runs).
	GroupDelay time.Duration
	Logger     *slog.Logger

	// beforeSync, in tests, runs before each sync.
	beforeSync func()
}

// spoolRec is a record read back from the spool.
type spoolRec struct {
	off      int64 // logical offset of the record
	end      int64 // logical offset after it
	received time.Time
	payload  []byte
	seg      string // segment file, for positions
}

type segment struct {
	base int64
	size int64 // valid bytes (durable for all but the active segment)
	path string
}

func (s segment) end() int64 { return s.base + s.size }

// Spool is the durable queue between receipt and Read. Append is safe for
// concurrent use; reading (next, rewind) is for one goroutine; ack may run
// concurrently with both.
type Spool struct {
	dir  string
	opts SpoolOptions
	log  *slog.Logger
	lock *os.File

	reqs     chan *appendReq
	stop     chan struct{}
	writerWG sync.WaitGroup

	mu      sync.Mutex
	segs    []segment // sorted by base; the last is active
	durable int64     // end of the synced records
	acked   int64     // everything before it is acknowledged
	bytes   int64     // on disk, over all segments
	failed  error     // a failed write or sync: the spool refuses appends
	closed  bool
	notify  chan struct{} // closed and replaced when durable moves
	active  *os.File      // the active segment, writer only

	// Reader state, under rmu (one reading goroutine; Close takes it to
	// close the reader's file).
	rmu   sync.Mutex
	rOff  int64
	rFile *os.File
	rSeg  segment
	rBuf  *bufio.Reader
	rAt   int64 // logical offset rBuf is at
}

type appendReq struct {
	recv time.Time
	recs [][]byte
	n    int64 // encoded bytes
	done chan error
}

// Pending is an append on its way to disk.
type Pending struct{ done chan error }

// Wait blocks until the records are durable (nil) or failed.
func (p *Pending) Wait(ctx context.Context) error {
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// OpenSpool opens (creating) the spool in dir, truncating a torn last
// record, and positions the reader at pos (an offset from a Position; 0
// for none). Records before pos count as acknowledged.
func OpenSpool(dir string, pos int64, opts SpoolOptions) (*Spool, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 16 << 20
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, opts: opts, log: opts.Logger, reqs: make(chan *appendReq, 1024),
		stop: make(chan struct{}), notify: make(chan struct{})}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.load(pos); err != nil {
		lock.Close()
		return nil, err
	}
	s.writerWG.Add(1)
	go s.writer()
	return s, nil
}

// load reads the segment list, repairs the tail and places the reader.
func (s *Spool) load(pos int64) error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) || e.IsDir() {
			continue
		}
		base, err := strconv.ParseInt(strings.TrimSuffix(name, segSuffix), 16, 64)
		if err != nil || base < 0 {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		s.segs = append(s.segs, segment{base: base, size: fi.Size(), path: filepath.Join(s.dir, name)})
	}
	slices.SortFunc(s.segs, func(a, b segment) int { return cmpInt(a.base, b.base) })
	if n := len(s.segs); n > 0 {
		last := &s.segs[n-1]
		valid, err := validLength(last.path)
		if err != nil {
			return err
		}
		if valid < last.size {
			s.log.Warn("spool: dropping a torn record at the end of the last segment (a write cut short by a crash; it was never acknowledged)",
				"segment", last.path, "valid_bytes", valid, "dropped_bytes", last.size-valid)
			if err := truncateSync(last.path, valid); err != nil {
				return err
			}
			last.size = valid
		}
	}
	end := int64(0)
	if n := len(s.segs); n > 0 {
		end = s.segs[n-1].end()
	}
	switch {
	case pos > end:
		// The position says more was committed than the spool holds: the
		// spool was lost or replaced. Continue numbering after pos, or new
		// records would sort before it and be skipped.
		if len(s.segs) > 0 || pos > 0 {
			s.log.Warn("spool: the stored position is past the end of the spool (spool lost or replaced?); continuing after it",
				"position", pos, "spool_end", end)
		}
		end = pos
	case len(s.segs) > 0 && pos < s.segs[0].base:
		s.log.Warn("spool: the stored position is before the oldest segment; reading from the oldest",
			"position", pos, "oldest", s.segs[0].base)
		pos = s.segs[0].base
	}
	if len(s.segs) == 0 || s.segs[len(s.segs)-1].end() < end {
		if err := s.newSegment(end); err != nil {
			return err
		}
	} else {
		f, err := os.OpenFile(s.segs[len(s.segs)-1].path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		s.active = f
	}
	for _, sg := range s.segs {
		s.bytes += sg.size
	}
	s.durable = end
	s.rOff, s.acked = pos, pos
	s.deleteAcked()
	return nil
}

// newSegment starts the active segment at base (and syncs the directory,
// so the file survives a crash).
func (s *Spool) newSegment(base int64) error {
	path := filepath.Join(s.dir, fmt.Sprintf("%016x%s", base, segSuffix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	if s.active != nil {
		s.active.Close()
	}
	s.active = f
	s.mu.Lock()
	s.segs = append(s.segs, segment{base: base, path: path})
	s.mu.Unlock()
	return nil
}

// validLength scans a segment and returns the length of its valid prefix.
func validLength(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var off int64
	var buf []byte
	for {
		n, ok, err := readRecord(br, &buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errCorrupt) {
			return 0, fmt.Errorf("spool: reading %s: %w", path, err)
		}
		if !ok {
			return off, nil
		}
		off += n
	}
}

var errCorrupt = errors.New("corrupt record")

// readRecord reads one record into *buf (header included, reused) and
// returns its encoded length; ok is false at the end or at damage.
func readRecord(br *bufio.Reader, buf *[]byte) (n int64, ok bool, err error) {
	hdr, err := br.Peek(recHeader)
	if err != nil {
		return 0, false, err
	}
	l := binary.LittleEndian.Uint32(hdr)
	crc := binary.LittleEndian.Uint32(hdr[4:])
	if l > maxRecord {
		return 0, false, errCorrupt
	}
	total := recHeader + int(l)
	if cap(*buf) < total {
		*buf = make([]byte, total)
	}
	b := (*buf)[:total]
	if _, err := io.ReadFull(br, b); err != nil {
		return 0, false, err
	}
	if crc32.Checksum(b[8:], castagnoli) != crc {
		return 0, false, errCorrupt
	}
	*buf = b
	return int64(total), true, nil
}

func appendRecord(dst []byte, recv time.Time, payload []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(recv.UnixNano()))
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(dst[start+8:], castagnoli))
	return dst
}

// Append queues records received at recv for the next sync. The caller
// answers its client only after Pending.Wait returned nil.
func (s *Spool) Append(recv time.Time, recs ...[]byte) (*Pending, error) {
	r := &appendReq{recv: recv, recs: recs, done: make(chan error, 1)}
	for _, p := range recs {
		if len(p) > maxRecord {
			return nil, fmt.Errorf("spool: record of %d bytes exceeds %d", len(p), maxRecord)
		}
		r.n += int64(recHeader + len(p))
	}
	s.mu.Lock()
	err := s.failed
	if s.closed {
		err = errSpoolClosed
	} else if err == nil && s.usedLocked()+r.n > s.opts.MaxBytes {
		err = ErrSpoolFull
	}
	if err == nil {
		s.bytes += r.n // reserved now so that concurrent appends see it
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case s.reqs <- r:
	case <-s.stop:
		return nil, errSpoolClosed
	}
	return &Pending{done: r.done}, nil
}

// usedLocked is the disk use that counts against MaxBytes: a fully
// acknowledged active segment is free (the writer replaces it).
func (s *Spool) usedLocked() int64 {
	used := s.bytes
	if last := s.segs[len(s.segs)-1]; s.acked >= last.end() {
		used -= last.size
	}
	return used
}

// writer writes and syncs groups of appends.
func (s *Spool) writer() {
	defer s.writerWG.Done()
	var buf []byte
	var group []*appendReq
	for {
		var first *appendReq
		select {
		case first = <-s.reqs:
		case <-s.stop:
			// Drain what was queued before Close so no waiter hangs.
			for {
				select {
				case r := <-s.reqs:
					r.done <- errSpoolClosed
				default:
					return
				}
			}
		}
		group = append(group[:0], first)
		size := first.n
		if s.opts.GroupDelay > 0 {
			t := time.NewTimer(s.opts.GroupDelay)
		linger:
			for size < groupBytes {
				select {
				case r := <-s.reqs:
					group = append(group, r)
					size += r.n
				case <-t.C:
					break linger
				}
			}
			t.Stop()
		}
	drain:
		for size < groupBytes {
			select {
			case r := <-s.reqs:
				group = append(group, r)
				size += r.n
			default:
				break drain
			}
		}
		buf = buf[:0]
		for _, r := range group {
			for _, p := range r.recs {
				buf = appendRecord(buf, r.recv, p)
			}
		}
		err := s.writeSync(buf)
		for _, r := range group {
			r.done <- err
		}
		clear(group)
	}
}

// writeSync appends buf to the active segment, syncs it, publishes the new
// durable end and rotates the segment when it is full.
func (s *Spool) writeSync(buf []byte) error {
	s.mu.Lock()
	failed := s.failed
	last := s.segs[len(s.segs)-1]
	// A fully acknowledged active segment is replaced once it is a
	// quarter full, or when the spool is full, so that its space comes
	// back.
	rotate := last.size > 0 && s.acked >= last.end() &&
		(last.size >= s.opts.SegmentBytes/4 || s.bytes+int64(len(buf)) > s.opts.MaxBytes)
	s.mu.Unlock()
	if failed != nil {
		return failed
	}
	if rotate {
		if err := s.newSegment(last.end()); err != nil {
			s.log.Warn("spool: starting a new segment; appending to the old one", "err", err)
		}
		s.deleteAcked()
	}
	_, err := s.active.Write(buf)
	if err == nil {
		if s.opts.beforeSync != nil {
			s.opts.beforeSync()
		}
		err = datasync(s.active)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// After a failed fsync the page cache state is unknown (a retried
		// fsync can report success for lost data): stop accepting.
		s.failed = fmt.Errorf("spool: writing %s: %w", s.active.Name(), err)
		s.log.Error("spool write failed; refusing further alerts", "err", err)
		return s.failed
	}
	act := &s.segs[len(s.segs)-1]
	act.size += int64(len(buf))
	s.durable = act.end()
	close(s.notify)
	s.notify = make(chan struct{})
	if act.size >= s.opts.SegmentBytes {
		base := act.end()
		s.mu.Unlock()
		err := s.newSegment(base)
		s.mu.Lock()
		if err != nil {
			s.log.Warn("spool: starting a new segment; appending to the old one", "err", err)
		}
	}
	s.deleteAckedLocked()
	return nil
}

// Failed reports a write or sync failure, after which the spool refuses
// appends.
func (s *Spool) Failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// next returns up to max records (and about maxBytes) after the read
// offset, blocking until there is at least one durable record or ctx is
// done.
func (s *Spool) next(ctx context.Context, max int, maxBytes int) ([]spoolRec, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		s.mu.Lock()
		durable, notify, closed := s.durable, s.notify, s.closed
		s.mu.Unlock()
		if closed {
			return nil, errSpoolClosed
		}
		if s.rOff < durable {
			recs, err := s.readUpTo(durable, max, maxBytes)
			if err != nil || len(recs) > 0 {
				return recs, err
			}
			continue // skipped a gap or a damaged segment
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// readUpTo reads records from rOff, not past durable.
func (s *Spool) readUpTo(durable int64, max, maxBytes int) ([]spoolRec, error) {
	var out []spoolRec
	size := 0
	for len(out) < max && size < maxBytes && s.rOff < durable {
		sg, last, ok := s.segAt(s.rOff)
		if !ok {
			return out, nil
		}
		if s.rOff < sg.base { // a gap (a lost spool, see load)
			s.rOff = sg.base
			continue
		}
		if s.rFile == nil || s.rSeg.base != sg.base {
			if err := s.openReader(sg); err != nil {
				return out, err
			}
		}
		if s.rAt != s.rOff {
			if _, err := s.rFile.Seek(s.rOff-sg.base, io.SeekStart); err != nil {
				return out, fmt.Errorf("spool: %w", err)
			}
			s.rBuf.Reset(s.rFile)
			s.rAt = s.rOff
		}
		var b []byte
		n, ok, err := readRecord(s.rBuf, &b)
		if !ok {
			// Synced bytes that do not read back: disk damage. Skip what
			// cannot be trusted: the rest of a closed segment, or of what
			// is synced of the active one.
			skipTo := sg.end()
			if last {
				skipTo = durable
			}
			s.log.Error("spool: damaged record; skipping", "segment", sg.path, "offset", s.rOff,
				"skipped_bytes", skipTo-s.rOff, "err", err)
			s.rOff = skipTo
			s.closeReader()
			continue
		}
		recv := int64(binary.LittleEndian.Uint64(b[8:]))
		out = append(out, spoolRec{off: s.rOff, end: s.rOff + n, received: time.Unix(0, recv),
			payload: b[recHeader:], seg: sg.path})
		s.rOff += n
		s.rAt = s.rOff
		size += int(n)
	}
	return out, nil
}

// segAt returns the segment holding off, or the first one after it.
func (s *Spool) segAt(off int64) (sg segment, last, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.segs {
		if off < x.end() || i == len(s.segs)-1 {
			return x, i == len(s.segs)-1, true
		}
	}
	return segment{}, false, false
}

// openReader opens sg for reading.
func (s *Spool) openReader(sg segment) error {
	s.closeReader()
	f, err := os.Open(sg.path)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.rFile, s.rSeg = f, sg
	if s.rBuf == nil {
		s.rBuf = bufio.NewReaderSize(f, 256<<10)
	} else {
		s.rBuf.Reset(f)
	}
	s.rAt = -1
	return nil
}

func (s *Spool) closeReader() {
	if s.rFile != nil {
		s.rFile.Close()
		s.rFile = nil
	}
}

// rewind moves the reader back to off (a nacked batch is read again).
func (s *Spool) rewind(off int64) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if off < s.rOff {
		s.rOff = off
		s.closeReader()
	}
}

// ack records that everything before off is committed downstream and
// deletes the segments that holds only such records.
func (s *Spool) ack(off int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if off > s.acked {
		s.acked = off
	}
	s.deleteAckedLocked()
}

func (s *Spool) deleteAcked() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteAckedLocked()
}

// deleteAckedLocked removes closed segments that end at or before acked.
func (s *Spool) deleteAckedLocked() {
	n := 0
	for n < len(s.segs)-1 && s.segs[n].end() <= s.acked {
		n++
	}
	for _, sg := range s.segs[:n] {
		if err := os.Remove(sg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("spool: removing an acknowledged segment", "segment", sg.path, "err", err)
			break
		}
		s.bytes -= sg.size
	}
	s.segs = slices.Delete(s.segs, 0, n)
}

// Stats reports the spool's size.
func (s *Spool) Stats() (segments int, bytes, durable, acked int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.segs), s.bytes, s.durable, s.acked
}

// Close stops the writer (queued appends fail) and closes the files.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	close(s.stop)
	s.writerWG.Wait()
	s.rmu.Lock()
	s.closeReader()
	s.rmu.Unlock()
	var err error
	if s.active != nil {
		err = s.active.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("spool: truncating %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("spool: syncing %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: syncing %s: %w", dir, err)
	}
	return nil
}
