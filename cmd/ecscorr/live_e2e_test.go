package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/falcosecurity/client-go/pkg/api/outputs"
	"github.com/falcosecurity/client-go/pkg/api/schema"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/securityhub/securityhubtest"
	"github.com/ecscorr/ecscorr/sinks/slack/slacktest"
	"github.com/ecscorr/ecscorr/sources/cwlogs/cwltest"
	"github.com/ecscorr/ecscorr/sources/s3/s3test"
	"github.com/ecscorr/ecscorr/sources/sqs/sqstest"

	"github.com/ecscorr/ecscorr/internal/testfix"
)

// The demo story's records, split at liveSplit into what the first run of
// the live test gets and what the second gets, plus one benign record per
// source at liveTail that moves every source's watermark past the story
// (live, decisions wait for the watermark; replay decides at its end).
var (
	liveSplit = time.Date(2023, 7, 10, 12, 16, 0, 0, time.UTC)
	liveTail  = time.Date(2023, 7, 10, 14, 0, 0, 0, time.UTC)
)

const (
	demoAccount = "123837392027"
	demoPrefix  = "AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/"
	ciGroup     = "/aws/ecs/containerinsights/payments-prod/performance"
	demoRole    = "arn:aws:iam::123837392027:role/ecscorr-import"
)

// liveStory is the demo's records by the way the live test feeds them.
type liveStory struct {
	noise    [2][]json.RawMessage // Stratus CloudTrail records (s3 polling), before/after the split
	attack   [2][]json.RawMessage // the story's CloudTrail records (S3 notifications on SQS)
	findings [2][]json.RawMessage // GuardDuty findings (EventBridge on SQS; then an export object)
	ecs      [2][]json.RawMessage // ECS task state changes (Kafka)
	falco    [2][]json.RawMessage // Falco alerts (falco_http), except the benign one
	benign   json.RawMessage      // the benign Falco alert (falco_grpc)
	ci       [2][]cwlEvent        // Container Insights log events (CloudWatch Logs)
	tails    map[string]json.RawMessage
}

type cwlEvent struct {
	stream string
	ts     int64
	msg    string
}

func phaseOf(t time.Time) int {
	if t.Before(liveSplit) {
		return 0
	}
	return 1
}

func gunzipFile(t *testing.T, path string) []byte { return testfix.Gunzip(t, path) }

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func jsonLines(t *testing.T, b []byte) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
			out = append(out, json.RawMessage(bytes.Clone(l)))
		}
	}
	return out
}

func timeOf(t *testing.T, rec json.RawMessage, member string) time.Time {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[member].(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s of %.80s: %v", member, rec, err)
	}
	return ts
}

