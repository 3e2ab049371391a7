package kafka

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/internal/streamtest"
)

// countingSink counts the deliveries that went through and that failed.
type countingSink struct {
	pipeline.Sink
	ok, failed atomic.Int64
}

func (c *countingSink) Deliver(ctx context.Context, incs []pipeline.Incident) error {
	err := c.Sink.Deliver(ctx, incs)
	if err != nil {
		c.failed.Add(1)
	} else {
		c.ok.Add(1)
	}
	return err
}

func testPolicy() pipeline.DeliveryPolicy {
	pol := DefaultPolicy()
	pol.BackoffBase, pol.BackoffMax, pol.MaxAttempts = time.Millisecond, 5*time.Millisecond, 100000
	return pol
}

// The broker goes away after a first write, while 100 incidents are
// committed and, in a later run, 10 updates of them; a new broker comes
// up on the same port during that run, which delivers all 110 changes:
// in order per incident, none twice.
func TestOutageThenRecovery(t *testing.T) {
	a, addr := newCluster(t)
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	s := newSink(t, addr, Config{})
	// The writer has connections and metadata when the broker dies.
	if err := s.Deliver(context.Background(), incidents(1, 1)); err != nil {
		t.Fatal(err)
	}
	a.Close()

	st := streamtest.Store(t)
	streamtest.Run(t, st, streamtest.Events(100), s, testPolicy(), 200*time.Millisecond)
	if n := streamtest.Waiting(t, st, "kafka"); n != 100 {
		t.Fatalf("%d waiting after the first run", n)
	}
	cs := &countingSink{Sink: newSink(t, addr, Config{})}
	r := streamtest.Runner(t, st, streamtest.Updates(), cs, testPolicy(), 30*time.Second)
	done := make(chan error, 1)
	go func() { _, err := r.Run(context.Background()); done <- err }()
	// (Runner.SinkStats races with the Runner loading the outbox, so the
	// outage is watched through the store and the sink.)
	deadline := time.Now().Add(20 * time.Second)
	var failedBefore int64 = -1
	for {
		if failedBefore < 0 && streamtest.Waiting(t, st, "kafka") == 110 {
			failedBefore = cs.failed.Load()
		}
		if failedBefore >= 0 && cs.failed.Load() >= failedBefore+3 {
			break
		}
		if cs.ok.Load() != 0 || time.Now().After(deadline) {
			t.Fatalf("during the outage: %d deliveries, %d failed", cs.ok.Load(), cs.failed.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	up := time.Now()
	_, addr2 := newCluster(t, kfake.Ports(port))
	if addr2 != addr {
		t.Fatalf("new broker at %s, not %s", addr2, addr)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stats := r.SinkStats()["kafka"]
	t.Logf("110 changes delivered %s after the broker came back (%d retries in the run)", time.Since(up), stats.Retries)
	if stats.Delivered != 110 || stats.Depth != 0 || stats.DeadLetters != 0 {
		t.Fatalf("after recovery: %+v", stats)
	}
	if left := streamtest.Waiting(t, st, "kafka"); left != 0 {
		t.Fatalf("%d entries left", left)
	}
	recs := readAll(t, addr)
	checkKeyed(t, recs)
	streamtest.CheckOutageDelivery(t, incs(recs))
}

// An incident too large for the broker (message.max.bytes 20000) shares
// its partition's batch with others; it alone is dead-lettered with the
// reason at its first attempt, the nine others arrive once each, and
// `outbox retry` re-drives it.
func TestPermanentFailureIsDeadLettered(t *testing.T) {
	_, addr := newCluster(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "20000"}))
	evs := streamtest.Events(10)
	evs[3].Type = strings.Repeat("x", 30000)
	// Someone shares the big one's partition, so its batch is refused whole.
	part := func(id string) int {
		return kafkago.Murmur2Balancer{Consistent: true}.Balance(kafkago.Message{Key: []byte(id)}, 0, 1, 2)
	}
	shared := 0
	for i := range 10 {
		if i != 3 && part(fmt.Sprintf("inc-e%03d", i)) == part("inc-e003") {
			shared++
		}
	}
	if shared == 0 {
		t.Fatal("no incident shares inc-e003's partition")
	}
	pol := testPolicy()
	st := streamtest.Store(t)
	r := streamtest.Run(t, st, evs, newSink(t, addr, Config{}), pol, 10*time.Second)
	recs := readAll(t, addr)
	checkKeyed(t, recs)
	seen := map[string]int{}
	for _, rec := range recs {
		seen[rec.key]++
	}
	if len(recs) != 9 || len(seen) != 9 || seen["inc-e003"] != 0 {
		t.Fatalf("%d records of %d incidents (inc-e003: %d)", len(recs), len(seen), seen["inc-e003"])
	}
	dead, err := pipeline.ListOutbox(st, "kafka", true)
	if err != nil || len(dead) != 1 || dead[0].Incident.ID != "inc-e003" || dead[0].Attempts != 1 ||
		!strings.Contains(dead[0].LastError, "Message Size Too Large") {
		t.Fatalf("dead letters %+v (%v)", dead, err)
	}
	if s := r.SinkStats()["kafka"]; s.DeadLetters != 1 || s.Dead != 1 || s.Delivered != 9 || s.Depth != 0 {
		t.Fatalf("stats %+v", s)
	}

	// The topic is given room for it; `outbox retry` re-drives it and it
	// alone is written.
	resp, err := (&kafkago.Client{Addr: kafkago.TCP(addr)}).AlterConfigs(context.Background(), &kafkago.AlterConfigsRequest{
		Resources: []kafkago.AlterConfigRequestResource{{ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic,
			Configs: []kafkago.AlterConfigRequestConfig{{Name: "max.message.bytes", Value: "100000"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for res, err := range resp.Errors {
		if err != nil {
			t.Fatalf("altering %v: %v", res, err)
		}
	}
	if n, err := pipeline.RetryOutbox(st, "kafka"); n != 1 || err != nil {
		t.Fatalf("retry: %d %v", n, err)
	}
	streamtest.Run(t, st, nil, newSink(t, addr, Config{}), pol, 10*time.Second)
	recs = readAll(t, addr)
	seen = map[string]int{}
	for _, rec := range recs {
		seen[rec.key]++
	}
	if len(recs) != 10 || len(seen) != 10 || seen["inc-e003"] != 1 {
		t.Fatalf("after the retry: %d records of %d incidents (inc-e003: %d)", len(recs), len(seen), seen["inc-e003"])
	}
	if dead, _ := pipeline.ListOutbox(st, "kafka", true); len(dead) != 0 {
		t.Fatalf("dead letters after the retry: %+v", dead)
	}
}
