package archive

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// DefaultMaxRecordBytes is the default cap on one record (line or value).
const DefaultMaxRecordBytes = format.DefaultMaxRecordBytes

// RecordError describes a skipped record or a damaged file.
type RecordError = format.RecordError

// Skip classes of records (format's), the keys of Stats.Skipped with the
// file classes below.
const (
	SkipBadJSON        = format.SkipBadJSON
	SkipInvalid        = format.SkipInvalid
	SkipTimeOutOfRange = format.SkipTimeOutOfRange
	SkipTooLarge       = format.SkipTooLarge
	SkipUnsupported    = format.SkipUnsupported
	SkipUnrecognised   = format.SkipUnrecognised
	SkipControlMessage = format.SkipControlMessage
)

// Skip classes of files (see also walk.go).
const (
	SkipBadFile     = "bad_file"      // unreadable or damaged file (e.g. truncated gzip)
	SkipDigestFile  = "digest_file"   // CloudTrail-Digest/ objects
	SkipInsightFile = "insight_file"  // CloudTrail-Insight/ objects
	SkipHiddenFile  = "hidden_file"   // dot files
	SkipNonJSONFile = "non_json_file" // README.md and other non-JSON files
)

// Options configure a Reader.
type Options struct {
	// MaxRecordBytes caps one record; a longer one is skipped with a
	// reason and never held whole in memory. 0 means DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Logger receives file-level problems; nil discards them.
	Logger *slog.Logger
	// Filter, when set, is asked about each valid CloudTrail record once
	// its type and time are known and before the rest of the work
	// (copying the record, extracting the entity); typ and rec (the
	// record's JSON, and its top-level members when the reader indexed
	// them) are valid only during the call. Records it rejects are counted in
	// Stats.Read and Stats.Filtered but not emitted. Replay uses it to
	// skip the bulk of CloudTrail that no rule can match. It must be safe
	// for concurrent use.
	Filter pipeline.RecordFilter
	// Now is the wall-clock start of the run: records more than
	// MaxClockSkew after it (or before MinEventTime) are skipped as
	// SkipTimeOutOfRange. Zero means time.Now() at NewReader.
	Now time.Time
}

// Stats counts what a Reader did.
type Stats struct {
	Read map[pipeline.Source]int64 // valid records per source (emitted or filtered)
	// Filtered counts valid records that Options.Filter rejected;
	// OutOfRange those of them it rejected for their time alone
	// (pipeline.Verdict.Outside).
	Filtered   map[pipeline.Source]int64
	OutOfRange int64
	// First and Last bound the event times of the valid records (zero
	// when none).
	First, Last time.Time
	Skipped     map[string]int64 // skip class (Skip* constants) → count
	Files       int              // files read (including damaged ones)
	// SkippedFiles counts files not read at all (digests, hidden, non-JSON).
	SkippedFiles int
}

// Reader reads archived log files into events.
type Reader struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	stats Stats
	// filteredLive counts filtered records as decoders report them (in
	// batches, each file's rest at its end), for progress while reading.
	filteredLive atomic.Int64
	// readDir lists a folder (a seam for tests: root reads any folder).
	readDir func(string) ([]fs.DirEntry, error)
	// noIndex turns off indexing CloudTrail records while they are found
	// (a seam for tests: both ways must read the same).
	noIndex bool
	// bufs recycles scanner buffers and bufio readers between files;
	// many small objects are common (one S3 object per 5 minutes).
	bufs sync.Pool
}

type fileBufs struct {
	scan []byte
	br   *bufio.Reader
	// zr is the gzip reader of the last gzip file, reset for the next
	// (a new one allocates its 32 KiB window and tables: 690 files of the
	// bench corpus made 40 MB of garbage).
	zr *kgzip.Reader
}

// maxPooledBuf keeps buffers grown for a huge record out of the pool.
const maxPooledBuf = 1 << 20

// NewReader returns a Reader with opts.
func NewReader(opts Options) *Reader {
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reader{opts: opts, log: log, readDir: os.ReadDir, stats: Stats{Read: map[pipeline.Source]int64{}, Skipped: map[string]int64{}}}
}

// FilteredSoFar is how many records Options.Filter has rejected so far
// (a few thousand behind per file being read).
func (r *Reader) FilteredSoFar() int64 { return r.filteredLive.Load() }

