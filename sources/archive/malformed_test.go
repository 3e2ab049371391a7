package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
)

func ctLine(id, t string) string {
	return fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"Root","arn":"arn:aws:iam::111122223333:root","accountId":"111122223333"},"eventTime":%s,"eventSource":"ecs.amazonaws.com","eventName":"ListClusters","awsRegion":"us-east-1","requestParameters":null,"responseElements":null,"eventID":"%s","recipientAccountId":"111122223333"}`, t, id)
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gzipBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func ids(evs []*pipeline.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.ID)
	}
	return strings.Join(s, ",")
}

func TestMalformed(t *testing.T) {
	good := func(id string) string { return ctLine(id, `"2026-01-02T03:04:05Z"`) }
	tests := []struct {
		name       string
		file       string
		data       string
		wantIDs    string
		wantErrs   []string // "<line>:<record>:<reason substring>"
		wantSkip   map[string]int64
		wantSource pipeline.Source
	}{
		{
			name:     "bad JSON line amid good ones",
			file:     "a.jsonl",
			data:     good("e1") + "\n" + `{"eventVersion":"1.08","eventTime":"2026-01-02T03:04:05Z",` + "\n" + good("e2") + "\n" + `not json at all` + "\n" + good("e3") + "\n",
			wantIDs:  "e1,e2,e3",
			wantErrs: []string{"2:0:invalid JSON", "4:0:not a JSON"},
			wantSkip: map[string]int64{SkipBadJSON: 2},
		},
		{
			name:     "bad first line of JSON lines",
			file:     "b.jsonl",
			data:     `{"eventVersion":"1.08","eventTime":` + "\n" + good("e1") + "\n" + good("e2") + "\n",
			wantIDs:  "e1,e2",
			wantErrs: []string{"1:0:record cut short"},
			wantSkip: map[string]int64{SkipBadJSON: 1},
		},
		{
			name:       "eventTime is a number that is not a time",
			file:       "c.jsonl",
			data:       good("e1") + "\n" + ctLine("e2", `12`) + "\n" + ctLine("e3", `"yesterday"`) + "\n" + ctLine("e4", `true`) + "\n",
			wantIDs:    "e1",
			wantErrs:   []string{"2:0:eventTime", "3:0:eventTime", "4:0:invalid JSON"},
			wantSkip:   map[string]int64{SkipInvalid: 3},
			wantSource: pipeline.SourceCloudTrail,
		},
		{
			name:     "CloudTrail record without eventTime",
			file:     "d.json",
			data:     `{"Records":[` + good("e1") + `,{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"x"},` + good("e2") + `]}`,
			wantIDs:  "e1,e2",
			wantErrs: []string{"1:1:without eventTime"},
			wantSkip: map[string]int64{SkipInvalid: 1},
		},
		{
			name:     "Records not an array",
			file:     "e.json",
			data:     `{"Records":{"eventTime":"2026-01-02T03:04:05Z"}}` + "\n",
			wantErrs: []string{"1:0:Records is not an array"},
			wantSkip: map[string]int64{SkipInvalid: 1},
		},
		{
			name:     "findings not an array",
			file:     "f.json",
			data:     `{"findings":"none"}`,
			wantErrs: []string{"1:0:findings is not an array"},
			wantSkip: map[string]int64{SkipInvalid: 1},
		},
		{
			name:     "file ends inside a record",
			file:     "g.json",
			data:     "{\n  \"Records\": [\n" + good("e1") + ",\n" + `{"eventVersion":"1.08","eventTime":"2026`,
			wantIDs:  "e1",
			wantErrs: []string{"4:1:file ends inside a record"},
			wantSkip: map[string]int64{SkipBadJSON: 1},
		},
		{
			name:     "unsupported and unrecognised documents",
			file:     "h.jsonl",
			data:     `{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","time":"2026-01-02T03:04:05Z","detail":{}}` + "\n" + `{"hello":"world"}` + "\n" + good("e1") + "\n",
			wantIDs:  "e1",
			wantErrs: []string{"1:0:unsupported event type Scheduled Event", "2:0:unrecognised record"},
			wantSkip: map[string]int64{SkipUnsupported: 1, SkipUnrecognised: 1},
		},
		{
			name:    "Records objects as lines of a JSON lines file",
			file:    "j.jsonl",
			data:    good("e1") + "\n" + `{"Records":[` + good("e2") + "," + good("e3") + "]}\n" + `{"Records":[]}` + "\n" + good("e4") + "\n",
			wantIDs: "e1,e2,e3,e4",
		},
		{
			name:     "pretty-printed documents one after another",
			file:     "i.json",
			data:     "{\n  \"Records\": [\n    " + good("e1") + "\n  ]\n}\n{\n  \"Records\": [" + good("e2") + "]\n}\n",
			wantIDs:  "e1,e2",
			wantSkip: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeFile(t, dir, tt.file, []byte(tt.data))
			res := readPaths(t, Options{}, p)
			if got := ids(res.events); got != tt.wantIDs {
				t.Errorf("events = %q, want %q", got, tt.wantIDs)
			}
			for _, e := range res.events {
				checkEvent(t, e)
			}
			if len(res.errs) != len(tt.wantErrs) {
				t.Fatalf("errors = %v, want %v", res.errs, tt.wantErrs)
			}
			for i, w := range tt.wantErrs {
				var line, rec int
				var reason string
				fmt.Sscanf(w, "%d:%d:", &line, &rec)
				reason = w[strings.Index(w[strings.Index(w, ":")+1:], ":")+strings.Index(w, ":")+2:]
				e := res.errs[i]
				if e.Pos.File != p || e.Pos.Line != line || e.Pos.Record != rec || !strings.Contains(e.Reason, reason) {
					t.Errorf("error %d = %v (line %d record %d), want line %d record %d reason containing %q", i, e, e.Pos.Line, e.Pos.Record, line, rec, reason)
				}
				if len(e.Sample) > 512 {
					t.Errorf("sample of %d bytes", len(e.Sample))
				}
				if tt.wantSource != "" && e.Source != tt.wantSource {
					t.Errorf("error %d source = %q, want %q", i, e.Source, tt.wantSource)
				}
			}
			if fmt.Sprint(res.stats.Skipped) != fmt.Sprint(nonNil(tt.wantSkip)) {
				t.Errorf("skipped = %v, want %v", res.stats.Skipped, tt.wantSkip)
			}
		})
	}
}

