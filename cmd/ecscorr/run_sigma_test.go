package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ecscorr/ecscorr/pipeline"
)

// `run` takes Sigma rules as replay does and decides a Sigma correlation
// on the watermark: the records of testdata/sigma-end, one per Kafka
// message, through the real binary give what replay gives: alice's
// window of two failed logins (event_count lt 3) is decided once the
// 10:30 record moves the watermark (newest - 15m lateness) past its end;
// bob's three are not an incident.
func TestRunSigmaCorrelation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary against Kafka")
	}
	bin := realBinary(t)
	var doc struct{ Records []json.RawMessage }
	data, err := os.ReadFile("testdata/sigma-end/cloudtrail.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.Records) != 6 {
		t.Fatalf("records: %d %v", len(doc.Records), err)
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "trail"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	dir := t.TempDir()
	rules, err := filepath.Abs("testdata/sigma-end/rule.yml")
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	out := filepath.Join(dir, "incidents.jsonl")
	cfg := filepath.Join(dir, "ecscorr.yaml")
	if err := os.WriteFile(cfg, []byte(`state_dir: `+filepath.Join(dir, "state")+`
rules: [`+rules+`]
http:
  listen: `+addr+`
commit_interval: 100ms
sources:
  - type: kafka
    brokers: [`+kc.ListenAddrs()[0]+`]
    topics: [trail]
sinks:
  - type: jsonl
    path: `+out+`
    all_routes: true
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfg)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitReady(t, cmd, addr, stderr)
	w := &kafka.Writer{Addr: kafka.TCP(kc.ListenAddrs()...), Topic: "trail", BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	var msgs []kafka.Message
	for _, r := range doc.Records {
		msgs = append(msgs, kafka.Message{Value: r})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	read := func() []string {
		b, _ := os.ReadFile(out)
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var inc pipeline.Incident
			if line == "" || json.Unmarshal([]byte(line), &inc) != nil {
				continue
			}
			got = append(got, inc.Rule+" "+inc.Key["userIdentity.arn"]+" "+inc.LastSeen.Format("15:04")+" "+string(inc.Status))
		}
		return got
	}
	want := "c-lt arn:aws:iam::111122223333:user/alice 10:05 open"
	deadline := time.Now().Add(60 * time.Second)
	for got := read(); len(got) == 0; got = read() {
		if time.Now().After(deadline) {
			t.Fatalf("no incident in 60s\n%s", tail(stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run exited: %v\n%s", err, tail(stderr.String()))
	}
	if got := read(); len(got) != 1 || got[0] != want {
		t.Errorf("incidents %q, want [%q]", got, want)
	}
}