// Stats returns a copy of the counters so far.
func (r *Reader) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Read = make(map[pipeline.Source]int64, len(r.stats.Read))
	for k, v := range r.stats.Read {
		s.Read[k] = v
	}
	s.Filtered = make(map[pipeline.Source]int64, len(r.stats.Filtered))
	for k, v := range r.stats.Filtered {
		s.Filtered[k] = v
	}
	s.Skipped = make(map[string]int64, len(r.stats.Skipped))
	for k, v := range r.stats.Skipped {
		s.Skipped[k] = v
	}
	return s
}

// Read reads every file that Files lists under paths, as ReadFile does.
// It goes on after bad records and bad files; it returns an error only for
// ctx cancellation or an emit error.
func (r *Reader) Read(ctx context.Context, paths []string, emit func(*pipeline.Event) error, bad func(RecordError)) error {
	for _, file := range r.Files(paths, nil, bad) {
		if err := r.ReadFile(ctx, file, emit, bad); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// skipClass says why a file is not read, from its path alone.
func skipClass(path string) string {
	slash := filepath.ToSlash(path)
	if strings.Contains(slash, "/CloudTrail-Digest/") || strings.HasPrefix(slash, "CloudTrail-Digest/") {
		return SkipDigestFile
	}
	if strings.Contains(slash, "/CloudTrail-Insight/") || strings.HasPrefix(slash, "CloudTrail-Insight/") {
		return SkipInsightFile
	}
	base := filepath.Base(path)
	if strings.HasPrefix(base, ".") {
		return SkipHiddenFile
	}
	name := strings.ToLower(strings.TrimSuffix(base, ".gz"))
	switch strings.ToLower(filepath.Ext(name)) {
	case ".md", ".txt", ".yaml", ".yml", ".csv", ".tsv", ".html", ".htm", ".xml", ".toml", ".ini", ".sh",
		".py", ".go", ".pdf", ".png", ".jpg", ".jpeg", ".gif", ".zip", ".tar", ".tgz", ".parquet", ".sum", ".sig":
		return SkipNonJSONFile
	}
	return ""
}

func (r *Reader) skipFile(path, class string) {
	r.mu.Lock()
	r.stats.SkippedFiles++
	r.stats.Skipped[class]++
	r.mu.Unlock()
	r.log.Debug("archive: file skipped", "file", path, "reason", class)
}

func (r *Reader) fileError(path string, err error, bad func(RecordError)) {
	r.mu.Lock()
	r.stats.Skipped[SkipBadFile]++
	r.mu.Unlock()
	r.log.Warn("archive: unreadable file", "file", path, "err", err)
	if bad != nil {
		bad(RecordError{Pos: pipeline.Position{File: path}, Reason: err.Error()})
	}
}

// ReadFile reads one file (plain or gzip, sniffed from its first bytes).
// It is safe to call concurrently for different files.
func (r *Reader) ReadFile(ctx context.Context, path string, emit func(*pipeline.Event) error, bad func(RecordError)) error {
	return r.ReadFrom(ctx, path, func() (io.ReadCloser, error) { return os.Open(path) }, emit, bad)
}

// readStream reads records from one file. It returns a file-level problem
// (reported once) and an error that stops the whole read.
func (r *Reader) readStream(ctx context.Context, path string, f io.Reader, d *format.Decoder) (fileErr string, skipped bool, err error) {
	fb, _ := r.bufs.Get().(*fileBufs)
	if fb == nil {
		fb = &fileBufs{br: bufio.NewReaderSize(f, 64<<10)}
	}
	br := fb.br
	br.Reset(f)
	var src io.Reader = br
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		if fb.zr == nil {
			zr, err := kgzip.NewReader(br)
			if err != nil {
				return fmt.Sprintf("gzip: %v", err), false, nil
			}
			fb.zr = zr
		} else if err := fb.zr.Reset(br); err != nil {
			return fmt.Sprintf("gzip: %v", err), false, nil
		}
		// No Close: it only reports the reader's error, and the deferred
		// Put below hands fb (with zr) to the next file's goroutine.
		src = fb.zr
	}
	sc := newScanner(src, r.opts.MaxRecordBytes, fb.scan)
	defer func() {
		fb.scan = nil
		if cap(sc.buf) <= maxPooledBuf {
			fb.scan = sc.buf
		}
		br.Reset(nil)
		r.bufs.Put(fb)
	}()
	if !sc.skipWS() {
		return readProblem(sc, path), false, nil
	}
	if c := sc.peek(); c != '{' && c != '[' {
		r.skipFile(path, SkipNonJSONFile)
		return "", true, nil
	}
	fr := fileReader{d: d, sc: sc, path: path, ctx: ctx, noIndex: r.noIndex}
	fileErr = fr.run()
	return fileErr, false, fr.stopErr
}

// readProblem describes why a stream ended, or "" at a clean end.
func readProblem(sc *scanner, path string) string {
	if sc.err == nil || errors.Is(sc.err, io.EOF) {
		return ""
	}
	return fmt.Sprintf("reading %s stopped: %v (file truncated or damaged; records after this point are lost)", path, sc.err)
}

type fileReader struct {
	// indexed is the CloudTrail record index found whole in the buffer,
	// and members its top-level members, while it is handled.
	indexed []byte
	members []pipeline.Member
	noIndex bool

	d     *format.Decoder
	sc    *scanner
	path  string
	ctx   context.Context
	count int
	// stopErr is ctx's error once cancelled; it stops the whole read.
	stopErr error
}

func (fr *fileReader) pos(line, rec int) pipeline.Position {
	return pipeline.Position{File: fr.path, Line: line, Record: rec}
}

// tick checks for cancellation every so many records.
func (fr *fileReader) tick() error {
	fr.count++
	if fr.count&1023 == 0 && fr.stopErr == nil {
		fr.stopErr = fr.ctx.Err()
	}
	return fr.stopErr
}

func (fr *fileReader) run() string {
	sc, d := fr.sc, fr.d
	lineMode := false
	for {
		if d.Err() != nil || fr.tick() != nil {
			return ""
		}
		if !sc.skipWS() {
			return fr.problem()
		}
		// A {"Records":[...]} object is streamed wherever it appears, even
		// on one line of a JSON lines file.
		if sc.peek() == '{' && sc.startsWithRecords() {
			if !fr.object() {
				return fr.problem()
			}
			continue
		}
		if lineMode {
			b, line, st := sc.nextLine(true)
			if st == valHuge {
				if !fr.object() {
					return fr.problem()
				}
				continue
			}
			if !fr.handle(b, line, 0, st, "") {
				return fr.problem()
			}
			continue
		}
		switch sc.peek() {
		case '{':
			startLine := sc.line
			v, line, st := sc.value(true)
			if st == valHuge {
				if !fr.object() {
					return fr.problem()
				}
				continue
			}
			if !fr.handle(v, line, 0, st, "") {
				return fr.problem()
			}
			// One value on one line, nothing after it: JSON lines. Read
			// line by line from now on, so a damaged line costs only itself.
			if st == valOK && sc.line == startLine && sc.restOfLineBlank() {
				lineMode = true
			}
		case '[':
			sc.s++
			if fr.array("", func(v []byte, line, rec int, st valStatus) bool { return fr.handle(v, line, rec, st, "") }) == arrayStopped {
				return fr.problem()
			}
		default:
			line := sc.line
			head := sc.skipLine()
			d.Reject(fr.pos(line, 0), "", SkipBadJSON, "not JSON: line does not start a JSON value", head)
		}
	}
}

// problem describes why reading stopped early, unless it was a stop
// request (emit error, cancellation).
func (fr *fileReader) problem() string {
	if fr.d.Err() != nil || fr.stopErr != nil {
		return ""
	}
	return readProblem(fr.sc, fr.path)
}

// handle decodes one scanned record; it reports false if the stream ended.
func (fr *fileReader) handle(v []byte, line, rec int, st valStatus, src pipeline.Source) bool {
	d := fr.d
	p := fr.pos(line, rec)
	switch st {
	case valOK:
		switch {
		case fr.indexed != nil && len(v) == len(fr.indexed):
			d.RecordIndexed(v, fr.members, p, src)
		case len(v) > 0:
			d.Record(v, p, src)
		}
		return true
	case valTooLarge:
		d.Reject(p, src, SkipTooLarge, fmt.Sprintf("record exceeds %d bytes; skipped", d.MaxRecordBytes()), fr.sc.sample)
		return true
	case valBroken:
		d.Reject(p, src, SkipBadJSON, "invalid JSON: record cut short by a line break", v)
		return true
	}
	// valEOF: the stream ended inside the record. A read error is reported
	// once for the file by the caller; a clean EOF means a truncated file.
	if fr.sc.err != nil && !errors.Is(fr.sc.err, io.EOF) {
		return false
	}
	if len(v) > 0 {
		d.Reject(p, src, SkipBadJSON, "invalid JSON: file ends inside a record", v)
	}
	return false
}

// indexAhead is how much index keeps buffered (CloudTrail records are
// about 1.5 KB).
const indexAhead = 64 << 10

// index reads the CloudTrail record at the scanner's position when it is
// whole in the buffer, on one line and within the size limit, finding its
// end and its top-level members in one pass (the common case: CloudTrail
// writes each object on one line). Anything else (a record cut by the
// buffer, a line break, damage, a huge record) is left to value, which
// reads and reports it as before.
func (fr *fileReader) index() bool {
	sc := fr.sc
	if sc.e-sc.s < indexAhead {
		sc.fill() // keep a few records buffered, so that few are cut
	}
	data := sc.buf[sc.s:sc.e]
	members, end, ok := pipeline.IndexObject(data, fr.members[:0])
	fr.members = members
	if !ok || end > fr.d.MaxRecordBytes() || bytes.IndexByte(data[:end], '\n') >= 0 {
		fr.members = fr.members[:0]
		return false
	}
	fr.indexed = data[:end]
	sc.s += end
	return true
}

// How an array ended.
type arrayEnd int

const (
	arrayClosed  arrayEnd = iota // at its ']'
	arrayCut                     // at the end of a truncated line; the next record follows
	arrayStopped                 // the stream ended, or a stop was asked for
)

// array streams the elements of an array whose '[' was consumed, passing
// each to elem (which reports false if the stream ended), and consumes
// the ']'. An array whose elements start on the line of its '[' (a
// CloudTrail object on one line) ends with its line if that line was
// truncated: a record starting the next line is not one of its elements.
func (fr *fileReader) array(src pipeline.Source, elem func(v []byte, line, rec int, st valStatus) bool) arrayEnd {
	sc := fr.sc
	rec := 0
	compact, first := false, true
	for {
		if fr.d.Err() != nil {
			return arrayStopped
		}
		if err := fr.tick(); err != nil {
			return arrayStopped
		}
		if !sc.skipWS() {
			if sc.err == nil || errors.Is(sc.err, io.EOF) {
				fr.d.Reject(fr.pos(sc.line, rec), src, SkipBadJSON, "invalid JSON: file ends inside an array", nil)
			}
			return arrayStopped
		}
		c := sc.peek()
		if first {
			compact, first = !sc.nl, false
		} else if compact && sc.nl && sc.col == 0 && (c == '{' || c == '[') {
			fr.d.Reject(fr.pos(sc.line-1, rec), src, SkipBadJSON, "invalid JSON: line ends inside an array", nil)
			return arrayCut
		}
		switch c {
		case ']':
			sc.s++
			return arrayClosed
		case ',':
			sc.s++
			continue
		case '{', '[':
			if c == '{' && compact && src == pipeline.SourceCloudTrail && !fr.noIndex && fr.index() {
				// The record was indexed while finding its end: the
				// decoder reads its members instead of scanning it again.
				v := fr.indexed
				ok := elem(v, sc.line, rec, valOK)
				fr.members, fr.indexed = fr.members[:0], nil
				if !ok {
					return arrayStopped
				}
				rec++
				continue
			}
			v, line, st := sc.value(false)
			if !elem(v, line, rec, st) {
				return arrayStopped
			}
			rec++
			if st == valBroken && sc.cutAtLine && compact {
				return arrayCut
			}
		default:
			// A scalar element or garbage: skip to the next separator.
			line := sc.line
			start := sc.s
			for sc.s < sc.e && sc.buf[sc.s] != ',' && sc.buf[sc.s] != ']' && sc.buf[sc.s] != '\n' {
				sc.s++
			}
			fr.d.Reject(fr.pos(line, rec), src, SkipBadJSON, "array element is not a JSON object", sc.buf[start:sc.s])
			if sc.s == start {
				sc.s++
			}
			rec++
		}
	}
}