func nonNil(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

func TestTruncatedGzip(t *testing.T) {
	var plain bytes.Buffer
	plain.WriteString(`{"Records":[`)
	for i := range 2000 {
		if i > 0 {
			plain.WriteByte(',')
		}
		plain.WriteString(ctLine(fmt.Sprintf("e%d", i), `"2026-01-02T03:04:05Z"`))
	}
	plain.WriteString(`]}`)
	z := gzipBytes(t, plain.Bytes())
	dir := t.TempDir()
	p := writeFile(t, dir, "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/02/x.json.gz", z[:len(z)/2])
	res := readPaths(t, Options{}, dir)
	if len(res.events) == 0 || len(res.events) >= 2000 {
		t.Fatalf("read %d events from a half gzip, want some but not all", len(res.events))
	}
	for i, e := range res.events {
		if e.ID != fmt.Sprintf("e%d", i) {
			t.Fatalf("event %d = %s: records before the damage must come in order", i, e.ID)
		}
	}
	if len(res.errs) != 1 || res.errs[0].Pos.File != p || !strings.Contains(res.errs[0].Reason, p) || !strings.Contains(res.errs[0].Reason, "unexpected EOF") {
		t.Fatalf("errors = %v, want one naming %s", res.errs, p)
	}
	if res.stats.Skipped[SkipBadFile] != 1 || res.stats.Files != 1 {
		t.Fatalf("stats = %+v", res.stats)
	}
}

func TestHugeLine(t *testing.T) {
	const huge = 50 << 20
	const limit = 4 << 20
	dir := t.TempDir()
	p := filepath.Join(dir, "huge.jsonl")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, ctLine("before", `"2026-01-02T03:04:05Z"`))
	f.WriteString(`{"eventVersion":"1.08","eventTime":"2026-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"PutObject","pad":"`)
	chunk := bytes.Repeat([]byte("A"), 1<<20)
	for range huge >> 20 {
		f.Write(chunk)
	}
	f.WriteString("\"}\n")
	fmt.Fprintln(f, ctLine("after", `"2026-01-02T03:04:05Z"`))
	f.Close()
	chunk = nil

	for _, tc := range []struct {
		name string
		path string
	}{{"plain", p}, {"gzip", gzipFile(t, p)}} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res := readPaths(t, Options{MaxRecordBytes: limit}, tc.path)
			runtime.ReadMemStats(&after)
			if got := ids(res.events); got != "before,after" {
				t.Fatalf("events = %q, want before,after", got)
			}
			if len(res.errs) != 1 || res.errs[0].Pos.Line != 2 || !strings.Contains(res.errs[0].Reason, fmt.Sprintf("record exceeds %d bytes", limit)) {
				t.Fatalf("errors = %v, want one 'record exceeds %d bytes' on line 2", res.errs, limit)
			}
			if len(res.errs[0].Sample) == 0 || len(res.errs[0].Sample) > 512 {
				t.Fatalf("sample has %d bytes", len(res.errs[0].Sample))
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 20<<20 {
				t.Fatalf("reading allocated %d MB, want < 20 MB", alloc>>20)
			}
		})
	}
}

