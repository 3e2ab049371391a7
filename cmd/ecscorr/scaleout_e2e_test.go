package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ecscorr/ecscorr/pipeline"
)

// scaleRig is one ingest and some correlate instances of the real binary
// around a kfake broker: the ingest reads the story's raw records from a
// topic, the correlate instances write incidents to JSONL files.
type scaleRig struct {
	bin, dir, broker string
	n                int  // correlate instances started
	changelog        bool // correlate instances restore moved state from a changelog
}

func (r *scaleRig) config(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(r.dir, name+".yaml")
	cfg := "state_dir: " + filepath.Join(r.dir, name) + "\nhttp:\n  listen: " + freeAddr(t) + "\ncommit_interval: 100ms\nidle_after: 1s\n" +
		"kafka:\n  brokers: [" + r.broker + "]\n  events_topic: ecscorr-events\n  group: ecscorr\n  lateness: 2s\n  session_timeout: 6s\n"
	if r.changelog && strings.HasPrefix(name, "correlate") {
		cfg += "  changelog_topic: ecscorr-changelog\n"
	}
	cfg += body
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (r *scaleRig) start(t *testing.T, cfg string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(r.bin, "run", "--config", cfg)
	var stderr syncBuffer
	cmd.Stderr, cmd.Stdout = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &stderr
}

func (r *scaleRig) correlate(t *testing.T) (*exec.Cmd, *syncBuffer, string) {
	t.Helper()
	r.n++
	out := filepath.Join(r.dir, fmt.Sprintf("incidents-%d.jsonl", r.n))
	cfg := r.config(t, fmt.Sprintf("correlate-%d", r.n), "role: correlate\nsinks:\n  - type: jsonl\n    path: "+out+"\n    all_routes: true\n")
	cmd, stderr := r.start(t, cfg)
	return cmd, stderr, out
}

// incidents merges the instances' files: an incident whose key moved has
// versions from several instances (pipeline.Newer picks the latest).
func (r *scaleRig) incidents(t *testing.T) map[string]pipeline.Incident {
	t.Helper()
	all := map[string]pipeline.Incident{}
	for i := 1; i <= r.n; i++ {
		b, _ := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("incidents-%d.jsonl", i)))
		// A SIGKILLed instance may leave a cut last line.
		for _, line := range strings.Split(string(b), "\n") {
			var inc pipeline.Incident
			if json.Unmarshal([]byte(line), &inc) != nil {
				continue
			}
			if cur, ok := all[inc.ID]; !ok || pipeline.Newer(inc, cur) {
				all[inc.ID] = inc
			}
		}
	}
	return all
}

// raw is what the ingest reads: the story's records, one document per
// message, in event-time order (one stream of every source, as an
// aggregation topic would carry them).
func (s *liveStory) raw(t *testing.T, ph int) [][]byte {
	t.Helper()
	type doc struct {
		at time.Time
		b  []byte
	}
	var docs []doc
	add := func(at time.Time, v any) {
		b, ok := v.(json.RawMessage)
		if !ok {
			b = mustJSON(t, v)
		}
		docs = append(docs, doc{at, b})
	}
	for _, r := range append(append([]json.RawMessage{}, s.noise[ph]...), s.attack[ph]...) {
		add(timeOf(t, r, "eventTime"), map[string]any{"Records": []json.RawMessage{r}})
	}
	for i, f := range s.findings[ph] {
		add(timeOf(t, f, "updatedAt"), guardDutyEnvelope(fmt.Sprintf("9c1d0000-0000-4000-8000-%012d", ph*1000+i), f))
	}
	for _, e := range s.ecs[ph] {
		add(timeOf(t, e, "time"), e)
	}
	for _, f := range s.falco[ph] {
		add(timeOf(t, f, "time"), f)
	}
	if ph == 0 {
		add(timeOf(t, s.benign, "time"), s.benign)
	}
	for i, e := range s.ci[ph] {
		add(time.UnixMilli(e.ts), ciEnvelope(e.stream, fmt.Sprintf("%d%06d", ph, i), e.ts, e.msg))
	}
	sort.SliceStable(docs, func(i, j int) bool { return docs[i].at.Before(docs[j].at) })
	out := make([][]byte, len(docs))
	for i, d := range docs {
		out[i] = d.b
	}
	return out
}

func guardDutyEnvelope(id string, finding json.RawMessage) map[string]any {
	return map[string]any{"version": "0", "id": id, "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
		"account": demoAccount, "time": liveTail.Format(time.RFC3339), "region": "us-east-1", "resources": []string{}, "detail": finding}
}

func ciEnvelope(stream, id string, ts int64, msg string) map[string]any {
	return map[string]any{"messageType": "DATA_MESSAGE", "owner": demoAccount, "logGroup": ciGroup, "logStream": stream,
		"subscriptionFilters": []string{"ecscorr"}, "logEvents": []map[string]any{{"id": id, "timestamp": ts, "message": msg}}}
}

