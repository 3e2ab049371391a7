package archive

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
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
	if err := format.Decode(data, pipeline.Position{File: "fuzz"}, emit, bad); err != nil {
		t.Fatal(err)
	}
	for i, max := range []int{DefaultMaxRecordBytes, 200} {
		r := fuzzReaders[i]
		d := format.NewDecoder(format.DecoderOptions{Emit: emit, Bad: bad, MaxRecordBytes: max})
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

// fuzzSeed is one seed input: a whole small file, a line of a JSON lines
// file, or one record (an event's Raw) of a fixture or the demo data.
type fuzzSeed struct {
	data   []byte
	source pipeline.Source // the record's source; "" for files and lines
}

// fuzzSeedDirs hold every fixture and golden input, and the demo data.
var fuzzSeedDirs = []string{"testdata/samples", "testdata/constructed", "testdata/invictus", "../../testdata/demo"}

// fuzzSeeds reads the seed inputs once per test binary.
var fuzzSeeds = sync.OnceValues(func() ([]fuzzSeed, error) {
	const maxWhole = 16 << 10 // larger files are seeded by their records
	var seeds []fuzzSeed
	seen := map[string]bool{}
	add := func(b []byte, src pipeline.Source) {
		if k := string(b); len(b) > 0 && !seen[k] {
			seen[k] = true
			seeds = append(seeds, fuzzSeed{data: b, source: src})
		}
	}
	// One record of each source and type is enough for coverage.
	types := map[string]bool{}
	r := NewReader(Options{})
	for _, dir := range fuzzSeedDirs {
		err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() || skipClass(p) != "" {
				return err
			}
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			plain, err := gunzipTest(raw, 64<<20)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if len(plain) <= maxWhole {
				add(plain, "")
			}
			if lines := bytes.Split(plain, []byte("\n")); len(lines) > 2 {
				for _, l := range lines[:min(len(lines), 50)] {
					if l = bytes.TrimSpace(l); len(l) <= maxWhole {
						add(l, "")
					}
				}
			}
			return r.ReadFile(context.Background(), p, func(e *pipeline.Event) error {
				if k := string(e.Source) + "\x00" + e.Type; !types[k] {
					types[k] = true
					add(e.Raw, e.Source)
				}
				return nil
			}, nil)
		})
		if err != nil {
			return nil, err
		}
	}
	return seeds, nil
})

// addSeeds adds the seeds that keep accepts to f's corpus.
func addSeeds(f *testing.F, keep func(fuzzSeed) bool) {
	seeds, err := fuzzSeeds()
	if err != nil {
		f.Fatal(err)
	}
	n := 0
	for _, s := range seeds {
		if keep(s) {
			f.Add(s.data)
			n++
		}
	}
	if n == 0 {
		f.Fatal("no seeds")
	}
}

// ofSource keeps the records of src and the files and lines that mention
// one of marks.
func ofSource(src pipeline.Source, marks ...string) func(fuzzSeed) bool {
	return func(s fuzzSeed) bool {
		if s.source != "" {
			return s.source == src
		}
		for _, m := range marks {
			if bytes.Contains(s.data, []byte(m)) {
				return true
			}
		}
		return false
	}
}

func FuzzDecode(f *testing.F) {
	addSeeds(f, func(fuzzSeed) bool { return true })
	f.Add([]byte("{\"a\":1}\n{\"b\":\n{\"Records\":[1,{}]}"))
	f.Add([]byte(`[{"eventTime":1},{"rule":"r","time":"x"}]`))
	f.Add([]byte("{\"x\":1,\"Records\":[{\"eventVersion\":\"1.08\",\n  {\"a\":[\n]}\n]}"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCheck(t, data) })
}

func FuzzDecodeCloudTrail(f *testing.F) {
	addSeeds(f, ofSource(pipeline.SourceCloudTrail, `"eventSource"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCheck(t, data)
		fuzzCheck(t, append(append([]byte(`{"Records":[`), data...), ']', '}'))
		fuzzCheck(t, append(append([]byte(`{"detail-type":"AWS API Call via CloudTrail","detail":`), data...), '}'))
	})
}

func FuzzDecodeGuardDuty(f *testing.F) {
	addSeeds(f, ofSource(pipeline.SourceGuardDuty, `"schemaVersion"`, `"SchemaVersion"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCheck(t, data)
		fuzzCheck(t, append(append([]byte(`{"findings":[`), data...), ']', '}'))
		fuzzCheck(t, append(append([]byte(`{"detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":`), data...), '}'))
	})
}

func FuzzDecodeContainerInsights(f *testing.F) {
	addSeeds(f, ofSource(pipeline.SourceContainerInsights, `"TaskId"`, `\"TaskId\"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCheck(t, data)
		fuzzCheck(t, wrapCWL(data))
	})
}

func FuzzDecodeFalco(f *testing.F) {
	addSeeds(f, ofSource(pipeline.SourceFalco, `"output_fields"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCheck(t, data)
		fuzzCheck(t, wrapCWL(data))
	})
}

func FuzzDecodeCWL(f *testing.F) {
	addSeeds(f, func(s fuzzSeed) bool {
		return s.source == "" && (bytes.Contains(s.data, []byte(`"logEvents"`)) || bytes.Contains(s.data, []byte(`"awslogs"`)) || bytes.Contains(s.data, []byte(`"events"`)))
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCheck(t, data)
		fuzzCheck(t, gzipBytes(t, data))
	})
}
