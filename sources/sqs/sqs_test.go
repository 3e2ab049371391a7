package sqs

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/ecscorr/ecscorr/sources/sqs/sqstest"
)

// The demo story's EventBridge messages all arrive exactly once, through
// the default credential and endpoint chain (AWS_ENDPOINT_URL_SQS), and
// the acknowledged batches leave the queue empty.
func TestDemoEventBridgeExactlyOnce(t *testing.T) {
	srv := sqstest.New()
	defer srv.Close()
	url := srv.CreateQueue("ecscorr-events", sqstest.QueueOptions{VisibilityTimeout: 30 * time.Second})
	t.Setenv("AWS_ENDPOINT_URL_SQS", srv.URL)
	t.Setenv("AWS_REGION", sqstest.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRETTEST")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")

	bodies := demoBodies(t)
	want := wantIDs(t, bodies)
	if len(want) != len(bodies) || len(want) != 5+5+6 {
		t.Fatalf("demo: %d bodies, %d events", len(bodies), len(want))
	}
	for _, b := range bodies {
		srv.Send("ecscorr-events", b)
	}
	var bad badLog
	in := open(t, Options{QueueURL: url, Bad: bad.add, Wait: time.Second})
	if in.Name() != "sqs:ecscorr-events" {
		t.Errorf("Name() = %q", in.Name())
	}
	if in.vis != 30*time.Second {
		t.Errorf("visibility from GetQueueAttributes = %s, want 30s", in.vis)
	}
	evs := readEvents(t, in, len(want))
	if got := ids(evs); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
	for _, ev := range evs {
		if !strings.HasPrefix(ev.Pos.File, "sqs://ecscorr-events/") || ev.Received.IsZero() {
			t.Fatalf("event %s: position %v, received %v", ev.ID, ev.Pos, ev.Received)
		}
	}
	waitFor(t, "deletes", func() bool { return in.Stats().Deleted == int64(len(bodies)) })
	if vis, fl := srv.Counts("ecscorr-events"); vis != 0 || fl != 0 {
		t.Fatalf("queue after acks: %d visible, %d in flight", vis, fl)
	}
	attrs, err := sqsClient(srv).GetQueueAttributes(context.Background(), &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	if a := attrs.Attributes; a["ApproximateNumberOfMessages"] != "0" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("queue attributes after acks: %v", a)
	}
	if len(bad.list()) != 0 || in.Ready() != nil {
		t.Fatalf("bad %v, ready %v", bad.list(), in.Ready())
	}
	if srv.Unsigned() != 0 {
		t.Fatalf("%d unsigned requests", srv.Unsigned())
	}
}

