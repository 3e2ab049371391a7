package sqs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
	"github.com/ecscorr/ecscorr/sources/sqs/sqstest"

	"github.com/ecscorr/ecscorr/internal/testfix"
)

const demo = "../../testdata/demo"

func sqsClient(srv *sqstest.Server) *awssqs.Client {
	return awssqs.New(awssqs.Options{
		Region:       sqstest.Region,
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
	})
}

// badLog collects dead letters.
type badLog struct {
	mu   sync.Mutex
	errs []format.RecordError
}

func (b *badLog) add(e format.RecordError) {
	b.mu.Lock()
	b.errs = append(b.errs, e)
	b.mu.Unlock()
}

func (b *badLog) list() []format.RecordError {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.errs)
}

func gunzip(t testing.TB, path string) []byte { return testfix.Gunzip(t, path) }

func lines(b []byte) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
			out = append(out, bytes.Clone(l))
		}
	}
	return out
}

func envelope(t testing.TB, detailType, source string, i int, detail json.RawMessage) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"version": "0", "id": "00000000-0000-4000-8000-" + leftPad(i), "detail-type": detailType, "source": source,
		"account": "123837392027", "time": "2023-07-10T12:00:00Z", "region": "us-east-1", "resources": []string{}, "detail": detail,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func leftPad(i int) string {
	return fmt.Sprintf("%012d", i)
}

// demoBodies are the demo story's records as EventBridge delivers them: the
// ECS task state changes as they are, each GuardDuty finding as a
// "GuardDuty Finding" event and each CloudTrail record of the story object
// as an "AWS API Call via CloudTrail" event.
func demoBodies(t testing.TB) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(demo, "eventbridge/ecs-task-state-change.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range lines(raw) {
		out = append(out, string(l))
	}
	gds, _ := filepath.Glob(filepath.Join(demo, "AWSLogs/123837392027/GuardDuty/us-east-1/2023/07/10/*.jsonl.gz"))
	for _, g := range gds {
		for i, l := range lines(gunzip(t, g)) {
			out = append(out, envelope(t, "GuardDuty Finding", "aws.guardduty", 1000+i, l))
		}
	}
	cts, _ := filepath.Glob(filepath.Join(demo, "AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/*dEm0aTtAcKsToRy1.json.gz"))
	for _, c := range cts {
		var obj struct{ Records []json.RawMessage }
		if err := json.Unmarshal(gunzip(t, c), &obj); err != nil {
			t.Fatal(err)
		}
		for i, r := range obj.Records {
			out = append(out, envelope(t, "AWS API Call via CloudTrail", "aws.ecs", 2000+i, r))
		}
	}
	if len(gds) == 0 || len(cts) == 0 {
		t.Fatal("demo data missing")
	}
	return out
}

// wantIDs decodes bodies directly: the events an input must deliver.
func wantIDs(t testing.TB, bodies []string) []string {
	t.Helper()
	var ids []string
	for _, b := range bodies {
		err := format.Decode([]byte(b), pipeline.Position{}, func(ev *pipeline.Event) error {
			ids = append(ids, string(ev.Source)+"/"+ev.ID)
			return nil
		}, func(e format.RecordError) { t.Fatalf("demo record rejected: %v", e) })
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(ids)
	return ids
}

// batchOf is one Read.
type batchOf struct {
	events []*pipeline.Event
	ack    pipeline.AckFunc
}

func read(t testing.TB, in pipeline.Input, timeout time.Duration) batchOf {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	b, ack, err := in.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return batchOf{b.Events, ack}
}

// readEvents reads and acknowledges batches until n events arrived.
func readEvents(t testing.TB, in pipeline.Input, n int) []*pipeline.Event {
	t.Helper()
	var all []*pipeline.Event
	for len(all) < n {
		// A deadline, not a timing: under make test's load (the race
		// detector, every package at once on 2 cores) one Read of the
		// demo once took over 15 s.
		b := read(t, in, time.Minute)
		all = append(all, b.events...)
		if err := b.ack(context.Background(), nil); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	return all
}

func ids(evs []*pipeline.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, string(ev.Source)+"/"+ev.ID)
	}
	slices.Sort(out)
	return out
}

// waitFor polls cond (a state the server or input reaches, not a time).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func open(t testing.TB, o Options) *Input {
	t.Helper()
	in, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	return in
}
