// Package s3src reads CloudTrail and GuardDuty archives from Amazon S3: the
// object reader that sources/sqs shares (ReadObject: gzip sniffed from the
// magic bytes, JSON lines, {"Records":[...]} objects of any size, all
// streamed by sources/archive's reader), and Input, which polls a prefix
// for accounts without notifications.
package s3src

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
	"github.com/ecscorr/ecscorr/sources/archive"
)

// NewClient returns an S3 client from the SDK's default chain
// (environment, shared config, web identity, ECS task role), so that
// AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL work. With an endpoint set the
// client addresses buckets by path: test servers and S3-compatible stores
// on localhost have no virtual-host names.
func NewClient(ctx context.Context, optFns ...func(*s3.Options)) (*s3.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("s3src: loading the AWS configuration: %w", err)
	}
	fns := append([]func(*s3.Options){func(o *s3.Options) {
		if o.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
		// Without this the SDK prints a line on stderr, outside our
		// logs, for every object stored without a checksum.
		o.DisableLogOutputChecksumValidationSkipped = true
	}}, optFns...)
	return s3.NewFromConfig(cfg, fns...), nil
}

// ObjectURL is how positions and dead letters name an object.
func ObjectURL(bucket, key string) string { return "s3://" + bucket + "/" + key }

// Permanent reports whether err says the object can never be read (it or
// its bucket is gone), as opposed to a failure worth retrying (throttling,
// 5xx, the network, a denied access that a policy change may fix).
func Permanent(err error) bool {
	var nk *types.NoSuchKey
	var nb *types.NoSuchBucket
	if errors.As(err, &nk) || errors.As(err, &nb) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NoSuchBucket", "InvalidObjectState":
			return true
		}
	}
	return false
}

// ObjectReader reads S3 objects into events; it is safe for concurrent
// use (each call takes its own format.Decoder).
type ObjectReader struct {
	client *s3.Client
	ar     *archive.Reader
	log    *slog.Logger
}

// NewObjectReader returns a reader of client's objects; maxRecordBytes 0
// means format.DefaultMaxRecordBytes, and the decoders given to ReadObject
// should use the same cap.
func NewObjectReader(client *s3.Client, maxRecordBytes int, log *slog.Logger) *ObjectReader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ObjectReader{client: client, ar: archive.NewReader(archive.Options{MaxRecordBytes: maxRecordBytes, Logger: log}), log: log}
}

// ReadObject reads one object with a fresh ObjectReader (see
// ObjectReader.ReadObject).
func ReadObject(ctx context.Context, client *s3.Client, bucket, key string, d *format.Decoder) error {
	return NewObjectReader(client, d.MaxRecordBytes(), nil).ReadObject(ctx, bucket, key, d)
}

// ReadObject streams s3://bucket/key through d: plain or gzip (sniffed),
// a {"Records":[...]} CloudTrail object however large, JSON lines
// (GuardDuty exports), arrays. Positions are {File: "s3://bucket/key",
// Line, Record}. Damaged content costs only the damaged records, reported
// to d's Bad (a damaged gzip stream as one SkipBadFile record error).
// CloudTrail digests and other objects archive never reads are skipped
// (nil). It returns an error when the object could not be read whole
// (Permanent says whether a retry can help): the events already emitted
// for it must then be discarded by the caller. An error from d's Emit or
// ctx stops it too.
func (o *ObjectReader) ReadObject(ctx context.Context, bucket, key string, d *format.Decoder) error {
	name := ObjectURL(bucket, key)
	if class := archive.SkipClass(key); class != "" {
		o.log.Debug("s3: object skipped", "object", name, "reason", class)
		return nil
	}
	out, err := o.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("s3src: getting %s: %w", name, err)
	}
	defer out.Body.Close()
	body := &recorder{r: out.Body}
	problem, err := o.ar.ReadStream(ctx, name, body, d)
	if err != nil {
		return fmt.Errorf("s3src: reading %s: %w", name, err)
	}
	if body.err != nil {
		// The transfer broke, not the content: read it again.
		return fmt.Errorf("s3src: reading %s: %w", name, body.err)
	}
	if problem != "" {
		d.Reject(pipeline.Position{File: name}, "", archive.SkipBadFile, problem, nil)
	}
	return nil
}

// recorder remembers a transport error of the body, which the archive
// reader reports like damaged content.
type recorder struct {
	r   io.Reader
	err error
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && r.err == nil {
		r.err = err
	}
	return n, err
}
