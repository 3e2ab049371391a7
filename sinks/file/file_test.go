package file

import (
	"bytes"
	"context"
	std "encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

var incs = []pipeline.Incident{
	{ID: "a1", Rule: "ecs-reverse-shell", Title: "Reverse shell", Severity: pipeline.SeverityHigh, Count: 1, Status: pipeline.IncidentOpen,
		FirstSeen: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), Key: map[string]string{"task_arn": "arn:aws:ecs:eu-west-1:111122223333:task/prod/0123456789abcdef0123456789abcdef"},
		Events: []pipeline.EventRef{{Source: pipeline.SourceFalco, ID: "f1", Type: "Reverse shell", Time: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)}}},
	{ID: "b2", Rule: "ecs-drift-risky-task-definition", Title: "Risky <task> definition", Severity: pipeline.SeverityMedium, Count: 2, Status: pipeline.IncidentResolved,
		FirstSeen: time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC), Key: map[string]string{"task_definition_arn": "arn:aws:ecs:eu-west-1:111122223333:task-definition/debug:3"}},
}

func TestJSONLAndTable(t *testing.T) {
	var out bytes.Buffer
	s, err := Create("", JSONL, pipeline.SinkFinal, &out)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(context.Background(), incs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], `{"id":"a1","rule":"ecs-reverse-shell"`) || !strings.Contains(lines[1], `"title":"Risky <task> definition"`) {
		t.Fatalf("jsonl:\n%s", out.String())
	}
	out.Reset()
	s, _ = Create("-", Table, pipeline.SinkFinal, &out)
	if err := s.Deliver(context.Background(), incs); err != nil {
		t.Fatal(err)
	}
	want := tableHead + "\n" +
		"HIGH      2024-05-01 10:00:00  -               1  open      ecs-reverse-shell  task prod/0123456789…cdef0123456789abcdef\n" +
		"          Reverse shell\n" +
		"MEDIUM    2024-05-01 11:00:00  -               0  resolved  ecs-drift-risky-task-definition  taskdef debug:3\n" +
		"          Risky <task> definition\n"
	if out.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestCreateFailsUpFront(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "missing", "x.jsonl"), JSONL, pipeline.SinkFinal, nil); err == nil {
		t.Fatal("want an error for a missing folder")
	}
	if _, err := Create("", Table, pipeline.SinkStream, nil); err == nil {
		t.Fatal("a table is not a stream")
	}
}

// A stream appends each delivery; a file is synced before Deliver returns.
func TestStreamAppends(t *testing.T) {
	p := filepath.Join(t.TempDir(), "incidents.jsonl")
	s, err := Create(p, JSONL, pipeline.SinkStream, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range incs {
		if err := s.Deliver(context.Background(), incs[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if n := strings.Count(string(b), "\n"); n != 2 || !strings.Contains(string(b), `"id":"b2"`) {
		t.Fatalf("%d lines:\n%s", n, b)
	}
}

// Record is exactly the JSONL line, without its newline.
func TestRecordIsTheJSONLLine(t *testing.T) {
	var out bytes.Buffer
	if err := WriteJSONL(&out, incs); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(out.String(), "\n")
	for i := range incs {
		rec, err := Record(&incs[i])
		if err != nil || string(rec)+"\n" != lines[i] {
			t.Fatalf("record %d: %s (%v), line %s", i, rec, err, lines[i])
		}
	}
	if rec, _ := Record(&incs[1]); !bytes.Contains(rec, []byte(`"title":"Risky <task> definition"`)) {
		t.Fatalf("record %s", rec)
	}
}

// The JSONL line is encoding/json's encoding of the incident, byte for
// byte, on the values that encoders tell apart: invalid UTF-8, U+2028,
// HTML characters, control bytes, float formats, map key order, raw JSON.
func TestJSONLIsEncodingJSON(t *testing.T) {
	cases := append([]pipeline.Incident(nil), incs...)
	odd := incs[0]
	odd.ID = "odd"
	odd.Title = "bad \xff utf8 \u2028 \u2029 <&> \x01 \t é 😀 \"q\" \\"
	odd.Tags = []string{"attack.t1078", "<tag>"}
	odd.Fields = map[string]any{
		"f1": 1e21, "f2": 1e-7, "f3": 123456789.125, "f4": float64(1 << 60), "f5": float32(0.1), "f6": 12345678901234567890.0,
		"i": int64(-5), "u": uint8(3), "n": nil, "e": []any{}, "em": map[string]any{},
		"m":   map[string]any{"z": true, "a\xff": []string{"x"}, "B": 1},
		"raw": std.RawMessage(`{"b":1, "a":[ 2 ]}`),
	}
	cases = append(cases, odd)
	var got bytes.Buffer
	if err := WriteJSONL(&got, cases); err != nil {
		t.Fatal(err)
	}
	if want := stdJSONL(t, cases); got.String() != want {
		t.Fatalf("WriteJSONL:\n%s\nencoding/json:\n%s", got.String(), want)
	}
}

// stdJSONL is encoding/json's JSONL of incs, the reference WriteJSONL
// must equal.
func stdJSONL(t *testing.T, incs []pipeline.Incident) string {
	t.Helper()
	var b bytes.Buffer
	enc := std.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for i := range incs {
		if err := enc.Encode(&incs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// Past a chunk, incidents are encoded on several cores: the lines are
// still encoding/json's, in the incidents' order, with none lost or
// doubled at the chunk edges.
func TestJSONLInChunksKeepsOrder(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	var many []pipeline.Incident
	for i := range 5000 {
		inc := incs[i%len(incs)]
		inc.ID = fmt.Sprintf("inc-%05d", i)
		inc.Count = i
		many = append(many, inc)
	}
	var got bytes.Buffer
	if err := WriteJSONL(&got, many); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(got.String(), "\n"), "\n")
	if len(lines) != 5000 || !strings.Contains(lines[4999], `"id":"inc-04999"`) || !strings.Contains(lines[1024], `"id":"inc-01024"`) {
		t.Fatalf("%d lines; line 1024: %.60s", len(lines), lines[min(1024, len(lines)-1)])
	}
	if got.String() != stdJSONL(t, many) {
		t.Fatal("the chunked encoding differs from encoding/json's")
	}
}
