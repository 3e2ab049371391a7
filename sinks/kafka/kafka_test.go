package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/file"
	"github.com/ecscorr/ecscorr/sinks/internal/streamtest"
)

const (
	topic      = "incidents"
	partitions = 3
)

func newCluster(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

func newSink(t *testing.T, addr string, cfg Config) *Sink {
	t.Helper()
	cfg.Brokers, cfg.Topic, cfg.Timeout = []string{addr}, topic, 2*time.Second
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func incident(i, count int) pipeline.Incident {
	return pipeline.Incident{ID: fmt.Sprintf("inc-%03d", i), Rule: "r", Title: "Reverse shell <in> task", Severity: pipeline.SeverityHigh,
		Key: map[string]string{"task_arn": streamtest.TaskARN(fmt.Sprint(i))}, FirstSeen: streamtest.T0, LastSeen: streamtest.T0,
		Count: count, Status: pipeline.IncidentOpen}
}

func incidents(n, count int) []pipeline.Incident {
	out := make([]pipeline.Incident, n)
	for i := range out {
		out[i] = incident(i, count)
	}
	return out
}

// record is one message read back.
type record struct {
	partition int
	offset    int64
	key       string
	value     []byte
	inc       pipeline.Incident
}

// readAll reads every record of the topic with kafka-go, partition by
// partition in offset order.
func readAll(t *testing.T, addr string) []record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []record
	for p := range partitions {
		conn, err := kafkago.DialLeader(ctx, "tcp", addr, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		end, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
		for range end {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("partition %d: %v", p, err)
			}
			rec := record{partition: m.Partition, offset: m.Offset, key: string(m.Key), value: m.Value}
			if err := json.Unmarshal(m.Value, &rec.inc); err != nil {
				t.Fatalf("partition %d offset %d: %v", p, m.Offset, err)
			}
			out = append(out, rec)
		}
		r.Close()
	}
	return out
}

// checkKeyed checks that every record is keyed by its incident's id and
// that each incident's records share one partition.
func checkKeyed(t *testing.T, recs []record) {
	t.Helper()
	part := map[string]int{}
	for _, r := range recs {
		if r.key != r.inc.ID {
			t.Fatalf("record key %q holds incident %q", r.key, r.inc.ID)
		}
		if p, ok := part[r.key]; ok && p != r.partition {
			t.Fatalf("%s in partitions %d and %d", r.key, p, r.partition)
		}
		part[r.key] = r.partition
	}
}

func incs(recs []record) []pipeline.Incident {
	out := make([]pipeline.Incident, len(recs))
	for i, r := range recs {
		out[i] = r.inc
	}
	return out
}

// 30 incidents, then an update of each: 60 records, the value the JSONL
// record, keyed by id, an incident's two changes in one partition in
// order, every Produce asking for acks from all replicas.
func TestWritesKeyedAcked(t *testing.T) {
	c, addr := newCluster(t)
	var mu sync.Mutex
	acks := map[int16]int{}
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		acks[req.(*kmsg.ProduceRequest).Acks]++
		mu.Unlock()
		return nil, nil, false
	})
	s := newSink(t, addr, Config{})
	first, second := incidents(30, 1), incidents(30, 2)
	start := time.Now()
	for _, batch := range [][]pipeline.Incident{first, second} {
		if err := s.Deliver(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	d := time.Since(start)
	if d > 2*time.Second {
		t.Fatalf("two deliveries took %s: the batch timeout is not short", d)
	}
	t.Logf("2 deliveries of 30 records: %s", d)
	recs := readAll(t, addr)
	if len(recs) != 60 {
		t.Fatalf("%d records, want 60", len(recs))
	}
	checkKeyed(t, recs)
	byID := map[string][]record{}
	perPartition := map[int]int{}
	for _, r := range recs {
		byID[r.key] = append(byID[r.key], r)
		perPartition[r.partition]++
	}
	for i, inc := range first {
		rs := byID[inc.ID]
		if len(rs) != 2 || rs[0].inc.Count != 1 || rs[1].inc.Count != 2 || rs[0].offset >= rs[1].offset {
			t.Fatalf("%s: %d records", inc.ID, len(rs))
		}
		want, _ := file.Record(&second[i])
		if string(rs[1].value) != string(want) {
			t.Fatalf("%s value:\n%s\nwant\n%s", inc.ID, rs[1].value, want)
		}
		// The Java client's partition for the key.
		if p := (kafkago.Murmur2Balancer{Consistent: true}).Balance(kafkago.Message{Key: []byte(inc.ID)}, 0, 1, 2); p != rs[0].partition {
			t.Fatalf("%s in partition %d, murmur2 says %d", inc.ID, rs[0].partition, p)
		}
	}
	if len(perPartition) != partitions {
		t.Fatalf("records in %d partitions: %v", len(perPartition), perPartition)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acks) != 1 || acks[-1] == 0 {
		t.Fatalf("produce acks %v, want all -1", acks)
	}
}

// Broker errors are classified per record: not authorised is permanent,
// not the leader is retried and goes through once the broker recovers; a
// record over MaxMessageBytes is permanent without being sent.
func TestDeliverErrors(t *testing.T) {
	c, addr := newCluster(t)
	s := newSink(t, addr, Config{MaxMessageBytes: 2000})
	ctx := context.Background()

	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.TopicAuthorizationFailed, Count: -1})
	err := s.Deliver(ctx, incidents(3, 1))
	var be *pipeline.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 3 {
		t.Fatalf("not authorised: %v", err)
	}
	for id, e := range be.Failed {
		if !errors.Is(e, pipeline.ErrPermanent) || !strings.Contains(e.Error(), "Topic Authorization Failed") {
			t.Fatalf("%s: %v", id, e)
		}
	}
	h.Remove()

	h = c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotLeaderForPartition, Count: -1})
	err = s.Deliver(ctx, incidents(3, 1))
	if !errors.As(err, &be) || len(be.Failed) != 3 {
		t.Fatalf("not the leader: %v", err)
	}
	for id, e := range be.Failed {
		if errors.Is(e, pipeline.ErrPermanent) || !strings.Contains(e.Error(), "Not Leader For Partition") {
			t.Fatalf("%s: %v", id, e)
		}
	}
	h.Remove()

	big := incidents(3, 1)
	big[1].Summary = strings.Repeat("x", 3000)
	err = s.Deliver(ctx, big)
	if !errors.As(err, &be) || len(be.Failed) != 1 || !errors.Is(be.Failed["inc-001"], pipeline.ErrPermanent) ||
		!strings.Contains(be.Failed["inc-001"].Error(), "over the 2000-byte limit") {
		t.Fatalf("too large: %v", err)
	}
	recs := readAll(t, addr)
	if len(recs) != 2 || recs[0].inc.ID == "inc-001" || recs[1].inc.ID == "inc-001" {
		t.Fatalf("%d records after the faults", len(recs))
	}
	if err := s.Deliver(ctx, incidents(3, 2)); err != nil {
		t.Fatal(err)
	}
	if recs := readAll(t, addr); len(recs) != 5 {
		t.Fatalf("%d records, want 5", len(recs))
	}
}

func TestNewNeedsBrokersAndTopic(t *testing.T) {
	if _, err := New(Config{Topic: topic}); err == nil || err.Error() != "kafka: no brokers" {
		t.Fatalf("err %v", err)
	}
	if _, err := New(Config{Brokers: []string{"127.0.0.1:9092"}}); err == nil || err.Error() != "kafka: no topic" {
		t.Fatalf("err %v", err)
	}
	s, err := New(Config{Brokers: []string{"127.0.0.1:9092"}, Topic: topic})
	if err != nil || s.Name() != "kafka" || s.Mode() != pipeline.SinkStream || s.w.RequiredAcks != kafkago.RequireAll || s.w.Async || s.w.BatchTimeout != 5*time.Millisecond {
		t.Fatalf("%+v %v", s, err)
	}
	s.Close(context.Background())
}
