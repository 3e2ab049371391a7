package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
)

// fuzzCheck decodes data with Decode and through the file reader (with a
// small record cap, so the too-large paths run too) and asserts the event
// invariants. It must never panic.
func fuzzCheck(t *testing.T, data []byte) {
	emit := func(e *pipeline.Event) error {
		checkEvent(t, e)
		return nil
	}
	bad := func(e RecordError) {
		if e.Reason == "" || len(e.Sample) > sampleLen {
			t.Fatalf("bad record error %+v", e)
		}
	}
	if err := Decode(data, pipeline.Position{File: "fuzz"}, emit, bad); err != nil {
		t.Fatal(err)
	}
	for i, max := range []int{DefaultMaxRecordBytes, 200} {
		r := fuzzReaders[i]
		d := newDecoder(emit, bad, max)
		if _, _, err := r.readStream(context.Background(), "fuzz", bytes.NewReader(data), d); err != nil {
			t.Fatal(err)
		}
	}
}

// fuzzReaders are shared so that their buffer pools make executions cheap.
var fuzzReaders = []*Reader{NewReader(Options{}), NewReader(Options{MaxRecordBytes: 200})}

// wrap builds the envelopes a record of each kind can arrive in.
func wrapCWL(msg []byte) []byte {
	return []byte(`{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"/aws/ecs/containerinsights/c1/performance","logStream":"s","logEvents":[{"id":"1","timestamp":1,"message":` +
		strconv.Quote(string(msg)) + `}]}`)
}

func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCheck(t, data) })
}

func FuzzDecodeCloudTrail(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCheck(t, data)
		fuzzCheck(t, append(append([]byte(`{"Records":[`), data...), ']', '}'))
		fuzzCheck(t, append(append([]byte(`{"detail-type":"AWS API Call via CloudTrail","detail":`), data...), '}'))
	})
}

func FuzzDecodeGuardDuty(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCheck(t, data)
		fuzzCheck(t, append(append([]byte(`{"findings":[`), data...), ']', '}'))
		fuzzCheck(t, append(append([]byte(`{"detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":`), data...), '}'))
	})
}

func FuzzDecodeContainerInsights(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCheck(t, data)
		fuzzCheck(t, wrapCWL(data))
	})
}

func FuzzDecodeFalco(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCheck(t, data)
		fuzzCheck(t, wrapCWL(data))
	})
}

func FuzzDecodeCWL(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCheck(t, data)
		fuzzCheck(t, gzipBytes(t, data))
	})
}

// TestWriteFuzzSeeds (with -update) writes the seed corpora from the
// samples and constructed records.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
			b, err = gunzipCapped(b, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	lines := func(p string) [][]byte {
		var out [][]byte
		for _, l := range bytes.Split(read(p), []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 {
				out = append(out, l)
			}
		}
		return out
	}
	glob := func(pat string) (out [][]byte) {
		ms, _ := filepath.Glob(pat)
		for _, m := range ms {
			out = append(out, read(m))
		}
		return out
	}
	seeds := map[string][][]byte{
		"FuzzDecodeCloudTrail": append(glob("testdata/samples/cloudtrail/*.json"), lines("testdata/constructed/cloudtrail-ecs-calls.jsonl")...),
		"FuzzDecodeGuardDuty": append(append(glob("testdata/samples/guardduty/*.json"), lines("testdata/constructed/guardduty-export.jsonl.gz")...),
			read("testdata/constructed/guardduty-getfindings-pascalcase.json")),
		"FuzzDecodeContainerInsights": append(glob("testdata/samples/container-insights/*.json"), read("testdata/constructed/filter-log-events-container-insights.json")),
		"FuzzDecodeFalco":             append(glob("testdata/samples/falco/*.json"), lines("testdata/constructed/falco-alerts-ecs.jsonl")...),
		"FuzzDecodeCWL": append(append(glob("testdata/samples/cloudwatch-logs/*.json"), read("testdata/constructed/cwl-subscription-falco.json.gz"),
			read("testdata/constructed/cwl-control-message.json.gz")), read("testdata/constructed/lambda-awslogs-container-insights.json")),
	}
	var all [][]byte
	for _, s := range seeds {
		all = append(all, s...)
	}
	all = append(all, lines("testdata/constructed/eventbridge-ecs-and-other.jsonl")...)
	all = append(all, read("testdata/constructed/eventbridge-cloudtrail-StopTask-legacy-arn.json"),
		[]byte("{\"a\":1}\n{\"b\":\n{\"Records\":[1,{}]}"), []byte(`[{"eventTime":1},{"rule":"r","time":"x"}]`))
	seeds["FuzzDecode"] = all
	for name, ss := range seeds {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			sum := sha256.Sum256(s)
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, "seed-"+hex.EncodeToString(sum[:8])), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
