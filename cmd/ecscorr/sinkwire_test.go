package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// The config wires a Kafka sink end to end: the demo's critical incidents
// land on the topic keyed by incident id, once each, as JSONL records.
func TestReplayToKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "incidents"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	cfg := filepath.Join(t.TempDir(), "ecscorr.yaml")
	os.WriteFile(cfg, []byte("sinks:\n  - type: kafka\n    brokers: ["+addr+"]\n    topic: incidents\n    min_severity: critical\n    all_routes: true\n"), 0o644)
	code, out, errOut := runCmd(t, "replay", "--config", cfg, "../../testdata/demo")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	want := map[string]bool{}
	for id, inc := range parseIncidents(t, out) {
		if inc.Severity.String() == "critical" {
			want[id] = true
		}
	}
	if len(want) != 4 || !strings.Contains(errOut, "sink kafka: ") {
		t.Fatalf("%d critical incidents in the report, want 4\n%s", len(want), errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := kafkago.DialLeader(ctx, "tcp", addr, "incidents", 0)
	if err != nil {
		t.Fatal(err)
	}
	end, err := conn.ReadLastOffset()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{addr}, Topic: "incidents", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	got := map[string]int{}
	for range end {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(m.Value), `"id":"`+string(m.Key)+`"`) {
			t.Errorf("record keyed %s holds another incident: %.80s", m.Key, m.Value)
		}
		got[string(m.Key)]++
	}
	if len(got) != len(want) {
		t.Fatalf("topic holds %d incidents (%v), want %d", len(got), got, len(want))
	}
	for id := range want {
		if got[id] == 0 {
			t.Errorf("incident %s not on the topic", id)
		}
	}
}
