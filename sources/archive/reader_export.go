package archive

import (
	"context"
	"io"

	"github.com/ecscorr/ecscorr/pipeline/format"
)

// ReadStream reads the records of one stream (plain or gzip, sniffed from
// its first bytes) exactly as ReadFile reads a file's content, decoding
// them with d; name is the File of their positions. It is for readers of
// objects that are not files (S3 objects). It returns a problem with the
// content ("" if none: a damaged gzip stream, a read that stopped early),
// which the caller reports, and an error only for ctx's cancellation or an
// error from d's Emit. Reader's Stats are not updated: d counts.
func (r *Reader) ReadStream(ctx context.Context, name string, src io.Reader, d *format.Decoder) (problem string, err error) {
	problem, _, err = r.readStream(ctx, name, src, d)
	if err == nil {
		err = d.Err()
	}
	return problem, err
}

// SkipClass says why a file or object is not read, from its path or key
// alone ("" if it is read): CloudTrail digests and insights, dot files and
// obviously non-JSON files (see the Skip*File classes).
func SkipClass(path string) string { return skipClass(path) }
