package kafkasrc

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

const group = "ecscorr-test"

func newCluster(t testing.TB, parts int32, topics ...string) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// produce appends vals to one partition with kafka-go and returns their
// offsets (topics are fresh, so the test knows them).
type producer struct {
	t     testing.TB
	addr  string
	topic string
	next  map[int]int64
}

func newProducer(t testing.TB, addr, topic string) *producer {
	return &producer{t: t, addr: addr, topic: topic, next: map[int]int64{}}
}

func (p *producer) write(part int, vals ...[]byte) []int64 {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := kafkago.DialLeader(ctx, "tcp", p.addr, p.topic, part)
	if err != nil {
		p.t.Fatal(err)
	}
	defer conn.Close()
	var offs []int64
	for len(vals) > 0 {
		n := min(len(vals), 500) // 500 CloudTrail records stay under the 1 MB batch limit
		msgs := make([]kafkago.Message, n)
		for i := range msgs {
			msgs[i] = kafkago.Message{Value: vals[i]}
			offs = append(offs, p.next[part])
			p.next[part]++
		}
		if _, err := conn.WriteMessages(msgs...); err != nil {
			p.t.Fatal(err)
		}
		vals = vals[n:]
	}
	return offs
}

func lines(t testing.TB, name string) [][]byte {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
			out = append(out, bytes.Clone(l))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ctRecords are n CloudTrail records with ids ev-000000...
func ctRecords(t testing.TB, n int) [][]byte {
	base := lines(t, "cloudtrail-records.jsonl")[0]
	const id = `"eventID":"5a1e0c3d-7b2f-4e8a-9c1d-000000000001"`
	if !bytes.Contains(base, []byte(id)) {
		t.Fatalf("template record has no %s", id)
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Replace(base, []byte(id), fmt.Appendf(nil, `"eventID":"ev-%06d"`, i), 1)
	}
	return out
}

type recorder struct {
	mu  sync.Mutex
	bad []format.RecordError
}

func (r *recorder) add(e format.RecordError) {
	r.mu.Lock()
	r.bad = append(r.bad, e)
	r.mu.Unlock()
}

func (r *recorder) positions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.bad {
		out = append(out, e.Pos.File)
	}
	sort.Strings(out)
	return out
}

func open(t testing.TB, addr string, pos []byte, o Options) *Input {
	t.Helper()
	o.Brokers = []string{addr}
	if o.Group == "" {
		o.Group = group
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 100 * time.Millisecond
	}
	o.JoinGroupBackoff = 200 * time.Millisecond
	o.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	in, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Open(context.Background(), pos); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	return in
}

// read is one batch read in a test.
type read struct {
	events   []*pipeline.Event
	messages int64
	pos      []byte
	ack      pipeline.AckFunc
}

// readMessages reads batches until at least n messages were handed out
// (acknowledging each at once if ack) and returns them.
func readMessages(t testing.TB, in *Input, n int64, ack bool) []read {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []read
	var got int64
	for got < n {
		before := in.Stats().Messages
		b, a, err := in.Read(ctx)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", got, n, err)
		}
		r := read{events: b.Events, messages: in.Stats().Messages - before, pos: b.Position, ack: a}
		got += r.messages
		if ack {
			if err := a(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, r)
	}
	return out
}

// where is the topic/partition/offset an event was read at.
func where(ev *pipeline.Event) string { return strings.TrimPrefix(ev.Pos.File, "kafka://") }

func wheres(rs []read) []string {
	var out []string
	for _, r := range rs {
		for _, ev := range r.events {
			out = append(out, where(ev))
		}
	}
	return out
}

func offsetsOf(t testing.TB, pos []byte) map[string]int64 {
	t.Helper()
	m, err := decodePosition(pos)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for k, v := range m {
		out[fmt.Sprintf("%s/%d", k.topic, k.part)] = v
	}
	return out
}

