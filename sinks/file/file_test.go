package file

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
