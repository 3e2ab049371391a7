package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ecscorr/ecscorr/sources/sqs/sqstest"
)

// peakRSS is a process's high-water resident set, in MiB.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkLiveFalcoLatency is receipt → incident through the real
// binary: b.N Falco alerts POSTed to falco_http at 1,000 a second, each
// opening its own single-event incident, timed from just before its POST
// until its incident is in the jsonl sink's file (so it includes the
// spool's fsync, the commit and the outbox).
//
//	go test -run '^$' -bench BenchmarkLiveFalcoLatency -benchtime 5000x ./cmd/ecscorr
func BenchmarkLiveFalcoLatency(b *testing.B) {
	bin, err := buildBinary()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	rules := filepath.Join(dir, "rules")
	os.MkdirAll(rules, 0o755)
	os.WriteFile(filepath.Join(rules, "one.yaml"), []byte(testRuleOne), 0o644)
	falcoAddr, httpAddr := freeAddr(b), freeAddr(b)
	out := filepath.Join(dir, "incidents.jsonl")
	cfg := filepath.Join(dir, "ecscorr.yaml")
	os.WriteFile(cfg, []byte(`state_dir: `+filepath.Join(dir, "state")+`
rules: [`+rules+`]
http: {listen: `+httpAddr+`}
log_level: warn
sources:
  - type: falco_http
    listen: `+falcoAddr+`
sinks:
  - type: jsonl
    path: `+out+`
`), 0o644)
	p := startRun(b, bin, cfg)
	p.http = httpAddr
	waitFor(b, "ready", func() bool { c, _ := p.get("/readyz"); return c == 200 }, p)

	n := b.N
	sent := make([]time.Time, n)
	seen := make([]time.Time, n)
	var mu sync.Mutex
	done := make(chan struct{})
	go func() { // tail the sink's file
		defer close(done)
		var f *os.File
		for f == nil {
			f, _ = os.Open(out)
			time.Sleep(time.Millisecond)
		}
		defer f.Close()
		rd := bufio.NewReader(f)
		got := 0
		var part []byte
		deadline := time.Now().Add(time.Duration(n)*time.Millisecond + 30*time.Second)
		for got < n && time.Now().Before(deadline) {
			line, err := rd.ReadBytes('\n')
			part = append(part, line...)
			if err != nil {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			now := time.Now()
			var inc struct{ Title string }
			json.Unmarshal(part, &inc)
			part = part[:0]
			// "test one in arn:...:task/prod/<32 hex digits of i>"
			if i := strings.LastIndexByte(inc.Title, '/'); i >= 0 {
				if k, err := strconv.ParseInt(inc.Title[i+1:], 16, 64); err == nil && int(k) < n {
					mu.Lock()
					if seen[k].IsZero() {
						seen[k] = now
						got++
					}
					mu.Unlock()
				}
			}
		}
	}()
	work := make(chan int, 64)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				body := bytes.Replace(testAlert("Test rule one", i%60), []byte("0123456789abcdef0123456789abcdef"), fmt.Appendf(nil, "%032x", i), 1)
				body = bytes.Replace(body, []byte(`"uuid":"`), fmt.Appendf(nil, `"uuid":"%d-`, i), 1)
				mu.Lock()
				sent[i] = time.Now()
				mu.Unlock()
				resp, err := http.Post("http://"+falcoAddr+"/", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	b.ResetTimer()
	tick := time.NewTicker(time.Millisecond)
	for i := range n {
		<-tick.C
		work <- i
	}
	tick.Stop()
	close(work)
	wg.Wait()
	<-done
	b.StopTimer()
	var lat []float64
	for i := range n {
		if !seen[i].IsZero() {
			lat = append(lat, float64(seen[i].Sub(sent[i]).Microseconds())/1000)
		}
	}
	if len(lat) != n {
		b.Fatalf("%d of %d incidents reached the sink", len(lat), n)
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
	b.ReportMetric(peakRSS(p.cmd.Process.Pid), "peak-RSS-MiB")
	// The emission side alone (receipt by the input → the correlator's
	// incident), from the histogram.
	_, m := p.get("/metrics")
	if q, ok := histogramQuantile(m, "ecscorr_receipt_to_incident_seconds", 0.99); ok {
		b.ReportMetric(q*1000, "emit-p99-ms")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
}

// histogramQuantile is the upper bound of the bucket holding quantile q of
// a Prometheus histogram in text format.
func histogramQuantile(text, name string, q float64) (float64, bool) {
	type bk struct{ le, n float64 }
	var bks []bk
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, name+"_bucket{le=\"") {
			continue
		}
		rest := strings.TrimPrefix(l, name+"_bucket{le=\"")
		les, cnt, _ := strings.Cut(rest, "\"} ")
		le, err := strconv.ParseFloat(les, 64)
		if les == "+Inf" {
			le, err = 1e9, nil
		}
		n, err2 := strconv.ParseFloat(cnt, 64)
		if err == nil && err2 == nil {
			bks = append(bks, bk{le, n})
		}
	}
	if len(bks) == 0 || bks[len(bks)-1].n == 0 {
		return 0, false
	}
	total := bks[len(bks)-1].n
	for _, x := range bks {
		if x.n >= q*total {
			return x.le, true
		}
	}
	return 0, false
}

// BenchmarkLiveKafkaThroughput is events/s sustained through the real
// binary from a Kafka topic of CloudTrail records (kfake in this process,
// so the binary's peak RSS is its own): b.N records are produced first,
// then `ecscorr run` applies them all; reported with its peak RSS.
//
//	go test -run '^$' -bench BenchmarkLiveKafkaThroughput -benchtime 300000x ./cmd/ecscorr
func BenchmarkLiveKafkaThroughput(b *testing.B) {
	bin, err := buildBinary()
	if err != nil {
		b.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "trail"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	w := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...), Topic: "trail", Balancer: &kafka.RoundRobin{}, BatchSize: 1000, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireOne}
	t0 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	names := []string{"DescribeTasks", "ListTasks", "GetObject", "AssumeRole", "DescribeServices", "UpdateService", "RegisterTaskDefinition", "RunTask"}
	var msgs []kafka.Message
	for i := range b.N {
		name := names[i%len(names)]
		src := "ecs.amazonaws.com"
		if name == "GetObject" {
			src = "s3.amazonaws.com"
		} else if name == "AssumeRole" {
			src = "sts.amazonaws.com"
		}
		rec := fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:svc-%d","arn":"arn:aws:sts::111122223333:assumed-role/svc/svc-%d","accountId":"111122223333"},"eventTime":"%s","eventSource":"%s","eventName":"%s","awsRegion":"eu-west-1","sourceIPAddress":"10.0.%d.%d","userAgent":"aws-sdk-go-v2/1.30","requestParameters":{"cluster":"prod","maxResults":100},"responseElements":null,"requestID":"%08x-0000-4000-8000-000000000000","eventID":"%08x-1111-4000-8000-000000000000","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management"}`,
			i%50, i%50, t0.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), src, name, i%256, (i/256)%256, i, i)
		msgs = append(msgs, kafka.Message{Value: []byte(rec)})
		if len(msgs) == 5000 {
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		b.Fatal(err)
	}
	w.Close()
	throughput(b, bin, `  - type: kafka
    brokers: [`+c.ListenAddrs()[0]+`]
    topics: [trail]
`)
}

