package cwlogs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
	"github.com/ecscorr/ecscorr/sources/cwlogs/cwltest"
)

func group(cluster string) string { return GroupPrefix + cluster + GroupSuffix }

// template reads a Container Insights sample from testdata.
func template(t testing.TB, typ string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ci-perf-ecs-"+typ+".awsdocs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// fixture makes Container Insights messages from the real samples.
type fixture struct {
	task, container map[string]any
}

func newFixture(t testing.TB) *fixture {
	return &fixture{task: template(t, "Task"), container: template(t, "Container")}
}

// msg is a Task event (container == "") or a Container event of a task.
func (f *fixture) msg(cluster, task, container string, ts int64) string {
	m := f.task
	if container != "" {
		m = f.container
	}
	m = maps(m)
	m["ClusterName"], m["TaskId"], m["Timestamp"] = cluster, task, ts
	if container != "" {
		m["ContainerName"] = container
	} else {
		m["AccountID"], m["Region"] = cwltest.Account, cwltest.Region
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func maps(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// world is a server, its clusters' events and the ids put.
type world struct {
	t    testing.TB
	srv  *cwltest.Server
	f    *fixture
	base int64
	ids  map[string][]string // cluster → CloudWatch Logs event ids put
	n    int
}

func newWorld(t testing.TB, o cwltest.Options) *world {
	s := cwltest.New(o)
	t.Cleanup(s.Close)
	return &world{t: t, srv: s, f: newFixture(t), base: time.Now().Add(-3 * time.Minute).Truncate(time.Minute).UnixMilli(), ids: map[string][]string{}}
}

// put writes, for each task of a stream, a Task event and two Container
// events, all at base+off (Container Insights writes a task's events
// with one timestamp), as one PutLogEvents request per stream.
func (w *world) put(cluster, stream string, off int64, tasks ...string) []string {
	var evs []cwltest.Event
	ts := w.base + off
	for _, task := range tasks {
		for _, c := range []string{"", "app", "sidecar"} {
			evs = append(evs, cwltest.Event{Timestamp: ts, Message: w.f.msg(cluster, task, c, ts)})
		}
	}
	ids := w.srv.Put(group(cluster), stream, evs...)
	w.ids[cluster] = append(w.ids[cluster], ids...)
	w.n += len(ids)
	return ids
}

// taskID is a 32-hex task id.
func taskID(i int) string { return fmt.Sprintf("%032x", 0xa11ce000+i) }

func (w *world) input(o Options) *Input {
	if o.Client == nil {
		o.Client = w.srv.Client()
	}
	if o.Interval == 0 {
		o.Interval = 2 * time.Millisecond
	}
	o.MinBackoff, o.MaxBackoff = time.Millisecond, 4*time.Millisecond
	if o.Rate == 0 {
		o.Rate = -1
	}
	if o.Relist == 0 {
		o.Relist = time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	in := New(o)
	return in
}

// got is what a reader collected.
type got struct {
	events []*pipeline.Event
	cwlIDs []string // CloudWatch Logs event ids, from the positions
	last   []byte   // Position of the last batch
}

func cwlID(t testing.TB, ev *pipeline.Event) string {
	_, id, ok := strings.Cut(ev.Pos.File, "#")
	if !ok || !strings.HasPrefix(ev.Pos.File, "cwl://"+GroupPrefix) {
		t.Fatalf("event position %q", ev.Pos.File)
	}
	return id
}

// read reads until n events arrived (failing after 20 s).
func read(t testing.TB, in *Input, n int) got {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var g got
	for len(g.events) < n {
		b, ack, err := in.Read(ctx)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(g.events), n, err)
		}
		for _, ev := range b.Events {
			g.events = append(g.events, ev)
			g.cwlIDs = append(g.cwlIDs, cwlID(t, ev))
			if ev.Received.IsZero() {
				t.Fatalf("event %s without Received", ev.ID)
			}
		}
		g.last = b.Position
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// quiet asserts that the input reads nothing more while the server
// answers polls more FilterLogEvents requests: the read is cancelled when
// request polls+1 arrives, which the input only sends after handling
// the polls before it.
func quiet(t testing.TB, w *world, in *Input, polls int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n0 := w.srv.Calls("FilterLogEvents")
	w.srv.OnRequest(func(op string, n int) {
		if op == "FilterLogEvents" && n > n0+polls {
			cancel()
		}
	})
	defer w.srv.OnRequest(nil)
	b, _, err := in.Read(ctx)
	if err == nil {
		t.Fatalf("read %d more events, want none", len(b.Events))
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("quiet read: %v", err)
	}
}

func sameSet(t testing.TB, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	sort.Strings(g)
	sort.Strings(w)
	if !slices.Equal(g, w) {
		t.Fatalf("%s: got %d ids, want %d\n got %v\nwant %v", what, len(g), len(w), g, w)
	}
}

func (w *world) all(clusters ...string) []string {
	var ids []string
	for _, c := range clusters {
		ids = append(ids, w.ids[c]...)
	}
	return ids
}

// twoClusters puts prod (3 streams) and staging (2 streams), with several
// events per stream and timestamp, plus groups that must not be read.
func twoClusters(w *world) {
	w.put("prod", "AgentTelemetry-i1", 0, taskID(1), taskID(2))
	w.put("prod", "AgentTelemetry-i2", 0, taskID(3))
	w.put("staging", "FargateTelemetry-1", 0, taskID(10))
	w.put("prod", "AgentTelemetry-i1", 60_000, taskID(1), taskID(2))
	w.put("prod", "AgentTelemetry-i3", 60_000, taskID(4))
	w.put("staging", "FargateTelemetry-2", 60_000, taskID(11), taskID(12))
	w.put("prod", "AgentTelemetry-i2", 60_000, taskID(3))
	w.srv.Put("/aws/ecs/containerinsights/prod/other", "s", cwltest.Event{Timestamp: w.base, Message: w.f.msg("prod", taskID(99), "", w.base)})
	w.srv.Put("/aws/lambda/fn", "s", cwltest.Event{Timestamp: w.base, Message: "START RequestId: x"})
}

func TestTwoClustersEveryEventOnce(t *testing.T) {
	w := newWorld(t, cwltest.Options{PageEvents: 4, EmptyFirstPage: true})
	twoClusters(w)
	in := w.input(Options{})
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if in.Ready() == nil {
		t.Fatal("ready before listing")
	}
	g := read(t, in, w.n)
	sameSet(t, "events", g.cwlIDs, w.all("prod", "staging"))
	quiet(t, w, in, 4)
	if err := in.Ready(); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	ids := map[string]bool{}
	for _, ev := range g.events {
		if ids[ev.ID] {
			t.Fatalf("event id %s twice", ev.ID)
		}
		ids[ev.ID] = true
		// Container events have no account or region: the log group's
		// ARN gives them, the group name the cluster.
		e := ev.Entity
		if e.Account != cwltest.Account || e.Region != cwltest.Region || (e.Cluster != "prod" && e.Cluster != "staging") ||
			!strings.HasPrefix(e.TaskARN, "arn:aws:ecs:eu-west-1:123456789012:task/"+e.Cluster+"/") || ev.Source != pipeline.SourceContainerInsights {
			t.Fatalf("event %s (%s) entity %+v", ev.ID, ev.Type, e)
		}
	}
	if st := in.Stats(); st.Events != int64(w.n) || st.Groups != 2 || st.Throttled != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestListedClustersOnly(t *testing.T) {
	w := newWorld(t, cwltest.Options{PageEvents: 5})
	twoClusters(w)
	in := w.input(Options{Clusters: []string{"staging", "absent"}})
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	g := read(t, in, len(w.ids["staging"]))
	sameSet(t, "staging events", g.cwlIDs, w.ids["staging"])
	quiet(t, w, in, 3)
	if st := in.Stats(); st.Groups != 1 {
		t.Fatalf("reading %d groups, want 1", st.Groups)
	}
}

func TestRestartResumesAtPosition(t *testing.T) {
	w := newWorld(t, cwltest.Options{PageEvents: 4})
	twoClusters(w)
	in := w.input(Options{})
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	first := read(t, in, w.n)
	quiet(t, w, in, 2)
	before := w.n

	// New events: at the very timestamp each stream was read up to (the
	// boundary), later, in a new stream, and in a stream of the other
	// cluster.
	var newIDs []string
	newIDs = append(newIDs, w.put("prod", "AgentTelemetry-i1", 60_000, taskID(5))...)
	newIDs = append(newIDs, w.put("staging", "FargateTelemetry-2", 60_000, taskID(13))...)
	newIDs = append(newIDs, w.put("prod", "AgentTelemetry-i2", 90_000, taskID(3))...)
	newIDs = append(newIDs, w.put("prod", "AgentTelemetry-i9", 30_000, taskID(6))...)

	// A new input (a restart) with the stored position.
	in2 := w.input(Options{})
	if err := in2.Open(context.Background(), first.last); err != nil {
		t.Fatal(err)
	}
	g := read(t, in2, w.n-before)
	sameSet(t, "events after the restart", g.cwlIDs, newIDs)
	quiet(t, w, in2, 4)
	if st := in2.Stats(); st.Duplicates == 0 {
		t.Fatalf("the lookback re-read nothing: stats %+v", st)
	}
}

func TestBoundaryInsideAPage(t *testing.T) {
	// One stream, many events at one timestamp, pages of 2: the position
	// after each page holds the ids read at that timestamp, and a restart
	// after any page reads exactly the rest.
	w := newWorld(t, cwltest.Options{PageEvents: 2})
	ids := w.put("prod", "AgentTelemetry-i1", 0, taskID(1), taskID(2), taskID(3)) // 9 events, one timestamp
	in := w.input(Options{})
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var read1 []string
	b, _, err := in.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range b.Events {
		read1 = append(read1, cwlID(t, ev))
	}
	b2, _, err := in.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range b2.Events {
		read1 = append(read1, cwlID(t, ev))
	}
	if len(read1) != 4 {
		t.Fatalf("two pages of 2: %d events", len(read1))
	}
	in2 := w.input(Options{})
	if err := in2.Open(ctx, b2.Position); err != nil {
		t.Fatal(err)
	}
	g := read(t, in2, len(ids)-4)
	sameSet(t, "rest", append(read1, g.cwlIDs...), ids)
	quiet(t, w, in2, 2)
}

func TestThrottlingRetriedNothingLost(t *testing.T) {
	w := newWorld(t, cwltest.Options{PageEvents: 3})
	twoClusters(w)
	// More throttles than the SDK's 3 attempts, so the input's own
	// backoff retries too; 500s as well; on listing and reading.
	w.srv.Inject("DescribeLogGroups", cwltest.Throttle(4))
	w.srv.Inject("FilterLogEvents", cwltest.Throttle(7))
	w.srv.Inject("FilterLogEvents", cwltest.Unavailable(2))
	var mu sync.Mutex
	n := 0
	w.srv.OnRequest(func(op string, _ int) {
		// Throttle every fifth FilterLogEvents while reading.
		mu.Lock()
		defer mu.Unlock()
		if op == "FilterLogEvents" {
			if n++; n%5 == 0 {
				w.srv.Inject(op, cwltest.Throttle(1))
			}
		}
	})
	in := w.input(Options{})
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	g := read(t, in, w.n)
	w.srv.OnRequest(nil)
	sameSet(t, "events", g.cwlIDs, w.all("prod", "staging"))
	quiet(t, w, in, 4)
	st := in.Stats()
	if st.Throttled < 3 || st.Events != int64(w.n) {
		t.Fatalf("stats %+v: want ≥ 3 throttled calls after the SDK's retries and %d events", st, w.n)
	}
	if err := in.Ready(); err != nil {
		t.Fatalf("not ready after recovering: %v", err)
	}
}

func TestMalformedToBad(t *testing.T) {
	w := newWorld(t, cwltest.Options{PageEvents: 3})
	good := w.put("prod", "AgentTelemetry-i1", 0, taskID(1))
	ts := w.base + 1000
	noTime := maps(w.f.task)
	delete(noTime, "Timestamp")
	nt, _ := json.Marshal(noTime)
	badIDs := w.srv.Put(group("prod"), "AgentTelemetry-i1",
		cwltest.Event{Timestamp: ts, Message: `{"Version":"0","Type":"Task",` /* cut short */},
		cwltest.Event{Timestamp: ts, Message: string(nt)},
	)
	good = append(good, w.put("prod", "AgentTelemetry-i1", 2000, taskID(2))...)
	var bad []format.RecordError
	in := w.input(Options{Bad: func(e format.RecordError) { bad = append(bad, e) }})
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	g := read(t, in, len(good))
	sameSet(t, "good events", g.cwlIDs, good)
	quiet(t, w, in, 2)
	if len(bad) != 2 {
		t.Fatalf("%d bad records, want 2: %v", len(bad), bad)
	}
	for i, e := range bad {
		want := "cwl://" + group("prod") + "/AgentTelemetry-i1#" + badIDs[i]
		if e.Pos.File != want {
			t.Fatalf("bad record %d at %q, want %q (%s)", i, e.Pos.File, want, e.Reason)
		}
	}
}

func TestNewLogGroupJoins(t *testing.T) {
	w := newWorld(t, cwltest.Options{})
	w.put("prod", "AgentTelemetry-i1", 0, taskID(1))
	in := w.input(Options{Relist: 20 * time.Millisecond})
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	g := read(t, in, w.n)
	sameSet(t, "prod", g.cwlIDs, w.ids["prod"])
	lists := w.srv.Calls("DescribeLogGroups")
	later := w.put("dev", "FargateTelemetry-1", 30_000, taskID(20), taskID(21))
	g = read(t, in, len(later))
	sameSet(t, "dev, a cluster that appeared later", g.cwlIDs, later)
	if w.srv.Calls("DescribeLogGroups") <= lists {
		t.Fatal("not listed again")
	}
	// A group deleted while read is dropped; the others go on.
	w.srv.DeleteGroup(group("prod"))
	more := w.put("dev", "FargateTelemetry-1", 40_000, taskID(22))
	g = read(t, in, len(more))
	sameSet(t, "dev after prod was deleted", g.cwlIDs, more)
}

func TestNackRedelivers(t *testing.T) {
	w := newWorld(t, cwltest.Options{PageEvents: 3})
	w.put("prod", "AgentTelemetry-i1", 0, taskID(1), taskID(2))
	in := w.input(Options{})
	ctx := context.Background()
	if err := in.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	b1, ack1, err := in.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = ack1(ctx, nil)
	b2, ack2, err := in.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = ack2(ctx, errors.New("commit failed"))
	g := read(t, in, 3)
	var want, redelivered []string
	for _, ev := range b2.Events {
		want = append(want, cwlID(t, ev))
	}
	for _, ev := range g.events[:len(b2.Events)] {
		redelivered = append(redelivered, cwlID(t, ev))
	}
	if !slices.Equal(redelivered, want) || len(b1.Events) != 3 {
		t.Fatalf("after a nack read %v, want %v again", redelivered, want)
	}
}

func TestDefaultConfigEndpointFromEnv(t *testing.T) {
	w := newWorld(t, cwltest.Options{})
	w.put("prod", "AgentTelemetry-i1", 0, taskID(1))
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", w.srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", cwltest.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", cwltest.SecretAccessKey)
	t.Setenv("AWS_REGION", cwltest.Region)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	in := New(Options{Interval: 2 * time.Millisecond, Rate: -1, Logger: slog.New(slog.DiscardHandler)})
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	g := read(t, in, w.n)
	sameSet(t, "events", g.cwlIDs, w.ids["prod"])
}

func TestPositionPrunesIdleStreams(t *testing.T) {
	s := newState()
	g := &groupPos{streams: map[string]*streamPos{}}
	s.groups["/g"] = g
	for i := 0; i < 100; i++ {
		g.seen(fmt.Sprintf("task-%03d", i), int64(1000+i), 0, fmt.Sprintf("id%d", i))
	}
	g.seen("task-099", 1099, 0, "id-b") // a second id at the same timestamp
	g.prune(1090)
	if len(g.streams) != 10 {
		t.Fatalf("%d streams after pruning, want 10", len(g.streams))
	}
	enc := s.encode(nil)
	want := `{"v":1,"g":{"/g":{"c":1099,"s":{"task-090":[1090,"id90"],` // prefix
	if !strings.HasPrefix(string(enc), want) || !strings.Contains(string(enc), `"task-099":[1099,"id99","id-b"]`) {
		t.Fatalf("encoded %s", enc)
	}
	back, err := decodeState(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.encode(nil); string(got) != string(enc) {
		t.Fatalf("round trip:\n%s\n%s", got, enc)
	}
	if !back.groups["/g"].seen("task-099", 1099, 0, "id-b") || back.groups["/g"].seen("task-099", 1099, 0, "id-c") {
		t.Fatal("boundary ids not kept")
	}
	if _, err := decodeState([]byte(`{"v":2}`)); err == nil {
		t.Fatal("unknown version accepted")
	}
}

func TestClockAheadDoesNotHideOthers(t *testing.T) {
	w := newWorld(t, cwltest.Options{})
	now := time.Now().UnixMilli()
	ahead := w.srv.Put(group("prod"), "AgentTelemetry-skewed",
		cwltest.Event{Timestamp: now + 30*60_000, Message: w.f.msg("prod", taskID(1), "", now+30*60_000)})
	in := w.input(Options{})
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	g := read(t, in, 1)
	sameSet(t, "skewed", g.cwlIDs, ahead)
	// Another instance's event of 20 s ago, ingested now.
	late := w.srv.Put(group("prod"), "AgentTelemetry-ok", cwltest.Event{Timestamp: now - 20_000, Message: w.f.msg("prod", taskID(2), "", now-20_000)})
	g = read(t, in, 1)
	sameSet(t, "event behind a clock ahead", g.cwlIDs, late)
}

func TestEveryAttemptPaced(t *testing.T) {
	// One request per 1000 s: the listing's first attempt is throttled,
	// and the SDK's retry waits for the limiter (so no second request
	// goes out) until the read gives up.
	w := newWorld(t, cwltest.Options{})
	w.put("prod", "AgentTelemetry-i1", 0, taskID(1))
	w.srv.Inject("DescribeLogGroups", cwltest.Throttle(1))
	in := w.input(Options{Rate: 0.001})
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, _, err := in.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
	if n := w.srv.Calls("DescribeLogGroups") + w.srv.Calls("FilterLogEvents"); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestNotReadyWhileFailing(t *testing.T) {
	w := newWorld(t, cwltest.Options{})
	w.put("prod", "AgentTelemetry-i1", 0, taskID(1))
	// A 4xx the SDK does not retry: the input backs off and tries again.
	w.srv.Inject("FilterLogEvents", cwltest.Fault{Status: 400, Code: "AccessDeniedException", Message: "User is not authorized to perform: logs:FilterLogEvents", Count: 2})
	in := w.input(Options{})
	var mu sync.Mutex
	var during []error
	w.srv.OnRequest(func(op string, n int) {
		if op == "FilterLogEvents" && n > 1 {
			mu.Lock()
			during = append(during, in.Ready())
			mu.Unlock()
		}
	})
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	g := read(t, in, w.n)
	w.srv.OnRequest(nil)
	sameSet(t, "events", g.cwlIDs, w.ids["prod"])
	mu.Lock()
	defer mu.Unlock()
	if len(during) < 2 || during[0] == nil || !strings.Contains(during[0].Error(), "AccessDeniedException") {
		t.Fatalf("readiness while failing: %v", during)
	}
	if err := in.Ready(); err != nil || in.Stats().Failed != 2 {
		t.Fatalf("after recovering: ready %v, stats %+v", err, in.Stats())
	}
}