func produce(t *testing.T, broker, topic string, vals [][]byte) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	var msgs []kafka.Message
	for _, v := range vals {
		msgs = append(msgs, kafka.Message{Value: v})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// TestScaleOutEqualsReplay runs the real binary as one ingest and three
// correlate instances around a Kafka broker; feeds the first part of the
// demo story, SIGKILLs the correlate instance that raised the most
// incidents, starts a fourth, and feeds the rest: the incidents the
// instances wrote together (ids, rules, keys, severities, evidence) equal
// replay's of the same records.
func TestScaleOutEqualsReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary five times around a Kafka broker")
	}
	t.Parallel()
	for _, changelog := range []bool{false, true} {
		t.Run(map[bool]string{false: "rebuilt from the events topic", true: "restored from the changelog"}[changelog], func(t *testing.T) {
			t.Parallel()
			scaleOutEqualsReplay(t, changelog)
		})
	}
}

func scaleOutEqualsReplay(t *testing.T, changelog bool) {
	bin := realBinary(t)
	story := loadLiveStory(t)
	tails := story.writeReference(t)
	out, err := exec.Command(bin, "replay", "--quiet", "../../testdata/demo", tails).Output()
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	want := parseIncidents(t, string(out))

	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "raw"), kfake.SeedTopics(6, "ecscorr-events", "ecscorr-changelog"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &scaleRig{bin: bin, dir: t.TempDir(), broker: c.ListenAddrs()[0], changelog: changelog}
	ingest, ingestErr := r.start(t, r.config(t, "ingest", "role: ingest\nsources:\n  - type: kafka\n    brokers: ["+r.broker+"]\n    topics: [raw]\n    group: ingest\n"))
	_ = ingest
	var cs []*exec.Cmd
	var errs []*syncBuffer
	for range 3 {
		cmd, stderr, _ := r.correlate(t)
		cs, errs = append(cs, cmd), append(errs, stderr)
	}
	produce(t, r.broker, "raw", story.raw(t, 0))
	deadline := time.Now().Add(90 * time.Second)
	for len(r.incidents(t)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no incidents from the first part in 90s\ningest:\n%s\ncorrelate:\n%s\n%s\n%s", tail(ingestErr.String()), tail(errs[0].String()), tail(errs[1].String()), tail(errs[2].String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Kill the instance that wrote the most.
	victim, most := 0, -1
	for i := range cs {
		b, _ := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("incidents-%d.jsonl", i+1)))
		if n := bytes.Count(b, []byte("\n")); n > most {
			victim, most = i, n
		}
	}
	if err := cs[victim].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cs[victim].Wait()
	t.Logf("correlate-%d SIGKILLed after %d incident lines", victim+1, most)
	_, joined, _ := r.correlate(t)
	errs = append(errs, joined)

	produce(t, r.broker, "raw", story.raw(t, 1))
	var tl [][]byte
	tl = append(tl, mustJSON(t, map[string]any{"Records": []json.RawMessage{story.tails["cloudtrail"]}}))
	tl = append(tl, mustJSON(t, guardDutyEnvelope("9c1d0000-0000-4000-8000-0000000000ff", story.tails["guardduty"])))
	tl = append(tl, story.tails["ecs"], story.tails["falco"])
	tl = append(tl, mustJSON(t, ciEnvelope(story.ci[0][0].stream, "9999999", liveTail.UnixMilli(), string(story.tails["container_insights"]))))
	produce(t, r.broker, "raw", tl)

	wantSet := incidentSet(t, want)
	var got map[string]pipeline.Incident
	deadline = time.Now().Add(120 * time.Second)
	for {
		got = r.incidents(t)
		if equalSets(incidentSet(t, got), wantSet) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if changelog {
		// The victim's partitions moved through the changelog: the
		// instances that took them restored its keys.
		restored := 0
		for i, e := range errs {
			if i != victim {
				restored += strings.Count(e.String(), "partition state restored from the changelog")
			}
		}
		if restored == 0 {
			t.Errorf("no instance restored a partition from the changelog")
		}
	}
	if !equalSets(incidentSet(t, got), wantSet) {
		t.Errorf("the scale-out gives %d incidents, replay %d", len(got), len(want))
		for id, w := range want {
			g, ok := got[id]
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(w)
			if !ok {
				t.Errorf("missing: %s (%s)", id, w.Rule)
			} else if string(gb) != string(wb) {
				t.Errorf("differs: %s\n scale-out %s\n replay    %s", id, gb, wb)
			}
		}
		for id, g := range got {
			if _, ok := want[id]; !ok {
				t.Errorf("only in the scale-out: %s (%s)", id, g.Rule)
			}
		}
		t.Logf("ingest:\n%s", tail(ingestErr.String()))
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
