package s3src

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
	"github.com/ecscorr/ecscorr/sources/archive"
	"github.com/ecscorr/ecscorr/sources/s3/s3test"
)

const demo = "../../testdata/demo"

// demoObjects puts the demo's AWSLogs tree into bucket and returns the keys.
func demoObjects(t *testing.T, s *s3test.Server, bucket string) []string {
	t.Helper()
	var keys []string
	err := filepath.Walk(filepath.Join(demo, "AWSLogs"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(demo, p)
		key := filepath.ToSlash(rel)
		s.Put(bucket, key, b)
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

type rec struct {
	id  string
	pos pipeline.Position
}

// fromFile reads a demo file with the archive reader: what an object
// holding it must give.
func fromFile(t *testing.T, key string) []rec {
	t.Helper()
	var out []rec
	err := archive.NewReader(archive.Options{}).ReadFile(context.Background(), filepath.Join(demo, key), func(ev *pipeline.Event) error {
		out = append(out, rec{string(ev.Source) + "/" + ev.ID, pipeline.Position{Line: ev.Pos.Line, Record: ev.Pos.Record}})
		return nil
	}, func(e format.RecordError) { t.Errorf("%s: %v", key, e) })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Objects read through the real client give what the files give, with
// positions s3://bucket/key plus line and record; digests are skipped.
func TestReadObjectDemo(t *testing.T) {
	s := s3test.New()
	defer s.Close()
	keys := demoObjects(t, s, "trail")
	total := 0
	for _, key := range keys {
		var got []rec
		d := format.NewDecoder(format.DecoderOptions{Emit: func(ev *pipeline.Event) error {
			if ev.Pos.File != "s3://trail/"+key {
				t.Fatalf("position %v for %s", ev.Pos, key)
			}
			got = append(got, rec{string(ev.Source) + "/" + ev.ID, pipeline.Position{Line: ev.Pos.Line, Record: ev.Pos.Record}})
			return nil
		}, Bad: func(e format.RecordError) { t.Errorf("%s: %v", key, e) }, Latest: time.Now().Add(format.MaxClockSkew)})
		if err := ReadObject(context.Background(), s.Client(), "trail", key, d); err != nil {
			t.Fatal(err)
		}
		want := fromFile(t, key)
		if strings.Contains(key, "CloudTrail-Digest") {
			want = nil
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: got %d events, want %d\n got %v\nwant %v", key, len(got), len(want), got, want)
		}
		total += len(got)
	}
	// 6 story records + 2,900 Stratus records + 5 GuardDuty findings.
	if total != 6+2900+5 {
		t.Fatalf("%d events in all", total)
	}
}

// A missing object is permanent; a damaged gzip is one bad record.
func TestReadObjectErrors(t *testing.T) {
	s := s3test.New()
	defer s.Close()
	s.Put("b", "AWSLogs/x.json.gz", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3})
	var bad []format.RecordError
	d := format.NewDecoder(format.DecoderOptions{Emit: func(*pipeline.Event) error { return nil }, Bad: func(e format.RecordError) { bad = append(bad, e) }})
	err := ReadObject(context.Background(), s.Client(), "b", "AWSLogs/missing.json.gz", d)
	if err == nil || !Permanent(err) {
		t.Fatalf("missing object: %v (permanent %v)", err, Permanent(err))
	}
	if err := ReadObject(context.Background(), s.Client(), "b", "AWSLogs/x.json.gz", d); err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0].Pos.File != "s3://b/AWSLogs/x.json.gz" {
		t.Fatalf("bad %+v", bad)
	}
	s.FailGets(10, 503, nil)
	err = ReadObject(context.Background(), s.Client(), "b", "AWSLogs/x.json.gz", d)
	if err == nil || Permanent(err) {
		t.Fatalf("503: %v (permanent %v)", err, Permanent(err))
	}
}

func readBatch(t *testing.T, in *Input) (pipeline.Batch, pipeline.AckFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, ack, err := in.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return b, ack
}

func batchIDs(b pipeline.Batch) []rec {
	var out []rec
	for _, ev := range b.Events {
		out = append(out, rec{string(ev.Source) + "/" + ev.ID, pipeline.Position{Line: ev.Pos.Line, Record: ev.Pos.Record}})
	}
	return out
}

// Polling hands out one batch per object in key order with the position
// {"after": key}; a new input opened at a committed position resumes
// after it and picks up new keys at the next poll.
func TestPollResumesAfterPosition(t *testing.T) {
	s := s3test.New()
	defer s.Close()
	demoObjects(t, s, "trail")
	prefix := "AWSLogs/123837392027/CloudTrail/us-east-1/"
	ct, _ := filepath.Glob(filepath.Join(demo, prefix, "2023/07/10/*.json.gz"))
	var keys []string
	for _, p := range ct {
		rel, _ := filepath.Rel(demo, p)
		keys = append(keys, filepath.ToSlash(rel))
	}
	slices.Sort(keys)
	if len(keys) != 3 {
		t.Fatalf("keys %v", keys)
	}
	open := func(pos []byte) *Input {
		in, err := New(Options{Bucket: "trail", Prefix: prefix, Interval: 50 * time.Millisecond, Client: s.Client(), MaxKeys: 2})
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Open(context.Background(), pos); err != nil {
			t.Fatal(err)
		}
		return in
	}
	a := open(nil)
	if a.Name() != "s3:trail/"+prefix {
		t.Fatalf("name %q", a.Name())
	}
	var committed []byte
	for i, key := range keys[:2] {
		b, ack := readBatch(t, a)
		if got, want := batchIDs(b), fromFile(t, key); !slices.Equal(got, want) {
			t.Fatalf("batch %d: %d events, want %d of %s", i, len(got), len(want), key)
		}
		var p struct{ After string }
		if err := json.Unmarshal(b.Position, &p); err != nil || p.After != key {
			t.Fatalf("position %s, want after %s", b.Position, key)
		}
		if err := ack(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		committed = b.Position
	}
	// A third batch read but never committed: the restart reads it again.
	readBatch(t, a)
	_ = a.Close(context.Background())

	b := open(committed)
	got, _ := readBatch(t, b)
	if want := fromFile(t, keys[2]); !slices.Equal(batchIDs(got), want) {
		t.Fatalf("after restart: %d events, want %d of %s", len(got.Events), len(want), keys[2])
	}
	// A new object appears: the next poll finds it.
	newKey := prefix + "2023/07/10/123837392027_CloudTrail_us-east-1_20230710T1240Z_nEwObJeCt.json.gz"
	raw, _ := os.ReadFile(filepath.Join(demo, keys[0]))
	s.Put("trail", newKey, raw)
	nb, ack := readBatch(t, b)
	if want := fromFile(t, keys[0]); !slices.Equal(batchIDs(nb), want) || nb.Events[0].Pos.File != "s3://trail/"+newKey {
		t.Fatalf("new object: %d events at %v", len(nb.Events), nb.Events[0].Pos)
	}
	_ = ack(context.Background(), nil)
	if st := b.Stats(); st.Objects != 2 || st.Retries != 0 || st.Bad != 0 {
		t.Fatalf("stats %+v", st)
	}
	if b.Ready() != nil {
		t.Fatal(b.Ready())
	}
}

// A GetObject that keeps failing (503 SlowDown beyond the client's
// retries) is retried, never skipped; a nack re-reads from the last
// acknowledged key.
func TestPollRetriesAndNack(t *testing.T) {
	s := s3test.New()
	defer s.Close()
	keys := demoObjects(t, s, "trail")
	prefix := "AWSLogs/123837392027/GuardDuty/"
	var gd string
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			gd = k
		}
	}
	in, err := New(Options{Bucket: "trail", Prefix: prefix, Interval: 50 * time.Millisecond, Client: s.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	s.FailGets(4, 503, nil) // the client tries 3 times: one Read attempt fails whole
	b, ack := readBatch(t, in)
	want := fromFile(t, gd)
	if !slices.Equal(batchIDs(b), want) || len(want) != 5 {
		t.Fatalf("%d events, want %d", len(b.Events), len(want))
	}
	if st := in.Stats(); st.Retries != 1 {
		t.Fatalf("stats %+v", st)
	}
	_ = ack(context.Background(), context.Canceled)
	b2, _ := readBatch(t, in)
	if !slices.Equal(batchIDs(b2), want) {
		t.Fatalf("after nack: %d events", len(b2.Events))
	}
}