// A nacked batch comes back (the same messages, received a second time);
// acknowledged, it is deleted.
func TestNackRedelivers(t *testing.T) {
	srv := sqstest.New()
	defer srv.Close()
	url := srv.CreateQueue("q", sqstest.QueueOptions{VisibilityTimeout: time.Second})
	bodies := demoBodies(t)[:3]
	for _, b := range bodies {
		srv.Send("q", b)
	}
	in := open(t, Options{QueueURL: url, Client: sqsClient(srv), Wait: time.Second})
	first := read(t, in, 10*time.Second)
	if len(first.events) != 3 {
		t.Fatalf("first batch: %d events", len(first.events))
	}
	if err := first.ack(context.Background(), context.Canceled); err != nil {
		t.Fatal(err)
	}
	second := read(t, in, 10*time.Second)
	if got, want := ids(second.events), ids(first.events); !slices.Equal(got, want) {
		t.Fatalf("redelivery %v, want %v", got, want)
	}
	for _, m := range srv.Messages("q") {
		if m.ReceiveCount != 2 {
			t.Fatalf("message %s received %d times, want 2", m.ID, m.ReceiveCount)
		}
	}
	if err := second.ack(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deletes", func() bool { return in.Stats().Deleted == 3 })
	if n := len(srv.Messages("q")); n != 0 {
		t.Fatalf("%d messages left", n)
	}
	if s := in.Stats(); s.Nacked != 3 || s.Deleted != 3 || s.DeleteExpired != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A message that keeps failing is left to the redrive policy: after
// maxReceiveCount receives it is on the dead-letter queue, not retried
// forever and never made visible at once.
func TestNackedMessageReachesRedrive(t *testing.T) {
	srv := sqstest.New()
	defer srv.Close()
	srv.CreateQueue("dlq", sqstest.QueueOptions{})
	url := srv.CreateQueue("q", sqstest.QueueOptions{VisibilityTimeout: time.Second, MaxReceiveCount: 2, DeadLetterQueue: "dlq"})
	id := srv.Send("q", demoBodies(t)[0])
	in := open(t, Options{QueueURL: url, Client: sqsClient(srv), Wait: time.Second})
	for range 2 {
		b := read(t, in, 10*time.Second)
		if len(b.events) != 1 {
			t.Fatalf("%d events", len(b.events))
		}
		_ = b.ack(context.Background(), context.Canceled)
	}
	waitFor(t, "the move to the dead-letter queue", func() bool { return len(srv.Messages("dlq")) == 1 })
	if m := srv.Messages("dlq")[0]; m.ID != id {
		t.Fatalf("dead-letter queue holds %s, want %s", m.ID, id)
	}
	if n := len(srv.Messages("q")); n != 0 {
		t.Fatalf("%d messages left on the source queue", n)
	}
}

// A batch held past its visibility timeout by a slow commit is extended
// and not redelivered; its delete then succeeds.
func TestSlowAckExtended(t *testing.T) {
	srv := sqstest.New()
	defer srv.Close()
	url := srv.CreateQueue("q", sqstest.QueueOptions{VisibilityTimeout: 2 * time.Second})
	srv.Send("q", demoBodies(t)[0])
	in := open(t, Options{QueueURL: url, Client: sqsClient(srv), Wait: time.Second})
	b := read(t, in, 10*time.Second)
	received := time.Now()
	// Hold the batch until the extender has extended it twice: past the
	// 2 s visibility it was received with (the extender counts from the
	// receive, a little before received: hence the margin).
	waitFor(t, "two extensions", func() bool { return in.Stats().Extended >= 2 })
	if held := time.Since(received); held < 1500*time.Millisecond {
		t.Fatalf("two extensions after %s: extended too early", held)
	}
	msgs := srv.Messages("q")
	if len(msgs) != 1 || msgs[0].ReceiveCount != 1 {
		t.Fatalf("messages %+v: redelivered while held", msgs)
	}
	if vis, fl := srv.Counts("q"); vis != 0 || fl != 1 {
		t.Fatalf("%d visible, %d in flight; want 0, 1", vis, fl)
	}
	if err := b.ack(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delete", func() bool { return in.Stats().Deleted == 1 })
	if s := in.Stats(); s.Deleted != 1 || s.DeleteExpired != 0 || s.ExtendFailed != 0 {
		t.Fatalf("stats %+v", s)
	}
	if n := len(srv.Messages("q")); n != 0 {
		t.Fatalf("%d messages left", n)
	}
}

// A delete whose receipt handle expired (the visibility lapsed and the
// message was received again) is counted and logged, not an error; the
// redelivered copy comes next and its delete succeeds.
func TestExpiredHandleOnDelete(t *testing.T) {
	srv := sqstest.New()
	defer srv.Close()
	url := srv.CreateQueue("q", sqstest.QueueOptions{VisibilityTimeout: 30 * time.Second})
	body := demoBodies(t)[0]
	srv.Send("q", body)
	in := open(t, Options{QueueURL: url, Client: sqsClient(srv), Wait: time.Second})
	first := read(t, in, 10*time.Second)
	srv.Expire("q")
	waitFor(t, "the second receive", func() bool { m := srv.Messages("q"); return len(m) == 1 && m[0].ReceiveCount == 2 })
	if err := first.ack(context.Background(), nil); err != nil {
		t.Fatalf("ack with an expired handle: %v", err)
	}
	waitFor(t, "the refused delete", func() bool { return in.Stats().DeleteExpired == 1 })
	if s := in.Stats(); s.DeleteExpired != 1 || s.Deleted != 0 {
		t.Fatalf("stats %+v", s)
	}
	second := read(t, in, 10*time.Second)
	if got, want := ids(second.events), wantIDs(t, []string{body}); !slices.Equal(got, want) {
		t.Fatalf("redelivered %v, want %v", got, want)
	}
	if err := second.ack(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delete", func() bool { return in.Stats().Deleted == 1 })
	if s := in.Stats(); s.DeleteExpired != 1 || s.Deleted != 1 {
		t.Fatalf("stats %+v", s)
	}
	if n := len(srv.Messages("q")); n != 0 {
		t.Fatalf("%d messages left", n)
	}
	// The single-message API refuses a malformed handle likewise.
	_, err := sqsClient(srv).DeleteMessage(context.Background(), &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: aws.String("bm90IGEgaGFuZGxl")})
	var rh *types.ReceiptHandleIsInvalid
	if !asErr(err, &rh) {
		t.Fatalf("DeleteMessage with a bad handle: %v", err)
	}
}

// Throttling and 500s are retried by the client; nothing is lost or
// doubled.
func TestThrottlingRetried(t *testing.T) {
	srv := sqstest.New()
	defer srv.Close()
	url := srv.CreateQueue("q", sqstest.QueueOptions{})
	bodies := demoBodies(t)[:2]
	for _, b := range bodies {
		srv.Send("q", b)
	}
	srv.Inject("GetQueueAttributes", sqstest.ThrottlingException)
	srv.Inject("ReceiveMessage", sqstest.RequestThrottled, sqstest.InternalError)
	srv.Inject("DeleteMessageBatch", sqstest.RequestThrottled, sqstest.ThrottlingException)
	in := open(t, Options{QueueURL: url, Client: sqsClient(srv), Wait: time.Second})
	evs := readEvents(t, in, 2)
	if got, want := ids(evs), wantIDs(t, bodies); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	waitFor(t, "deletes", func() bool { return in.Stats().Deleted == 2 })
	if n := len(srv.Messages("q")); n != 0 {
		t.Fatalf("%d messages left", n)
	}
	if s := in.Stats(); s.ReceiveErrors != 0 || s.Deleted != 2 || s.DeleteFailed != 0 {
		t.Fatalf("stats %+v", s)
	}
	if n := srv.Requests("DeleteMessageBatch"); n != 3 {
		t.Fatalf("%d DeleteMessageBatch requests, want 3 (two throttled)", n)
	}
}

// An undecodable body is dead-lettered with its position and deleted with
// its batch; the good message beside it is delivered.
func TestBadBodyDeadLetteredAndDeleted(t *testing.T) {
	srv := sqstest.New()
	defer srv.Close()
	url := srv.CreateQueue("q", sqstest.QueueOptions{})
	good := demoBodies(t)[0]
	badID := srv.Send("q", `{"detail-type": "AWS API Call via CloudTrail", "detail": {"eventTime": `)
	srv.Send("q", good)
	var bad badLog
	in := open(t, Options{QueueURL: url, Client: sqsClient(srv), Bad: bad.add, Wait: time.Second})
	evs := readEvents(t, in, 1)
	if got, want := ids(evs), wantIDs(t, []string{good}); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	waitFor(t, "deletes", func() bool { return in.Stats().Deleted == 2 })
	errs := bad.list()
	if len(errs) != 1 || errs[0].Pos.File != "sqs://q/"+badID {
		t.Fatalf("dead letters %+v, want one at sqs://q/%s", errs, badID)
	}
	if n := len(srv.Messages("q")); n != 0 {
		t.Fatalf("%d messages left: the bad one must be deleted", n)
	}
	if s := in.Stats(); s.Bad != 1 || s.Deleted != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// A body whose MD5 does not match is refused by the SDK's check (which
// must stay on); the message comes again and is delivered once.
func TestMD5MismatchRefused(t *testing.T) {
	srv := sqstest.New()
	defer srv.Close()
	url := srv.CreateQueue("q", sqstest.QueueOptions{VisibilityTimeout: time.Second})
	body := demoBodies(t)[0]
	srv.Send("q", body)
	srv.CorruptMD5(1)
	in := open(t, Options{QueueURL: url, Client: sqsClient(srv), Wait: time.Second})
	evs := readEvents(t, in, 1)
	if got, want := ids(evs), wantIDs(t, []string{body}); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if s := in.Stats(); s.ReceiveErrors != 1 {
		t.Fatalf("stats %+v: the corrupted receive must fail", s)
	}
	waitFor(t, "the delete", func() bool { return in.Stats().Deleted == 1 })
	if n := len(srv.Messages("q")); n != 0 {
		t.Fatalf("%d messages left", n)
	}
}

// Requests without a SigV4 signature are refused.
func TestServerWantsSignature(t *testing.T) {
	srv := sqstest.New()
	defer srv.Close()
	srv.CreateQueue("q", sqstest.QueueOptions{})
	req, _ := newUnsignedRequest(srv.URL)
	resp, err := httpDo(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp != 403 || srv.Unsigned() != 1 {
		t.Fatalf("unsigned request: status %d, counted %d", resp, srv.Unsigned())
	}
}

// GetQueueUrl resolves a queue name; an unknown one is QueueDoesNotExist.
func TestQueueName(t *testing.T) {
	srv := sqstest.New()
	defer srv.Close()
	url := srv.CreateQueue("named", sqstest.QueueOptions{VisibilityTimeout: 7 * time.Second})
	in := open(t, Options{QueueName: "named", Client: sqsClient(srv), Wait: time.Second})
	if in.o.QueueURL != url || in.vis != 7*time.Second || in.Name() != "sqs:named" {
		t.Fatalf("url %q vis %s name %q", in.o.QueueURL, in.vis, in.Name())
	}
	bad, _ := New(Options{QueueName: "missing", Client: sqsClient(srv)})
	err := bad.Open(context.Background(), nil)
	var nq *types.QueueDoesNotExist
	if !asErr(err, &nq) {
		t.Fatalf("Open of a missing queue: %v", err)
	}
}