func loadLiveStory(t *testing.T) *liveStory {
	t.Helper()
	demo := "../../testdata/demo"
	s := &liveStory{tails: map[string]json.RawMessage{}}
	trails, _ := filepath.Glob(filepath.Join(demo, demoPrefix[:len(demoPrefix)-1], "*.json.gz"))
	if len(trails) != 3 {
		t.Fatalf("%d CloudTrail objects in the demo", len(trails))
	}
	for _, p := range trails {
		var obj struct{ Records []json.RawMessage }
		if err := json.Unmarshal(gunzipFile(t, p), &obj); err != nil {
			t.Fatal(err)
		}
		dst := &s.noise
		if strings.Contains(p, "dEm0aTtAcKsToRy") {
			dst = &s.attack
		}
		for _, r := range obj.Records {
			ph := phaseOf(timeOf(t, r, "eventTime"))
			dst[ph] = append(dst[ph], r)
		}
	}
	gd, _ := filepath.Glob(filepath.Join(demo, "AWSLogs", demoAccount, "GuardDuty/us-east-1/2023/07/10/*.jsonl.gz"))
	for _, r := range jsonLines(t, gunzipFile(t, gd[0])) {
		ph := phaseOf(timeOf(t, r, "updatedAt"))
		s.findings[ph] = append(s.findings[ph], r)
	}
	b, err := os.ReadFile(filepath.Join(demo, "eventbridge/ecs-task-state-change.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range jsonLines(t, b) {
		ph := phaseOf(timeOf(t, r, "time"))
		s.ecs[ph] = append(s.ecs[ph], r)
	}
	b, err = os.ReadFile(filepath.Join(demo, "falco/falco-events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range jsonLines(t, b) {
		if bytes.Contains(r, []byte(`"Read sensitive file untrusted"`)) {
			s.benign = r
			continue
		}
		ph := phaseOf(timeOf(t, r, "time"))
		s.falco[ph] = append(s.falco[ph], r)
	}
	for _, r := range jsonLines(t, gunzipFile(t, filepath.Join(demo, "container-insights/performance-subscription.jsonl.gz"))) {
		var p struct {
			LogStream string
			LogEvents []struct {
				Timestamp int64
				Message   string
			}
		}
		if err := json.Unmarshal(r, &p); err != nil {
			t.Fatal(err)
		}
		for _, e := range p.LogEvents {
			ph := phaseOf(time.UnixMilli(e.Timestamp))
			s.ci[ph] = append(s.ci[ph], cwlEvent{p.LogStream, e.Timestamp, e.Message})
		}
	}
	if s.benign == nil || len(s.falco[0]) == 0 || len(s.falco[1]) == 0 || len(s.ci[1]) == 0 || len(s.attack[1]) == 0 || len(s.findings[1]) == 0 || len(s.ecs[1]) == 0 {
		t.Fatal("the demo story does not span the split")
	}
	tail := liveTail.Format(time.RFC3339)
	s.tails["cloudtrail"] = json.RawMessage(`{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:ci","arn":"arn:aws:sts::` + demoAccount + `:assumed-role/ci/ci","accountId":"` + demoAccount + `"},"eventTime":"` + tail + `","eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","awsRegion":"us-east-1","sourceIPAddress":"10.0.0.9","userAgent":"aws-cli/2.13.0","requestParameters":null,"responseElements":null,"requestID":"5a1f0000-0000-4000-8000-00000000ta11","eventID":"5a1f0000-0000-4000-8000-00000000e0e1","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"` + demoAccount + `","eventCategory":"Management"}`)
	var sample map[string]any
	for _, ph := range s.findings {
		for _, r := range ph {
			if bytes.Contains(r, []byte(`"sample":true`)) {
				json.Unmarshal(r, &sample)
			}
		}
	}
	if sample == nil {
		t.Fatal("no sample finding in the demo")
	}
	sample["id"], sample["updatedAt"], sample["createdAt"] = "a2c4e6f8b0d24f6a8c0e2a4c6e8f0aff", liveTail.Format("2006-01-02T15:04:05.000Z"), liveTail.Format("2006-01-02T15:04:05.000Z")
	s.tails["guardduty"], _ = json.Marshal(sample)
	var ecs map[string]any
	json.Unmarshal(s.ecs[0][0], &ecs)
	ecs["id"], ecs["time"] = "8d1f0a7e-00ff-4c2b-9e3d-5a6b7c8d9eff", tail
	s.tails["ecs"], _ = json.Marshal(ecs)
	var fa map[string]any
	json.Unmarshal(s.benign, &fa)
	fa["time"], fa["uuid"] = liveTail.Format(time.RFC3339Nano), "0b7a5e4c-0000-4000-8000-0000000000ff"
	fa["output"] = "14:00:00.000000000: Warning Sensitive file opened for reading by non-trusted program | file=/etc/passwd process=nginx container_id=b1e2d3c4b5a6"
	s.tails["falco"], _ = json.Marshal(fa)
	var ci map[string]any
	json.Unmarshal([]byte(s.ci[0][0].msg), &ci)
	ci["TaskId"], ci["Timestamp"], ci["CreatedAt"] = "ffffffffffffffffffffffffffffffff", liveTail.UnixMilli(), liveTail.UnixMilli()
	s.tails["container_insights"], _ = json.Marshal(ci)
	return s
}

// writeReference writes the tails as an archive folder for replay: the
// demo folder plus it is what the live test feeds.
func (s *liveStory) writeReference(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tails")
	put := func(rel string, b []byte) {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put(demoPrefix+"123837392027_CloudTrail_us-east-1_20230710T1400Z_tail.json.gz", gzipBytes([]byte(`{"Records":[`+string(s.tails["cloudtrail"])+`]}`)))
	put("guardduty/tail.jsonl", append(s.tails["guardduty"], '\n'))
	put("eventbridge/tail.jsonl", append(s.tails["ecs"], '\n'))
	put("falco/tail.jsonl", append(s.tails["falco"], '\n'))
	sub, _ := json.Marshal(map[string]any{"messageType": "DATA_MESSAGE", "owner": demoAccount, "logGroup": ciGroup, "logStream": s.ci[0][0].stream,
		"subscriptionFilters": []string{"ecscorr"}, "logEvents": []map[string]any{{"id": "40000000000000000000000000000000000000000000000000000000", "timestamp": liveTail.UnixMilli(), "message": string(s.tails["container_insights"])}}})
	put("container-insights/tail.jsonl.gz", gzipBytes(append(sub, '\n')))
	return dir
}

// falcoGRPC serves client-go's outputs service as Falco does: each request
// on a Sub stream is answered with the alerts queued so far.
type falcoGRPC struct {
	outputs.UnimplementedServiceServer
	q chan *outputs.Response
}

func (f *falcoGRPC) Sub(st outputs.Service_SubServer) error {
	for {
		if _, err := st.Recv(); err != nil {
			return err
		}
	drain:
		for {
			select {
			case r := <-f.q:
				if err := st.Send(r); err != nil {
					f.q <- r // not sent: the next stream sends it
					return err
				}
			default:
				break drain
			}
		}
	}
}

// falcoResponse is a json_output alert as Falco's gRPC output gives it.
func falcoResponse(t *testing.T, alert json.RawMessage) *outputs.Response {
	t.Helper()
	var a struct {
		Time         time.Time
		Priority     string
		Rule         string
		Output       string
		Source       string
		Hostname     string
		Tags         []string
		OutputFields map[string]any `json:"output_fields"`
	}
	if err := json.Unmarshal(alert, &a); err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for k, v := range a.OutputFields {
		switch v := v.(type) {
		case string:
			fields[k] = v
		case nil:
			fields[k] = "<NA>"
		default:
			b, _ := json.Marshal(v)
			fields[k] = string(b)
		}
	}
	p, ok := schema.Priority_value[strings.ToUpper(a.Priority)]
	if !ok {
		t.Fatalf("priority %q", a.Priority)
	}
	return &outputs.Response{Time: timestamppb.New(a.Time), Priority: schema.Priority(p), Rule: a.Rule, Output: a.Output,
		Source: a.Source, Hostname: a.Hostname, Tags: a.Tags, OutputFields: fields}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// liveRig is every service the live test's ecscorr talks to.
type liveRig struct {
	sqs      *sqstest.Server
	queueURL string
	s3       *s3test.Server
	cwl      *cwltest.Server
	kafka    *kfake.Cluster
	falco    *falcoGRPC
	sock     string
	slack    *slacktest.Server
	sh       *securityhubtest.Server
	falcoURL string
	httpAddr string
	dir      string
	cfg      string
	env      []string
}

func newLiveRig(t *testing.T) *liveRig {
	t.Helper()
	r := &liveRig{dir: t.TempDir(), slack: slacktest.New(t), sh: securityhubtest.New(t)}
	r.sh.AddRole(demoRole, demoAccount)
	r.sqs = sqstest.New()
	t.Cleanup(r.sqs.Close)
	r.queueURL = r.sqs.CreateQueue("ecscorr-events", sqstest.QueueOptions{VisibilityTimeout: 3 * time.Second})
	r.s3 = s3test.New()
	t.Cleanup(r.s3.Close)
	for _, b := range []string{"archive", "notified", "findings"} {
		if err := r.s3.Backend.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	r.cwl = cwltest.New(cwltest.Options{AccessKeyID: securityhubtest.AccessKeyID, SecretAccessKey: securityhubtest.SecretAccessKey,
		Region: securityhubtest.Region, Account: demoAccount})
	t.Cleanup(r.cwl.Close)
	r.cwl.CreateGroup(ciGroup)
	var err error
	r.kafka, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "ecs-events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.kafka.Close)
	r.falco = &falcoGRPC{q: make(chan *outputs.Response, 100)}
	r.sock = filepath.Join(r.dir, "falco.sock")
	ln, err := net.Listen("unix", r.sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	outputs.RegisterServiceServer(gs, r.falco)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	falcoAddr := freeAddr(t)
	r.falcoURL = "http://" + falcoAddr + "/"
	r.httpAddr = freeAddr(t)
	r.cfg = filepath.Join(r.dir, "ecscorr.yaml")
	cfg := `state_dir: ` + filepath.Join(r.dir, "state") + `
rules: [builtin]
http:
  listen: ` + r.httpAddr + `
dead_letter: ` + filepath.Join(r.dir, "dead.jsonl") + `
commit_interval: 100ms
idle_after: 8s
sources:
  - type: sqs
    queue_url: ${QUEUE_URL}
    wait: 1s
  - type: s3
    bucket: archive
    prefix: ` + demoPrefix + `
    interval: 500ms
  - type: cloudwatch_logs
    clusters: [payments-prod]
    interval: 500ms
    start: 2000d
  - type: kafka
    brokers: [` + r.kafka.ListenAddrs()[0] + `]
    topics: [ecs-events]
  - type: falco_http
    listen: ` + falcoAddr + `
  - type: falco_grpc
    endpoints: [unix://` + r.sock + `]
sinks:
  - type: slack
    webhook_url: ${SLACK_WEBHOOK_URL}
    all_routes: true
    rate: 200
    backoff: 10ms
  - type: securityhub
    region: us-east-1
    account_roles: {"` + demoAccount + `": ` + demoRole + `}
    all_routes: true
    backoff: 10ms
  - type: jsonl
    path: ` + filepath.Join(r.dir, "incidents.jsonl") + `
    all_routes: true
`
	if err := os.WriteFile(r.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r.env = append(os.Environ(), "QUEUE_URL="+r.queueURL, "SLACK_WEBHOOK_URL="+r.slack.WebhookURL(),
		"AWS_ENDPOINT_URL_SQS="+r.sqs.URL, "AWS_ENDPOINT_URL_S3="+r.s3.URL, "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS="+r.cwl.URL)
	for k, v := range r.sh.Env() {
		r.env = append(r.env, k+"="+v)
	}
	return r
}

// feed gives phase ph of the story to every source, each in event-time
// order, as the services would deliver it.
func (r *liveRig) feed(t *testing.T, s *liveStory, ph int) {
	t.Helper()
	ctx := context.Background()
	// ECS task state changes on Kafka first: a task's state change comes
	// long before alerts from inside it. (Until its link is learned an
	// alert waits in order; meanwhile a GuardDuty finding, which names its
	// task, could open the same incident first.)
	w := &kafka.Writer{Addr: kafka.TCP(r.kafka.ListenAddrs()...), Topic: "ecs-events", Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	var msgs []kafka.Message
	for _, e := range s.ecs[ph] {
		msgs = append(msgs, kafka.Message{Key: []byte("payments-prod"), Value: e})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	want := len(s.ecs[ph])
	deadline := time.Now().Add(30 * time.Second)
	for r.received(t)["kafka:ecs-events"] < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// Falco first: its alerts arrive within a second, GuardDuty's findings
	// minutes later. (With eager: true a single-event incident is named
	// by the first of its events to arrive; fed the other way round the
	// reverse-shell incident gets the GuardDuty finding's id, not replay's:
	// docs/operations.md.)
	for _, a := range s.falco[ph] {
		r.postFalco(t, a)
	}
	// The benign alert over gRPC; again in the second part: a redelivery,
	// skipped.
	r.falco.q <- falcoResponse(t, s.benign)
	// CloudTrail noise: an S3 object per phase, read by prefix polling.
	objs := [2]string{"123837392027_CloudTrail_us-east-1_20230710T1210Z_noise.json.gz", "123837392027_CloudTrail_us-east-1_20230710T1240Z_noise.json.gz"}
	recs := func(rs []json.RawMessage) []byte {
		b, _ := json.Marshal(map[string]any{"Records": rs})
		return gzipBytes(b)
	}
	r.s3.Put("archive", demoPrefix+objs[ph], recs(s.noise[ph]))
	// The story's CloudTrail: an object in another bucket, notified.
	key := fmt.Sprintf("AWSLogs/%s/CloudTrail/us-east-1/2023/07/10/%s_CloudTrail_us-east-1_20230710T12%d5Z_story.json.gz", demoAccount, demoAccount, ph)
	r.s3.Put("notified", key, recs(s.attack[ph]))
	note, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
		"eventTime": time.Now().UTC().Format(time.RFC3339), "eventName": "ObjectCreated:Put",
		"s3": map[string]any{"bucket": map[string]any{"name": "notified"}, "object": map[string]any{"key": key}}}}})
	r.sqs.Send("ecscorr-events", string(note))
	// GuardDuty: findings through EventBridge first, then an export object.
	if ph == 0 {
		for i, f := range s.findings[0] {
			env, _ := json.Marshal(map[string]any{"version": "0", "id": fmt.Sprintf("9c1d0000-0000-4000-8000-%012d", i), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
				"account": demoAccount, "time": timeOf(t, f, "updatedAt").Format(time.RFC3339), "region": "us-east-1", "resources": []string{}, "detail": f})
			r.sqs.Send("ecscorr-events", string(env))
		}
	} else {
		var b []byte
		for _, f := range s.findings[1] {
			b = append(append(b, f...), '\n')
		}
		gkey := "AWSLogs/" + demoAccount + "/GuardDuty/us-east-1/2023/07/10/export-2.jsonl.gz"
		r.s3.Put("findings", gkey, gzipBytes(b))
		ev, _ := json.Marshal(map[string]any{"version": "0", "id": "s3-object-created-1", "detail-type": "Object Created", "source": "aws.s3",
			"account": demoAccount, "time": time.Now().UTC().Format(time.RFC3339), "region": "us-east-1", "resources": []string{"arn:aws:s3:::findings"},
			"detail": map[string]any{"version": "0", "bucket": map[string]any{"name": "findings"}, "object": map[string]any{"key": gkey, "size": len(b)}, "reason": "PutObject"}})
		r.sqs.Send("ecscorr-events", string(ev))
	}
	// Container Insights on CloudWatch Logs.
	ci := s.ci[ph]
	for _, e := range ci {
		r.cwl.Put(ciGroup, e.stream, cwltest.Event{Timestamp: e.ts, Message: e.msg})
	}
	// Falco: alerts POSTed by http_output; the benign one (and the tail)
	// from the gRPC output.
}

func (r *liveRig) postFalco(t *testing.T, alert json.RawMessage) {
	t.Helper()
	resp, err := http.Post(r.falcoURL, "application/json", bytes.NewReader(alert))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("falco_http answered %d", resp.StatusCode)
	}
}

// feedTails gives each source its record at liveTail, which moves every
// watermark past the story.
func (r *liveRig) feedTails(t *testing.T, s *liveStory) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"Records": []json.RawMessage{s.tails["cloudtrail"]}})
	r.s3.Put("archive", demoPrefix+"123837392027_CloudTrail_us-east-1_20230710T1400Z_tail.json.gz", gzipBytes(b))
	env, _ := json.Marshal(map[string]any{"version": "0", "id": "9c1d0000-0000-4000-8000-0000000000ff", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
		"account": demoAccount, "time": liveTail.Format(time.RFC3339), "region": "us-east-1", "resources": []string{}, "detail": s.tails["guardduty"]})
	r.sqs.Send("ecscorr-events", string(env))
	w := &kafka.Writer{Addr: kafka.TCP(r.kafka.ListenAddrs()...), Topic: "ecs-events", Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("payments-prod"), Value: s.tails["ecs"]}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r.cwl.Put(ciGroup, s.ci[0][0].stream, cwltest.Event{Timestamp: liveTail.UnixMilli(), Message: string(s.tails["container_insights"])})
	r.postFalco(t, s.tails["falco"])
}

// received is what /metrics says each input got since the start.
func (r *liveRig) received(t *testing.T) map[string]int {
	out := map[string]int{}
	for _, l := range strings.Split(r.metrics(t), "\n") {
		if !strings.HasPrefix(l, "ecscorr_events_received_total{input=\"") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(l, "ecscorr_events_received_total{input=\""), "\"")
		var n float64
		fmt.Sscanf(l[strings.LastIndexByte(l, ' ')+1:], "%g", &n)
		out[name] += int(n)
	}
	return out
}