// committed reads the group's committed offsets with kafka-go's Client.
func committed(t testing.TB, addr, topic string, parts int) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &kafkago.Client{Addr: kafkago.TCP(addr)}
	ps := make([]int, parts)
	for i := range ps {
		ps[i] = i
	}
	resp, err := c.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil {
		t.Fatal(resp.Error)
	}
	out := map[string]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatal(p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[fmt.Sprintf("%s/%d", topic, p.Partition)] = p.CommittedOffset
		}
	}
	return out
}

// waitCommitted waits until the group's committed offsets are want (the
// commit follows the acknowledgement asynchronously).
func waitCommitted(t testing.TB, addr, topic string, parts int, want map[string]int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := committed(t, addr, topic, parts)
		if reflect.DeepEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Raw records of every kind, one per message, over three partitions:
// exactly the events the format registry decodes from the same documents,
// at their topic/partition/offset; the bad messages reported there and
// skipped; the acknowledged offsets committed to Kafka.
func TestRawRecords(t *testing.T) {
	const topic = "raw"
	addr := newCluster(t, 3, topic)
	p := newProducer(t, addr, topic)
	ct := lines(t, "cloudtrail-records.jsonl")
	eb := lines(t, "ecs-task-state-change.jsonl")
	falco := lines(t, "falco-events.jsonl")
	var ci [][]byte
	for _, l := range lines(t, "ci-subscription.jsonl") {
		ci = append(ci, gz(t, l))
	}
	type doc struct {
		part int
		val  []byte
	}
	docs := []doc{}
	for i, v := range ct {
		docs = append(docs, doc{i % 3, v})
	}
	for _, v := range eb {
		docs = append(docs, doc{1, v})
	}
	for _, v := range falco {
		docs = append(docs, doc{2, v})
	}
	for _, v := range ci {
		docs = append(docs, doc{0, v})
	}
	badDocs := []doc{{1, []byte("not json")}, {2, []byte(`{"hello":"world"}`)}, {0, gz(t, []byte("{"))[:10]}}
	docs = slices.Insert(docs, 4, badDocs[0])
	docs = slices.Insert(docs, 9, badDocs[1])
	docs = append(docs, badDocs[2])

	// The reference: the registry on each document, at its position.
	var want []string
	var wantBad []string
	for _, d := range docs {
		off := p.write(d.part, d.val)[0]
		pos := pipeline.Position{File: fmt.Sprintf("kafka://%s/%d/%d", topic, d.part, off)}
		v := d.val
		if v[0] == 0x1f {
			zr, err := gzip.NewReader(bytes.NewReader(v))
			if err != nil {
				wantBad = append(wantBad, pos.File)
				continue
			}
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(zr); err != nil {
				wantBad = append(wantBad, pos.File)
				continue
			}
			v = buf.Bytes()
		}
		err := format.Decode(v, pos, func(ev *pipeline.Event) error {
			want = append(want, ev.ID+"@"+where(ev))
			return nil
		}, func(e format.RecordError) { wantBad = append(wantBad, e.Pos.File) })
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(want)
	sort.Strings(wantBad)
	// 6 CloudTrail + 5 ECS + 7 Falco + the Container Insights events of 2 payloads.
	if len(want) < 18+2 || len(wantBad) != 3 {
		t.Fatalf("reference: %d events, %d bad", len(want), len(wantBad))
	}

	var rec recorder
	start := time.Now()
	in := open(t, addr, nil, Options{Name: "raw", Topics: []string{topic}, Bad: rec.add, MaxBatch: 7})
	if err := in.Ready(); err == nil {
		t.Log("ready before the first generation")
	}
	rs := readMessages(t, in, int64(len(docs)), false)
	var got []string
	srcs := map[pipeline.Source]int{}
	ids := map[string]bool{}
	for _, r := range rs {
		if r.messages > 7 {
			t.Fatalf("batch of %d messages, MaxBatch 7", r.messages)
		}
		for _, ev := range r.events {
			got = append(got, ev.ID+"@"+where(ev))
			srcs[ev.Source]++
			ids[ev.ID] = true
			if ev.Received.Before(start) || ev.Received.After(time.Now()) {
				t.Fatalf("%s received at %s", ev.ID, ev.Received)
			}
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := 1; i <= 6; i++ {
		if id := fmt.Sprintf("5a1e0c3d-7b2f-4e8a-9c1d-%012d", i); !ids[id] {
			t.Fatalf("CloudTrail event %s missing", id)
		}
	}
	if srcs[pipeline.SourceCloudTrail] != 6 || srcs[pipeline.SourceECS] != 5 || srcs[pipeline.SourceFalco] != 7 || srcs[pipeline.SourceContainerInsights] == 0 {
		t.Fatalf("events per source %v", srcs)
	}
	if b := rec.positions(); !slices.Equal(b, wantBad) {
		t.Fatalf("bad %v, want %v", b, wantBad)
	}
	if err := in.Ready(); err != nil {
		t.Fatalf("not ready while reading: %v", err)
	}
	if s := in.Stats(); s.Bad != 3 || s.Messages != int64(len(docs)) || s.Events != int64(len(want)) {
		t.Fatalf("stats %+v", s)
	}
	// The last position holds every partition's end; nothing committed
	// before the acknowledgement, all of it after.
	end := map[string]int64{}
	for part, n := range p.next {
		end[fmt.Sprintf("%s/%d", topic, part)] = n
	}
	if got := offsetsOf(t, rs[len(rs)-1].pos); !reflect.DeepEqual(got, end) {
		t.Fatalf("last position %v, want %v", got, end)
	}
	if c := committed(t, addr, topic, 3); len(c) != 0 {
		t.Fatalf("committed %v before any acknowledgement", c)
	}
	for _, r := range rs[:2] {
		r.ack(context.Background(), nil)
	}
	waitCommitted(t, addr, topic, 3, offsetsOf(t, rs[1].pos))
	for _, r := range rs[2:] {
		r.ack(context.Background(), nil)
	}
	waitCommitted(t, addr, topic, 3, end)
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if in.Ready() == nil {
		t.Fatal("ready after Close")
	}
}

// Normalised events (format events) come out as they went in; a message
// that is not one is reported and skipped.
func TestEventsFormat(t *testing.T) {
	const topic = "events"
	addr := newCluster(t, 2, topic)
	p := newProducer(t, addr, topic)
	var evs []*pipeline.Event
	for _, f := range []string{"cloudtrail-records.jsonl", "ecs-task-state-change.jsonl", "falco-events.jsonl"} {
		for i, l := range lines(t, f) {
			err := format.Decode(l, pipeline.Position{File: f, Line: i + 1}, func(ev *pipeline.Event) error {
				evs = append(evs, ev)
				return nil
			}, func(e format.RecordError) { t.Fatal(e) })
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	byID := map[string]*pipeline.Event{}
	for i, ev := range evs {
		b, err := pipeline.MarshalEventJSON(ev)
		if err != nil {
			t.Fatal(err)
		}
		p.write(i%2, b)
		byID[ev.ID] = ev
	}
	badOff := p.write(1, []byte(`{"id":"x","source":"cloudtrail"}`))[0]
	var rec recorder
	in := open(t, addr, nil, Options{Topics: []string{topic}, Format: FormatEvents, Bad: rec.add})
	rs := readMessages(t, in, int64(len(evs)+1), true)
	n := 0
	for _, r := range rs {
		for _, got := range r.events {
			n++
			want := *byID[got.ID]
			want.Pos, want.Received, want.Time = got.Pos, got.Received, want.Time.UTC()
			if !reflect.DeepEqual(got, &want) {
				t.Fatalf("event\n%+v\nwant\n%+v", got, &want)
			}
		}
	}
	if n != len(evs) || len(byID) != len(evs) {
		t.Fatalf("%d events, want %d", n, len(evs))
	}
	if b := rec.positions(); !slices.Equal(b, []string{fmt.Sprintf("kafka://%s/1/%d", topic, badOff)}) {
		t.Fatalf("bad %v", b)
	}
}

// A new instance opened at a stored position reads only what follows it,
// though Kafka's committed offsets lag behind (the acknowledgement was not
// sent when the process died); when Kafka's committed offsets are ahead of
// a stale stored position, they win (see the package doc).
func TestRestartFromStoredPosition(t *testing.T) {
	const topic, parts = "restart", 3
	addr := newCluster(t, parts, topic)
	p := newProducer(t, addr, topic)
	recs := ctRecords(t, 90)
	all := map[string]bool{}
	for i := range parts {
		for _, off := range p.write(i, recs[i*30:(i+1)*30]...) {
			all[fmt.Sprintf("%s/%d/%d", topic, i, off)] = true
		}
	}
	o := Options{Name: "restart", Topics: []string{topic}, MaxBatch: 10}
	a := open(t, addr, nil, o)
	rs := readMessages(t, a, 40, false)
	if len(rs) < 4 {
		t.Fatalf("%d batches", len(rs))
	}
	// Batches 0 and 1 acknowledged (committed to Kafka); the state holds
	// batch 3's position; then the process dies.
	rs[0].ack(context.Background(), nil)
	rs[1].ack(context.Background(), nil)
	waitCommitted(t, addr, topic, parts, offsetsOf(t, rs[1].pos))
	stored := rs[3].pos
	a.Close(context.Background())
	if c := committed(t, addr, topic, parts); !reflect.DeepEqual(c, offsetsOf(t, rs[1].pos)) {
		t.Fatalf("committed %v after the crash", c)
	}

	b := open(t, addr, stored, o)
	seen := map[string]bool{}
	for _, w := range wheres(rs[:4]) {
		seen[w] = true
	}
	rest := int64(len(all) - len(seen))
	rs2 := readMessages(t, b, rest, true)
	for _, w := range wheres(rs2) {
		if seen[w] {
			t.Fatalf("%s read again after the stored position", w)
		}
		seen[w] = true
	}
	if !reflect.DeepEqual(seen, all) {
		t.Fatalf("read %d of %d messages", len(seen), len(all))
	}
	end := map[string]int64{}
	for i := range parts {
		end[fmt.Sprintf("%s/%d", topic, i)] = 30
	}
	waitCommitted(t, addr, topic, parts, end)
	b.Close(context.Background())

	// A stale stored position (batch 0's) behind Kafka's committed
	// offsets: nothing before them is read again, only the new messages.
	newOffs := map[string]bool{}
	for i := range parts {
		for _, off := range p.write(i, ctRecords(t, 2)...) {
			newOffs[fmt.Sprintf("%s/%d/%d", topic, i, off)] = true
		}
	}
	c := open(t, addr, rs[0].pos, o)
	rs3 := readMessages(t, c, int64(len(newOffs)), true)
	got := map[string]bool{}
	for _, w := range wheres(rs3) {
		got[w] = true
	}
	if !reflect.DeepEqual(got, newOffs) {
		t.Fatalf("read %v, want only the new %v", got, newOffs)
	}
}

// Two instances in one group split the partitions: every message is read
// exactly once over the whole run, through the rebalance when the second
// joins and the one when it leaves, with acknowledgements in between.
func TestTwoInstancesSplit(t *testing.T) {
	const topic, parts = "split", 4
	addr := newCluster(t, parts, topic)
	p := newProducer(t, addr, topic)
	counts := map[string]int{}
	var mu sync.Mutex
	note := func(rs []read) {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range wheres(rs) {
			counts[w]++
		}
	}
	produce := func(n int) int64 {
		for i := range parts {
			p.write(i, ctRecords(t, n)...)
		}
		return int64(n * parts)
	}
	o := Options{Topics: []string{topic}, MaxBatch: 16}
	a := open(t, addr, nil, o)
	note(readMessages(t, a, produce(10), true))
	waitCommitted(t, addr, topic, parts, ends(topic, p))

	b := open(t, addr, nil, o)
	// Wait for the generation that holds both, then produce.
	waitFor(t, "a generation with both members", func() bool {
		ga, pa := a.generationOf()
		gb, pb := b.generationOf()
		return ga != 0 && ga == gb && pa+pb == parts && pa > 0 && pb > 0
	})
	_, pa := a.generationOf()
	_, pb := b.generationOf()
	per := 10
	n := produce(per)
	var wg sync.WaitGroup
	for _, x := range []struct {
		in *Input
		n  int
	}{{a, pa}, {b, pb}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			note(readMessages(t, x.in, int64(x.n*per), true))
		}()
	}
	wg.Wait()
	_ = n
	waitCommitted(t, addr, topic, parts, ends(topic, p))
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a generation with a alone", func() bool {
		_, pa := a.generationOf()
		return pa == parts
	})
	note(readMessages(t, a, produce(5), true))
	waitCommitted(t, addr, topic, parts, ends(topic, p))

	want := 0
	for _, n := range p.next {
		want += int(n)
	}
	if len(counts) != want {
		t.Fatalf("%d distinct messages read, want %d", len(counts), want)
	}
	for w, c := range counts {
		if c != 1 {
			t.Fatalf("%s read %d times", w, c)
		}
	}
	if g := a.Stats().Generations; g < 3 {
		t.Fatalf("a saw %d generations, want 3", g)
	}
}

func ends(topic string, p *producer) map[string]int64 {
	out := map[string]int64{}
	for part, n := range p.next {
		out[fmt.Sprintf("%s/%d", topic, part)] = n
	}
	return out
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// generationOf is the current generation and the partitions held (for
// tests).
func (in *Input) generationOf() (int32, int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gen == nil {
		return 0, 0
	}
	return in.gen.ID, len(in.own)
}

// A nack redelivers the batch; its acknowledgement, and those of batches
// read after it, commit nothing.
func TestNackRedelivers(t *testing.T) {
	const topic = "nack"
	addr := newCluster(t, 1, topic)
	p := newProducer(t, addr, topic)
	p.write(0, ctRecords(t, 20)...)
	in := open(t, addr, nil, Options{Topics: []string{topic}, MaxBatch: 5})
	first := readMessages(t, in, 1, true)[0]
	n := len(first.events)
	waitCommitted(t, addr, topic, 1, map[string]int64{topic + "/0": int64(n)})
	second := readMessages(t, in, 1, false)[0]
	third := readMessages(t, in, 1, false)[0]
	second.ack(context.Background(), fmt.Errorf("commit failed"))
	third.ack(context.Background(), nil) // after the nack: a no-op
	again := readMessages(t, in, int64(20-n), true)
	want := []string{}
	for i := n; i < 20; i++ {
		want = append(want, topic+"/0/"+strconv.Itoa(i))
	}
	if got := wheres(again); !slices.Equal(got, want) {
		t.Fatalf("after the nack read %v, want %v", got, want)
	}
	waitCommitted(t, addr, topic, 1, map[string]int64{topic + "/0": 20})
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{Topics: []string{"t"}},
		{Brokers: []string{"x:9092"}},
		{Brokers: []string{"x:9092"}, Topics: []string{"t"}, Format: "avro"},
		{Brokers: []string{"x:9092"}, Topics: []string{"t"}, Start: "middle"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	in, err := New(Options{Brokers: []string{"x:9092"}, Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if in.Name() != "kafka" || in.o.Group != "ecscorr" || in.o.MaxBatch != 1000 || in.o.MaxWait != 250*time.Millisecond || in.o.Format != FormatRaw {
		t.Fatalf("defaults %+v", in.o)
	}
	if err := in.Open(context.Background(), []byte("garbage")); err == nil {
		t.Fatal("a damaged position was accepted")
	}
	if in.Ready() == nil {
		t.Fatal("ready before Open")
	}
}

// owned is the partitions held (for tests).
func (in *Input) owned() []int {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []int
	for k := range in.own {
		out = append(out, k.part)
	}
	sort.Ints(out)
	return out
}

// Batches in flight across a rebalance: those of the partition this
// member keeps stay valid (acknowledged, they are committed, and reading
// goes on after them); those of the partition it loses are dropped (their
// acknowledgement commits nothing, so the new owner reads them from the
// group's offset).
func TestInFlightAcrossRebalance(t *testing.T) {
	const topic, parts = "inflight", 2
	addr := newCluster(t, parts, topic)
	p := newProducer(t, addr, topic)
	for i := range parts {
		p.write(i, ctRecords(t, 10)...)
	}
	o := Options{Topics: []string{topic}, MaxBatch: 100}
	a := open(t, addr, nil, o)
	inflight := readMessages(t, a, 20, false)
	b := open(t, addr, nil, o)
	waitFor(t, "a generation with both members", func() bool {
		ga, pa := a.generationOf()
		gb, pb := b.generationOf()
		return ga != 0 && ga == gb && pa == 1 && pb == 1
	})
	kept, lost := a.owned()[0], b.owned()[0]
	for _, r := range inflight {
		r.ack(context.Background(), nil)
	}
	waitCommitted(t, addr, topic, parts, map[string]int64{fmt.Sprintf("%s/%d", topic, kept): 10})

	// b reads the lost partition from the start: nothing was committed.
	got := wheres(readMessages(t, b, 10, true))
	want := []string{}
	for i := range 10 {
		want = append(want, fmt.Sprintf("%s/%d/%d", topic, lost, i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the new owner read %v, want %v", got, want)
	}
	// a goes on after its in-flight batch: one new message each.
	p.write(kept, ctRecords(t, 1)...)
	p.write(lost, ctRecords(t, 1)...)
	if got := wheres(readMessages(t, a, 1, true)); !slices.Equal(got, []string{fmt.Sprintf("%s/%d/10", topic, kept)}) {
		t.Fatalf("the keeper read %v after the rebalance", got)
	}
	if got := wheres(readMessages(t, b, 1, true)); !slices.Equal(got, []string{fmt.Sprintf("%s/%d/10", topic, lost)}) {
		t.Fatalf("the new owner read %v", got)
	}
	waitCommitted(t, addr, topic, parts, ends(topic, p))
}

// Ready is nil only while a generation is active: not before the group is
// joined, not while the brokers cannot be reached.
func TestReady(t *testing.T) {
	const topic = "ready"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	newProducer(t, addr, topic).write(0, ctRecords(t, 1)...)
	in := open(t, addr, nil, Options{Topics: []string{topic}, SessionTimeout: 6 * time.Second, Timeout: time.Second})
	readMessages(t, in, 1, true)
	if err := in.Ready(); err != nil {
		t.Fatalf("not ready while connected: %v", err)
	}
	c.Close()
	waitFor(t, "readiness to fail", func() bool { return in.Ready() != nil })
	t.Logf("with the broker gone: %v", in.Ready())

	down := open(t, "127.0.0.1:1", nil, Options{Topics: []string{topic}, Timeout: time.Second})
	waitFor(t, "a join error", func() bool {
		err := down.Ready()
		return err != nil && strings.Contains(err.Error(), "not in group")
	})
	t.Logf("with no broker: %v", down.Ready())
}

// start: latest skips what is there when the group has no offset, and the
// resolved offset is part of the next position.
func TestStartLatest(t *testing.T) {
	const topic = "latest"
	addr := newCluster(t, 1, topic)
	p := newProducer(t, addr, topic)
	p.write(0, ctRecords(t, 5)...)
	in := open(t, addr, nil, Options{Topics: []string{topic}, Start: StartLatest})
	waitFor(t, "the latest offset resolved", func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		return in.next[tp{topic, 0}] == 5
	})
	p.write(0, ctRecords(t, 3)...)
	rs := readMessages(t, in, 3, true)
	if got := wheres(rs); !slices.Equal(got, []string{topic + "/0/5", topic + "/0/6", topic + "/0/7"}) {
		t.Fatalf("read %v", got)
	}
	waitCommitted(t, addr, topic, 1, map[string]int64{topic + "/0": 8})
}
