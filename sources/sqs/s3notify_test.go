package sqs

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sources/archive"
	"github.com/ecscorr/ecscorr/sources/s3/s3test"
	"github.com/ecscorr/ecscorr/sources/sqs/sqstest"
)

func s3Notification(bucket, key string) string {
	// Keys are URL-encoded in S3 notifications, '+' for a space.
	enc := strings.ReplaceAll(url.QueryEscape(key), "%2F", "/")
	b, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2023-07-10T12:40:00.000Z",
		"eventName": "ObjectCreated:Put", "userIdentity": map[string]string{"principalId": "AWS:AROAEXAMPLE"},
		"s3": map[string]any{"s3SchemaVersion": "1.0", "configurationId": "ecscorr",
			"bucket": map[string]any{"name": bucket, "arn": "arn:aws:s3:::" + bucket},
			"object": map[string]any{"key": enc, "size": 1024, "sequencer": "0A1B2C3D4E5F678901"}},
	}}})
	return string(b)
}

func objectCreated(bucket, key string) string {
	b, _ := json.Marshal(map[string]any{"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
		"source": "aws.s3", "account": "123837392027", "time": "2023-07-10T12:40:00Z", "region": "us-east-1",
		"resources": []string{"arn:aws:s3:::" + bucket},
		"detail": map[string]any{"version": "0", "bucket": map[string]string{"name": bucket},
			"object": map[string]any{"key": key, "size": 1024}, "reason": "PutObject"}})
	return string(b)
}

func snsWrapped(msg string) string {
	b, _ := json.Marshal(map[string]string{"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
		"TopicArn": "arn:aws:sns:us-east-1:123837392027:cloudtrail-objects", "Subject": "Amazon S3 Notification",
		"Message": msg, "Timestamp": "2023-07-10T12:40:00.000Z", "SignatureVersion": "1"})
	return string(b)
}

type objRec struct {
	id   string
	file string
	line int
	rec  int
}

func fileEvents(t *testing.T, path, as string) []objRec {
	t.Helper()
	var out []objRec
	err := archive.NewReader(archive.Options{}).ReadFile(context.Background(), path, func(ev *pipeline.Event) error {
		out = append(out, objRec{ev.ID, as, ev.Pos.Line, ev.Pos.Record})
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// S3 notifications (direct with a URL-encoded key, EventBridge "Object
// Created", SNS-wrapped) are read as the objects' events with positions
// s3://bucket/key + line and record; a test event is skipped; a missing
// object is dead-lettered and its message deleted; an S3 notification is
// never taken for CloudTrail's Records.
func TestS3Notifications(t *testing.T) {
	s3s := s3test.New()
	defer s3s.Close()
	srv := sqstest.New()
	defer srv.Close()
	qurl := srv.CreateQueue("objects", sqstest.QueueOptions{})

	ctFile, _ := filepath.Glob(filepath.Join(demo, "AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/*dEm0aTtAcKsToRy1.json.gz"))
	gdFile, _ := filepath.Glob(filepath.Join(demo, "AWSLogs/123837392027/GuardDuty/us-east-1/2023/07/10/*.jsonl.gz"))
	ct, _ := os.ReadFile(ctFile[0])
	gd, _ := os.ReadFile(gdFile[0])
	keyDirect := "AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/story copy+1.json.gz"
	keyEB := "AWSLogs/123837392027/GuardDuty/us-east-1/2023/07/10/export.jsonl.gz"
	keySNS := "AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/story-sns.json.gz"
	s3s.Put("logs", keyDirect, ct)
	s3s.Put("logs", keyEB, gd)
	s3s.Put("logs", keySNS, ct)

	srv.Send("objects", `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2023-07-10T12:00:00.000Z","Bucket":"logs","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}`)
	srv.Send("objects", s3Notification("logs", keyDirect))
	srv.Send("objects", objectCreated("logs", keyEB))
	srv.Send("objects", snsWrapped(s3Notification("logs", keySNS)))
	goneID := srv.Send("objects", s3Notification("logs", "AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/gone.json.gz"))

	var want []objRec
	want = append(want, fileEvents(t, ctFile[0], "s3://logs/"+keyDirect)...)
	want = append(want, fileEvents(t, gdFile[0], "s3://logs/"+keyEB)...)
	want = append(want, fileEvents(t, ctFile[0], "s3://logs/"+keySNS)...)
	if len(want) != 6+5+6 {
		t.Fatalf("want %d events", len(want))
	}

	var bad badLog
	in := open(t, Options{QueueURL: qurl, Client: sqsClient(srv), S3Client: s3s.Client(), Bad: bad.add, Wait: time.Second})
	var got []objRec
	for _, ev := range readEvents(t, in, len(want)) {
		got = append(got, objRec{ev.ID, ev.Pos.File, ev.Pos.Line, ev.Pos.Record})
	}
	cmp := func(a, b objRec) int { return strings.Compare(a.file+a.id, b.file+b.id) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
	// The server forgets a message before the input counts its delete.
	waitFor(t, "every message deleted", func() bool { return len(srv.Messages("objects")) == 0 && in.Stats().Deleted == 5 })
	errs := bad.list()
	if len(errs) != 1 || !strings.HasSuffix(errs[0].Pos.File, "/gone.json.gz") || !strings.Contains(errs[0].Reason, "NoSuchKey") {
		t.Fatalf("dead letters %+v (message %s)", errs, goneID)
	}
	if s := in.Stats(); s.Objects != 3 || s.ObjectsGone != 1 || s.Skipped != 1 || s.ObjectRetries != 0 || s.Deleted != 5 {
		t.Fatalf("stats %+v", s)
	}
}

// An object that cannot be read for a transient reason keeps its message
// on the queue (no events, no delete); it is read when redelivered.
func TestS3TransientFailureRedelivered(t *testing.T) {
	s3s := s3test.New()
	defer s3s.Close()
	srv := sqstest.New()
	defer srv.Close()
	qurl := srv.CreateQueue("objects", sqstest.QueueOptions{VisibilityTimeout: time.Second})
	gdFile, _ := filepath.Glob(filepath.Join(demo, "AWSLogs/123837392027/GuardDuty/us-east-1/2023/07/10/*.jsonl.gz"))
	gd, _ := os.ReadFile(gdFile[0])
	key := "AWSLogs/123837392027/GuardDuty/us-east-1/2023/07/10/export.jsonl.gz"
	s3s.Put("logs", key, gd)
	srv.Send("objects", objectCreated("logs", key))
	s3s.FailGets(3, 500, nil) // every attempt of the first read

	var bad badLog
	in := open(t, Options{QueueURL: qurl, Client: sqsClient(srv), S3Client: s3s.Client(), Bad: bad.add, Wait: time.Second})
	first := read(t, in, 15*time.Second)
	if len(first.events) != 0 {
		t.Fatalf("failed read gave %d events", len(first.events))
	}
	if err := first.ack(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if s := in.Stats(); s.ObjectRetries != 1 || s.Deleted != 0 {
		t.Fatalf("stats %+v: the message must stay", s)
	}
	evs := readEvents(t, in, 5)
	if len(evs) != 5 {
		t.Fatalf("%d events", len(evs))
	}
	waitFor(t, "the delete", func() bool { return in.Stats().Deleted == 1 })
	msgs := srv.Messages("objects")
	if len(msgs) != 0 || len(bad.list()) != 0 {
		t.Fatalf("messages %v, bad %v", msgs, bad.list())
	}
}