func (r *liveRig) start(t *testing.T, bin string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", r.cfg)
	cmd.Env = r.env
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, cmd, r.httpAddr, stderr)
	return cmd, stderr
}

// waitReady waits for a started `ecscorr run` to say it is ready (state
// open, every source connected) on its http listen address.
func waitReady(t *testing.T, cmd *exec.Cmd, addr string, stderr *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("not ready in 30s\n%s", tail(stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// incidentsSoFar is the last state of each incident in the jsonl sink.
func (r *liveRig) incidentsSoFar(t *testing.T) map[string]pipeline.Incident {
	b, _ := os.ReadFile(filepath.Join(r.dir, "incidents.jsonl"))
	if len(b) > 0 && b[len(b)-1] != '\n' { // a line being written
		b = b[:bytes.LastIndexByte(b, '\n')+1]
	}
	return parseIncidents(t, string(b))
}

func incidentSet(t *testing.T, m map[string]pipeline.Incident) []string {
	var out []string
	for _, inc := range m {
		b, err := json.Marshal(inc)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

// TestLiveEqualsReplay runs the real binary live against servers speaking
// SQS, S3, CloudWatch Logs, Kafka, Falco gRPC and HTTP, Slack and Security
// Hub; feeds the first part of the demo story, SIGKILLs it once incidents
// are flowing, restarts it and feeds the rest: the incidents equal replay's
// of the same records, every one reaches Slack once and Security Hub holds
// exactly one finding per incident.
func TestLiveEqualsReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary against six services")
	}
	t.Parallel() // mostly waiting: let the package's other tests run meanwhile
	bin := realBinary(t)
	story := loadLiveStory(t)
	tails := story.writeReference(t)
	out, err := exec.Command(bin, "replay", "--quiet", "../../testdata/demo", tails).Output()
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	want := parseIncidents(t, string(out))
	if len(want) < 10 {
		t.Fatalf("replay found %d incidents", len(want))
	}

	r := newLiveRig(t)
	cmd, stderr := r.start(t, bin)
	r.feed(t, story, 0)
	// Kill once some incidents were delivered and the first part is in.
	deadline := time.Now().Add(60 * time.Second)
	for len(r.incidentsSoFar(t)) < 3 || len(r.slack.Messages()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no incidents from the first part in 60s\n%s\n%s", tail(stderr.String()), r.metrics(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	first := len(r.incidentsSoFar(t))
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	t.Logf("first run SIGKILLed with %d incidents out", first)

	cmd, stderr = r.start(t, bin)
	defer cmd.Process.Kill()
	r.feed(t, story, 1)
	// Every input has the second part before the tails move the
	// watermarks on (an input the Runner has not heard from holds the
	// watermark back only for idle_after).
	need := map[string]int{
		"s3:archive/" + demoPrefix: len(story.noise[1]), "sqs:ecscorr-events": len(story.attack[1]) + len(story.findings[1]),
		"cloudwatch_logs:payments-prod": len(story.ci[1]), "kafka:ecs-events": len(story.ecs[1]), "falco_grpc": 1,
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		got := r.received(t)
		short := ""
		for in, n := range need {
			if got[in] < n {
				short += fmt.Sprintf(" %s %d/%d", in, got[in], n)
			}
		}
		if short == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second part did not arrive:%s\n%s", short, tail(stderr.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.feedTails(t, story)
	wantSet := incidentSet(t, want)
	deadline = time.Now().Add(90 * time.Second)
	var got []string
	for {
		got = incidentSet(t, r.incidentsSoFar(t))
		if slices.Equal(got, wantSet) && r.sh.State().Stored == len(want) && r.slackAlerted() == len(want) {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !slices.Equal(got, wantSet) {
		t.Errorf("live gives %d incidents, replay %d", len(got), len(wantSet))
		gm := r.incidentsSoFar(t)
		for id, w := range want {
			g, ok := gm[id]
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(w)
			if !ok {
				t.Errorf("missing live: %s (%s)", id, w.Rule)
			} else if string(gb) != string(wb) {
				t.Errorf("differs: %s\n live   %s\n replay %s", id, gb, wb)
			}
		}
		t.Logf("metrics:\n%s", r.metrics(t))
		for id, g := range gm {
			if _, ok := want[id]; !ok {
				t.Errorf("only live: %s (%s)", id, g.Rule)
			}
		}
	}
	st := r.sh.State()
	if st.Stored != len(want) || len(st.Invalid) > 0 || len(st.SignatureErrors) > 0 {
		t.Errorf("Security Hub holds %d findings, want %d (invalid %q, signature errors %q)", st.Stored, len(want), st.Invalid, st.SignatureErrors)
	}
	for _, im := range st.Imports {
		if _, ok := want[im.ID]; !ok {
			t.Errorf("Security Hub got a finding for %s, which replay does not have", im.ID)
		}
	}
	alerts := map[string]int{}
	for _, m := range r.slack.Messages() {
		if m.IsAlert() {
			alerts[m.Incident]++
		}
	}
	// A webhook cannot be asked whether it took a message: a kill between
	// Slack taking an alert and the outbox recording it posts it again
	// (at least once), so one duplicate is allowed, as in
	// TestSinksSurviveSIGKILL.
	dups := 0
	for id := range want {
		switch n := alerts[id]; {
		case n == 0 || n > 2:
			t.Errorf("Slack alerted %s %d times", id, n)
		case n == 2:
			dups++
		}
	}
	if dups > 1 {
		t.Errorf("%d incidents alerted twice", dups)
	}
	// Operations: metrics say what happened.
	resp, err := http.Get("http://" + r.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`ecscorr_events_received_total{input="falco_grpc",source="falco"}`, `ecscorr_outbox_depth{sink="securityhub"} 0`,
		`ecscorr_receipt_to_incident_seconds_count`, `ecscorr_input_ready{input="sqs:ecscorr-events"} 1`} {
		if !bytes.Contains(metrics, []byte(m)) {
			t.Errorf("metrics lack %s", m)
		}
	}
	// SIGTERM: a clean stop within ECS's 30 s.
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, tail(stderr.String()))
	}
	if d := time.Since(t0); d > 30*time.Second {
		t.Errorf("SIGTERM took %v", d)
	}
	if strings.Contains(stderr.String(), slacktest.WebhookSecret) {
		t.Errorf("the Slack webhook reached the log")
	}
}

// slackAlerted is the number of incidents alerted.
func (r *liveRig) slackAlerted() int {
	seen := map[string]bool{}
	for _, m := range r.slack.Messages() {
		if m.IsAlert() {
			seen[m.Incident] = true
		}
	}
	return len(seen)
}

func tail(s string) string {
	if len(s) > 6000 {
		return "..." + s[len(s)-6000:]
	}
	return s
}

// metrics are the ecscorr_ lines of /metrics, for failure reports.
func (r *liveRig) metrics(t *testing.T) string {
	resp, err := http.Get("http://" + r.httpAddr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "ecscorr_") && !strings.Contains(l, "_bucket") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
