package cwltest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"
)

func TestProtocolThroughSDK(t *testing.T) {
	ctx := context.Background()
	s := New(Options{PageEvents: 3, EmptyFirstPage: true})
	defer s.Close()
	c := s.Client()
	const g = "/aws/ecs/containerinsights/prod/performance"
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(g)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(g)})
	var exists *types.ResourceAlreadyExistsException
	if !errors.As(err, &exists) {
		t.Fatalf("second CreateLogGroup: %v, want ResourceAlreadyExistsException", err)
	}
	for _, st := range []string{"a", "b"} {
		if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(g), LogStreamName: aws.String(st)}); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().Add(-time.Minute).UnixMilli()
	put := func(st string, ts ...int64) {
		var evs []types.InputLogEvent
		for _, x := range ts {
			evs = append(evs, types.InputLogEvent{Timestamp: aws.Int64(base + x), Message: aws.String(fmt.Sprintf("%s@%d", st, x))})
		}
		if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(g), LogStreamName: aws.String(st), LogEvents: evs}); err != nil {
			t.Fatal(err)
		}
	}
	put("a", 0, 10, 10, 20)
	put("b", 5, 10, 30)
	put("a", 10) // same timestamp, ingested later: after b's 10

	_, err = c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(g), LogStreamName: aws.String("a"),
		LogEvents: []types.InputLogEvent{{Timestamp: aws.Int64(base + 2), Message: aws.String("x")}, {Timestamp: aws.Int64(base + 1), Message: aws.String("y")}}})
	var inv *types.InvalidParameterException
	if !errors.As(err, &inv) {
		t.Fatalf("unordered PutLogEvents: %v, want InvalidParameterException", err)
	}

	filter := func(in *cloudwatchlogs.FilterLogEventsInput) (msgs []string, pages int) {
		p := cloudwatchlogs.NewFilterLogEventsPaginator(c, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, e := range out.Events {
				msgs = append(msgs, aws.ToString(e.Message))
				if !strings.HasPrefix(aws.ToString(e.Message), aws.ToString(e.LogStreamName)+"@") || len(aws.ToString(e.EventId)) != 56 {
					t.Fatalf("event %+v", e)
				}
			}
		}
		return msgs, pages
	}
	msgs, pages := filter(&cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(g)})
	want := "a@0 b@5 a@10 a@10 b@10 a@10 a@20 b@30"
	if got := strings.Join(msgs, " "); got != want || pages != 4 {
		t.Fatalf("all: %q in %d pages, want %q in 4 (one empty, pages of 3)", got, pages, want)
	}
	// startTime and endTime are both inclusive.
	msgs, _ = filter(&cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(g), StartTime: aws.Int64(base + 10), EndTime: aws.Int64(base + 20)})
	if got := strings.Join(msgs, " "); got != "a@10 a@10 b@10 a@10 a@20" {
		t.Fatalf("[10,20]: %q", got)
	}
	msgs, _ = filter(&cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(g), LogStreamNames: []string{"b"}})
	if got := strings.Join(msgs, " "); got != "b@5 b@10 b@30" {
		t.Fatalf("stream b: %q", got)
	}
	msgs, _ = filter(&cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(g), LogStreamNamePrefix: aws.String("a"), StartFromHead: aws.Bool(false)})
	if got := strings.Join(msgs, " "); got != "a@20 a@10 a@10 a@10 a@0" {
		t.Fatalf("prefix a, newest first: %q", got)
	}

	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/nope")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("missing group: %v, want ResourceNotFoundException", err)
	}
	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(g), LogStreamNames: []string{"a"}, LogStreamNamePrefix: aws.String("a")})
	if !errors.As(err, &inv) {
		t.Fatalf("names and prefix: %v, want InvalidParameterException", err)
	}

	// Throttling: the SDK retries (3 attempts), then reports it.
	s.Inject("FilterLogEvents", Throttle(3))
	n0 := s.Calls("FilterLogEvents")
	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(g)})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ThrottlingException" || s.Calls("FilterLogEvents")-n0 != 3 {
		t.Fatalf("throttled: %v after %d calls, want ThrottlingException after 3", err, s.Calls("FilterLogEvents")-n0)
	}
	s.Inject("FilterLogEvents", Unavailable(2))
	if _, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(g)}); err != nil {
		t.Fatalf("two 500s then success: %v", err)
	}

	out, err := c.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/aws/ecs/")})
	if err != nil || len(out.LogGroups) != 1 || aws.ToString(out.LogGroups[0].Arn) != "arn:aws:logs:eu-west-1:123456789012:log-group:"+g+":*" {
		t.Fatalf("DescribeLogGroups: %v %+v", err, out)
	}
	ls, err := c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String(g), OrderBy: types.OrderByLastEventTime, Descending: aws.Bool(true)})
	if err != nil || len(ls.LogStreams) != 2 || aws.ToString(ls.LogStreams[0].LogStreamName) != "b" || aws.ToInt64(ls.LogStreams[0].LastEventTimestamp) != base+30 {
		t.Fatalf("DescribeLogStreams: %v %+v", err, ls)
	}
}

func TestSignatureRequired(t *testing.T) {
	ctx := context.Background()
	s := New(Options{})
	defer s.Close()
	s.CreateGroup("/g")
	// Unsigned.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, strings.NewReader(`{"logGroupName":"/g"}`))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Amz-Target", targetPrefix+"FilterLogEvents")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || s.Calls("FilterLogEvents") != 0 {
		t.Fatalf("unsigned request: %d, calls %d", resp.StatusCode, s.Calls("FilterLogEvents"))
	}
	// Signed with the wrong secret.
	c := s.Client(func(o *cloudwatchlogs.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(AccessKeyID, "wrong", "")
	})
	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/g")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidSignatureException" {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := s.Client().FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/g")}); err != nil {
		t.Fatalf("signed: %v", err)
	}
}
