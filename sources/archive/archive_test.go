package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenEvent is the stable, reviewable form of an event.
type goldenEvent struct {
	ID         string          `json:"id"`
	Source     pipeline.Source `json:"source"`
	Type       string          `json:"type"`
	Time       string          `json:"time"`
	Severity   string          `json:"severity"`
	Sample     bool            `json:"sample,omitempty"`
	Entity     pipeline.Entity `json:"entity"`
	Containers []string        `json:"containers,omitempty"`
	Pos        string          `json:"pos"`
	RawBytes   int             `json:"raw_bytes"`
	RawSHA256  string          `json:"raw_sha256"` // first 16 hex chars
}

type goldenError struct {
	Pos    string          `json:"pos"`
	Source pipeline.Source `json:"source,omitempty"`
	Reason string          `json:"reason"`
}

type golden struct {
	Events  []goldenEvent    `json:"events"`
	Errors  []goldenError    `json:"errors,omitempty"`
	Skipped map[string]int64 `json:"skipped,omitempty"`
}

type result struct {
	events []*pipeline.Event
	errs   []RecordError
	stats  Stats
}

func readPaths(t testing.TB, opts Options, paths ...string) result {
	t.Helper()
	r := NewReader(opts)
	var res result
	err := r.Read(context.Background(), paths, func(e *pipeline.Event) error {
		res.events = append(res.events, e)
		return nil
	}, func(e RecordError) { res.errs = append(res.errs, e) })
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	res.stats = r.Stats()
	return res
}

// checkEvent asserts the invariants every emitted event must hold.
func checkEvent(t testing.TB, e *pipeline.Event) {
	t.Helper()
	if e.ID == "" || e.Source == "" || e.Type == "" || e.Time.IsZero() {
		t.Fatalf("event missing ID/Source/Type/Time: %+v", e)
	}
	if e.Time.Location() != time.UTC {
		t.Fatalf("event time not UTC: %v", e.Time)
	}
	if !json.Valid(e.Raw) {
		t.Fatalf("event %s has invalid Raw JSON: %.200q", e.ID, e.Raw)
	}
}

func toGolden(t *testing.T, root string, res result) golden {
	var g golden
	for _, e := range res.events {
		checkEvent(t, e)
		sum := sha256.Sum256(e.Raw)
		p := e.Pos
		p.File = filepath.ToSlash(strings.TrimPrefix(p.File, root+string(filepath.Separator)))
		g.Events = append(g.Events, goldenEvent{
			ID: e.ID, Source: e.Source, Type: e.Type, Time: e.Time.Format(time.RFC3339Nano),
			Severity: e.Severity.String(), Sample: e.Sample, Entity: e.Entity, Containers: e.Containers,
			Pos: p.String(), RawBytes: len(e.Raw), RawSHA256: hex.EncodeToString(sum[:8]),
		})
	}
	for _, re := range res.errs {
		p := re.Pos
		p.File = filepath.ToSlash(strings.TrimPrefix(p.File, root+string(filepath.Separator)))
		g.Errors = append(g.Errors, goldenError{Pos: p.String(), Source: re.Source, Reason: re.Reason})
	}
	if len(res.stats.Skipped) > 0 {
		g.Skipped = res.stats.Skipped
	}
	return g
}

func compareGolden(t *testing.T, name string, g golden) {
	t.Helper()
	got, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", name+".golden.json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden (run with -update after checking):\n%s", path, diffLines(string(want), string(got)))
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			b.WriteString("- " + a + "\n+ " + c + "\n")
			if b.Len() > 4000 {
				break
			}
		}
	}
	return b.String()
}