// BenchmarkLiveSQSThroughput is events/s through the real binary from an
// SQS queue of EventBridge "AWS API Call via CloudTrail" messages (one
// event each, as EventBridge delivers them), sqstest in this process.
//
//	go test -run '^$' -bench BenchmarkLiveSQSThroughput -benchtime 50000x ./cmd/ecscorr
func BenchmarkLiveSQSThroughput(b *testing.B) {
	bin, err := buildBinary()
	if err != nil {
		b.Fatal(err)
	}
	srv := sqstest.New()
	defer srv.Close()
	url := srv.CreateQueue("trail", sqstest.QueueOptions{VisibilityTimeout: 60 * time.Second})
	t0 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for i := range b.N {
		at := t0.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
		srv.Send("trail", fmt.Sprintf(`{"version":"0","id":"%08x-2222-4000-8000-000000000000","detail-type":"AWS API Call via CloudTrail","source":"aws.ecs","account":"111122223333","time":"%s","region":"eu-west-1","resources":[],"detail":{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:svc","arn":"arn:aws:sts::111122223333:assumed-role/svc/svc","accountId":"111122223333"},"eventTime":"%s","eventSource":"ecs.amazonaws.com","eventName":"DescribeTasks","awsRegion":"eu-west-1","sourceIPAddress":"10.0.0.1","userAgent":"aws-sdk-go-v2","requestParameters":{"cluster":"prod"},"responseElements":null,"requestID":"%08x-0000-4000-8000-000000000000","eventID":"%08x-1111-4000-8000-000000000000","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management"}}`, i, at, at, i, i))
	}
	throughput(b, bin, `  - type: sqs
    queue_url: `+url+`
    receivers: 8
`, "AWS_ENDPOINT_URL_SQS="+srv.URL, "AWS_ACCESS_KEY_ID=AKIDBENCH", "AWS_SECRET_ACCESS_KEY=bench", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true")
}

// throughput runs the real binary with one source (its YAML list entry)
// and a /dev/null sink, until b.N events are applied, and reports events/s
// and peak RSS. ECSCORR_BENCH_CPUPROFILE=FILE profiles the binary.
func throughput(b *testing.B, bin, source string, env ...string) {
	dir := b.TempDir()
	httpAddr := freeAddr(b)
	cfg := filepath.Join(dir, "ecscorr.yaml")
	os.WriteFile(cfg, []byte(`state_dir: `+filepath.Join(dir, "state")+`
http: {listen: `+httpAddr+`}
log_level: warn
lateness: {cloudtrail: 1s}
idle_after: 1s
sources:
`+source+`sinks:
  - type: jsonl
    path: /dev/null
`), 0o644)
	b.ResetTimer()
	start := time.Now()
	args := []string{"run", "--config", cfg}
	if prof := os.Getenv("ECSCORR_BENCH_CPUPROFILE"); prof != "" {
		args = append(args, "--cpuprofile", prof)
	}
	p := startRunArgs(b, bin, args, env...)
	p.http = httpAddr
	waitFor(b, "all applied", func() bool {
		_, m := p.get("/metrics")
		n, _ := metricValue(m, "ecscorr_events_applied_total")
		return n >= float64(b.N)
	}, p)
	took := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/took.Seconds(), "events/s")
	b.ReportMetric(peakRSS(p.cmd.Process.Pid), "peak-RSS-MiB")
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
}

// metricValue is the value of an unlabelled metric in Prometheus text.
func metricValue(text, name string) (float64, bool) {
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}
