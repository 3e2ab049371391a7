package archive

import (
	"context"
	"errors"
	"io"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// ReadFrom reads one file as ReadFile does (skip classes, gzip sniffing,
// the same counters in Stats, a damaged or unopenable file reported once
// as SkipBadFile), its content from what open returns: the file through a
// wrapper that counts the bytes read (replay's progress), or standard
// input (name "stdin"). name is the File of the records' positions. It is
// safe to call concurrently.
func (r *Reader) ReadFrom(ctx context.Context, name string, open func() (io.ReadCloser, error), emit func(*pipeline.Event) error, bad func(RecordError)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if class := skipClass(name); class != "" {
		r.skipFile(name, class)
		return nil
	}
	f, err := open()
	if err != nil {
		r.fileError(name, err, bad)
		return nil
	}
	defer f.Close()
	d := format.NewDecoder(format.DecoderOptions{Emit: emit, Bad: bad, MaxRecordBytes: r.opts.MaxRecordBytes,
		Filter: r.opts.Filter, OnFiltered: func(n int64) { r.filteredLive.Add(n) }, Latest: r.opts.Now.Add(format.MaxClockSkew)})
	fileErr, skipped, err := r.readStream(ctx, name, f, d)
	if err == nil {
		err = d.Err()
	}
	d.Flush()
	read, filtered, skippedRecs := d.Counts()
	first, last := d.Span()
	r.mu.Lock()
	if !first.IsZero() && (r.stats.First.IsZero() || first.Before(r.stats.First)) {
		r.stats.First = first
	}
	if last.After(r.stats.Last) {
		r.stats.Last = last
	}
	r.stats.OutOfRange += d.Outside()
	if !skipped {
		r.stats.Files++
	}
	for k, v := range read {
		r.stats.Read[k] += v
	}
	for k, v := range filtered {
		if r.stats.Filtered == nil {
			r.stats.Filtered = map[pipeline.Source]int64{}
		}
		r.stats.Filtered[k] += v
	}
	for k, v := range skippedRecs {
		r.stats.Skipped[k] += v
	}
	r.mu.Unlock()
	if fileErr != "" {
		r.fileError(name, errors.New(fileErr), bad)
	}
	return err
}