// TestGolden reads every sample and constructed file on its own and
// compares the events with the golden files.
func TestGolden(t *testing.T) {
	for _, dir := range []string{"samples", "constructed"} {
		root := filepath.Join("testdata", dir)
		err := filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			rel, _ := filepath.Rel("testdata", p)
			t.Run(filepath.ToSlash(rel), func(t *testing.T) {
				res := readPaths(t, Options{}, p)
				compareGolden(t, filepath.ToSlash(rel), toGolden(t, root, res))
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestInvictusReplay(t *testing.T) {
	res := readPaths(t, Options{}, filepath.Join("testdata", "invictus"))
	if len(res.errs) != 0 {
		t.Fatalf("got %d record errors, want 0; first: %v", len(res.errs), res.errs[0])
	}
	if len(res.events) != 2900 {
		t.Fatalf("read %d events, want exactly 2900", len(res.events))
	}
	if res.stats.Read[pipeline.SourceCloudTrail] != 2900 || res.stats.Files != 2 || len(res.stats.Skipped) != 0 {
		t.Fatalf("stats = %+v, want 2900 cloudtrail events from 2 files, nothing skipped", res.stats)
	}
	ids := make(map[string]bool)
	for _, e := range res.events {
		checkEvent(t, e)
		ids[e.ID] = true
	}
	first := res.events[0]
	if first.ID == "" || first.Type != "account.amazonaws.com:GetRegionOptStatus" || !first.Time.Equal(time.Date(2023, 7, 10, 11, 42, 18, 0, time.UTC)) ||
		first.Entity.Principal != "arn:aws:iam::123837392027:user/benjamin" || first.Entity.Region != "us-east-1" || first.Pos.Record != 0 {
		t.Fatalf("first event = %+v", first)
	}
	if last := res.events[len(res.events)-1]; last.Pos.Record == 0 {
		t.Fatalf("last event position %v should carry its Records index", last.Pos)
	}
	if len(ids) < 2890 {
		t.Fatalf("only %d distinct event IDs among 2900", len(ids))
	}
}

// TestConcurrentReadFile reads files in parallel, as the replay command
// does, and checks the shared stats (run with -race).
func TestConcurrentReadFile(t *testing.T) {
	r := NewReader(Options{})
	files, _ := filepath.Glob("testdata/invictus/*.gz")
	files = append(files, files...)
	errc := make(chan error, len(files))
	counts := make(chan int, len(files))
	for _, f := range files {
		go func() {
			n := 0
			errc <- r.ReadFile(context.Background(), f, func(e *pipeline.Event) error { n++; return nil }, func(e RecordError) { t.Error(e) })
			counts <- n
			_ = r.Stats()
		}()
	}
	total := 0
	for range files {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		total += <-counts
	}
	if st := r.Stats(); total != 5800 || st.Read[pipeline.SourceCloudTrail] != 5800 || st.Files != 4 {
		t.Fatalf("total %d, stats %+v; want 5800 events from 4 reads", total, st)
	}
}

// TestDecodeRawIsACopy: Raw must survive the caller reusing its buffer, and
// Decode must hand back emit's error.
func TestDecodeRawIsACopy(t *testing.T) {
	buf := []byte(ctLine("e1", `"2026-01-02T03:04:05Z"`))
	var got *pipeline.Event
	if err := format.Decode(buf, pipeline.Position{File: "sqs"}, func(e *pipeline.Event) error { got = e; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	want := string(buf)
	for i := range buf {
		buf[i] = 'x'
	}
	if got == nil || string(got.Raw) != want || got.ID != "e1" || got.Type != "ecs.amazonaws.com:ListClusters" {
		t.Fatalf("event %+v raw %q", got, got.Raw)
	}
	stop := fmt.Errorf("full")
	env := []byte(`{"detail-type":"AWS API Call via CloudTrail","source":"aws.ecs","detail":` + want + `}`)
	if err := format.Decode(env, pipeline.Position{}, func(e *pipeline.Event) error {
		if string(e.Raw) != want {
			t.Errorf("envelope Raw = %q, want the inner record", e.Raw)
		}
		return stop
	}, nil); err != stop {
		t.Fatalf("Decode err = %v, want emit's error", err)
	}
}