// TestHugeLineDefaultLimit: with the default 16 MiB cap the reader still
// never holds the 50 MB line (bounded by the cap and its buffer growth).
func TestHugeLineDefaultLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 50 MB")
	}
	dir := t.TempDir()
	var b bytes.Buffer
	b.WriteString(`{"Records":[{"eventTime":"2026-01-02T03:04:05Z","eventSource":"x","eventName":"y","pad":"`)
	b.Write(bytes.Repeat([]byte("B"), 50<<20))
	b.WriteString(`"},` + ctLine("after", `"2026-01-02T03:04:05Z"`) + `]}`)
	p := writeFile(t, dir, "big.json", b.Bytes())
	b = bytes.Buffer{}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res := readPaths(t, Options{}, p)
	runtime.ReadMemStats(&after)
	if ids(res.events) != "after" || len(res.errs) != 1 || !strings.Contains(res.errs[0].Reason, "record exceeds 16777216 bytes") || res.errs[0].Pos.Record != 0 {
		t.Fatalf("events %q errors %v", ids(res.events), res.errs)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 48<<20 {
		t.Fatalf("reading allocated %d MB, want < 48 MB (cap 16 MiB)", alloc>>20)
	}
}

func gzipFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	out := p + ".gz"
	if err := os.WriteFile(out, gzipBytes(t, data), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestControlMessageAndSkippedFiles(t *testing.T) {
	dir := t.TempDir()
	ctl := `{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1432826855000,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}`
	writeFile(t, dir, "cwl/ctl.json.gz", gzipBytes(t, []byte(ctl)))
	writeFile(t, dir, "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/02/d.json.gz", gzipBytes(t, []byte(`{"awsAccountId":"111122223333","digestStartTime":"2026-01-02T00:00:00Z"}`)))
	writeFile(t, dir, "AWSLogs/o-abc123/111122223333/CloudTrail-Insight/us-east-1/2026/01/02/i.json.gz", gzipBytes(t, []byte(`{"Records":[]}`)))
	writeFile(t, dir, "AWSLogs/o-abc123/111122223333/CloudTrail/us-east-1/2026/01/02/r.json.gz", gzipBytes(t, []byte(`{"Records":[`+ctLine("org1", `"2026-01-02T03:04:05Z"`)+`]}`)))
	writeFile(t, dir, "README.md", []byte("# logs\n"))
	writeFile(t, dir, ".DS_Store", []byte{0, 1, 2})
	writeFile(t, dir, ".git/config", []byte("[core]\n"))
	writeFile(t, dir, "notes", []byte("plain text, no extension\n"))
	res := readPaths(t, Options{}, dir)
	if ids(res.events) != "org1" || len(res.errs) != 0 {
		t.Fatalf("events %q errors %v", ids(res.events), res.errs)
	}
	want := map[string]int64{SkipControlMessage: 1, SkipDigestFile: 1, SkipInsightFile: 1, SkipHiddenFile: 1, SkipHiddenDir: 1, SkipNonJSONFile: 2}
	if fmt.Sprint(res.stats.Skipped) != fmt.Sprint(want) || res.stats.SkippedFiles != 5 || res.stats.Files != 2 {
		t.Fatalf("stats = %+v, want skipped %v, 5 skipped files, 2 files read", res.stats, want)
	}
}

// TestMixedFolder walks a tree of plain and gzip files of every format.
func TestMixedFolder(t *testing.T) {
	dir := t.TempDir()
	copyTo := func(src, dst string, zip bool) {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if zip {
			data = gzipBytes(t, data)
		}
		writeFile(t, dir, dst, data)
	}
	copyTo("testdata/invictus/invictus_stratus_cloudtrail_part1.json.gz", "AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/part1.json.gz", false)
	copyTo("testdata/samples/guardduty/gd-finding-Container-Runtime-DockerSocketAccessed.elastic.json", "gd/a.json", false)
	copyTo("testdata/constructed/guardduty-export.jsonl.gz", "AWSLogs/111122223333/GuardDuty/eu-west-1/2026/03/02/x.jsonl.gz", false)
	copyTo("testdata/constructed/falco-alerts-ecs.jsonl", "falco/deep/er/alerts.log", true)
	copyTo("testdata/samples/container-insights/ci-perf-ecs-Task.awsdocs.json", "ci/task.json", true)
	copyTo("testdata/constructed/lambda-awslogs-container-insights.json", "ci/lambda/event", false)
	copyTo("testdata/constructed/eventbridge-ecs-and-other.jsonl", "eb/events.jsonl", false)
	copyTo("testdata/constructed/cloudtrail-ecs-calls.jsonl", "eb/ct.jsonl.gz", true)
	writeFile(t, dir, "eb/README.md", []byte("x"))

	var order []string
	r := NewReader(Options{})
	err := r.Read(context.Background(), []string{dir}, func(e *pipeline.Event) error {
		checkEvent(t, e)
		if len(order) == 0 || order[len(order)-1] != e.Pos.File {
			order = append(order, e.Pos.File)
		}
		return nil
	}, func(e RecordError) {
		if !strings.Contains(e.Reason, "unsupported event type EC2") {
			t.Errorf("unexpected error %v", e)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	want := map[pipeline.Source]int64{
		pipeline.SourceCloudTrail:        1450 + 5,
		pipeline.SourceGuardDuty:         1 + 3,
		pipeline.SourceFalco:             3,
		pipeline.SourceContainerInsights: 1 + 3,
		pipeline.SourceECS:               2,
	}
	if fmt.Sprint(st.Read) != fmt.Sprint(want) {
		t.Fatalf("read %v, want %v", st.Read, want)
	}
	if st.Files != 8 || st.SkippedFiles != 1 || st.Skipped[SkipUnsupported] != 1 {
		t.Fatalf("stats %+v", st)
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Fatalf("files not read in lexical order: %q", order)
		}
	}
}

func TestEmitErrorStops(t *testing.T) {
	stop := fmt.Errorf("stop")
	r := NewReader(Options{})
	n := 0
	err := r.Read(context.Background(), []string{"testdata/invictus"}, func(*pipeline.Event) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	}, nil)
	if err != stop || n != 10 {
		t.Fatalf("err = %v after %d events, want the emit error after 10", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Read(ctx, []string{"testdata/invictus"}, func(*pipeline.Event) error { return nil }, nil); err != context.Canceled {
		t.Fatalf("cancelled read: err = %v", err)
	}
}

// gunzipTest inflates gzip data (plain data is returned as is).
func gunzipTest(b []byte, max int) ([]byte, error) {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, int64(max)))
}

// The gzip reader a file leaves behind (damaged or not) reads the next file
// whole: a truncated object, then a good one, then one whose gzip header
// is broken, then another good one, through one Reader and one goroutine.
func TestGzipReaderReusedAfterDamage(t *testing.T) {
	object := func(prefix string, n int) []byte {
		var plain bytes.Buffer
		plain.WriteString(`{"Records":[`)
		for i := range n {
			if i > 0 {
				plain.WriteByte(',')
			}
			plain.WriteString(ctLine(fmt.Sprintf("%s%d", prefix, i), `"2026-01-02T03:04:05Z"`))
		}
		plain.WriteString(`]}`)
		return gzipBytes(t, plain.Bytes())
	}
	dir := t.TempDir()
	cut := object("cut", 2000)
	files := []struct {
		name string
		data []byte
	}{
		{"a.json.gz", cut[:len(cut)/2]},
		{"b.json.gz", object("b", 300)},
		{"c.json.gz", append([]byte{0x1f, 0x8b, 0x42}, bytes.Repeat([]byte{0}, 20)...)}, // not deflate
		{"d.json.gz", object("d", 300)},
	}
	r := NewReader(Options{})
	got := map[string]int{}
	var errs []RecordError
	for _, f := range files {
		p := writeFile(t, dir, f.name, f.data)
		err := r.ReadFile(context.Background(), p, func(e *pipeline.Event) error { got[e.ID[:1]]++; return nil }, func(e RecordError) { errs = append(errs, e) })
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
	}
	if got["b"] != 300 || got["d"] != 300 || got["c"] == 0 || got["c"] >= 2000 {
		t.Fatalf("events by file %v, want b and d whole and part of the cut one", got)
	}
	if len(errs) != 2 {
		t.Fatalf("errors %v, want one for the cut file and one for the broken header", errs)
	}
}

// Goroutines reading gzip files through one Reader share its pooled gzip
// readers: each file is read whole by each of them (a reader still in use
// by one file when another takes it would cut or mix their records).
func TestGzipReadersSharedByGoroutines(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for f := range 16 {
		var plain bytes.Buffer
		plain.WriteString(`{"Records":[`)
		for i := range 50 {
			if i > 0 {
				plain.WriteByte(',')
			}
			plain.WriteString(ctLine(fmt.Sprintf("f%02d-%d", f, i), `"2026-01-02T03:04:05Z"`))
		}
		plain.WriteString(`]}`)
		paths = append(paths, writeFile(t, dir, fmt.Sprintf("f%02d.json.gz", f), gzipBytes(t, plain.Bytes())))
	}
	r := NewReader(Options{})
	var wg sync.WaitGroup
	counts := make([]int, 4)
	for g := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				for _, p := range paths {
					err := r.ReadFile(context.Background(), p, func(*pipeline.Event) error { counts[g]++; return nil }, func(e RecordError) { t.Errorf("%v", e) })
					if err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for g, n := range counts {
		if n != 5*16*50 {
			t.Fatalf("goroutine %d read %d events, want %d", g, n, 5*16*50)
		}
	}
}
