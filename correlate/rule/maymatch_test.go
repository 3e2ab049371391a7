package rule

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"

	"github.com/ecscorr/ecscorr/internal/testfix"
)

// invictusRecords returns the 2,900 raw CloudTrail records of the Invictus
// Stratus sample and their event types.
func invictusRecords(t testing.TB) (raws [][]byte, types []string) {
	files, _ := filepath.Glob("../../sources/archive/testdata/invictus/*.json.gz")
	if len(files) == 0 {
		t.Fatal("no Invictus records")
	}
	for _, f := range files {
		data := testfix.Gunzip(t, f)
		var doc struct{ Records []json.RawMessage }
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		for _, r := range doc.Records {
			var h struct{ EventSource, EventName string }
			if err := json.Unmarshal(r, &h); err != nil {
				t.Fatal(err)
			}
			raws = append(raws, r)
			types = append(types, h.EventSource+":"+h.EventName)
		}
	}
	return raws, types
}

// MayMatch, deciding on a projection of the record's bytes, agrees with
// the signals evaluated on the fully decoded record: it keeps exactly the
// records some Sigma rule matches (the 57 SigmaHQ rules alone: every
// candidate is a matcher) and every record a pack signal could match.
func TestMayMatchAgreesWithFullDecode(t *testing.T) {
	raws, types := invictusRecords(t)
	// Records that exercise the projection: flattened dotted keys, arrays
	// on the path, escaped keys, the path ending at an object.
	extra := []string{
		`{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","userIdentity.sessionContext.sessionIssuer.type":"Role","userIdentity":{"type":"AssumedRole"}}`,
		`{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","userIdentity":{"type":"AssumedRole","sessionContext":[{"x":1},{"sessionIssuer":{"type":"Role"}}]}}`,
		`{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","user\u0049dentity":{"type":"Root"},"eventType":"AwsApiCall"}`,
		`{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","userAgent":"TruffleHog","userIdentity":null}`,
	}
	for _, e := range extra {
		raws = append(raws, []byte(e))
		types = append(types, "ec2.amazonaws.com:DescribeInstances")
	}
	for _, tc := range []struct {
		name  string
		paths []string
		kept  int // records MayMatch keeps
	}{
		{"sigmahq", []string{sigmaHQDir}, 113},
		{"builtin+sigmahq", []string{BuiltinName, sigmaHQDir}, 140},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, ds := LoadPaths(tc.paths, LoadOptions{})
			if set == nil {
				t.Fatal(ds)
			}
			kept := 0
			for i, raw := range raws {
				got := set.MayMatch(pipeline.SourceCloudTrail, types[i], pipeline.RawRecord{Data: raw})
				var full map[string]any
				if err := json.Unmarshal(raw, &full); err != nil {
					t.Fatal(err)
				}
				want := false
				byType, anyType := set.Candidates(pipeline.SourceCloudTrail, types[i])
				for _, sig := range append(append([]*Signal{}, byType...), anyType...) {
					if sig.Match == nil || sig.Match(full) {
						want = true
						break
					}
				}
				if got != want {
					t.Errorf("record %d (%s): MayMatch %v, full decode %v: %s", i, types[i], got, want, strings.TrimSpace(string(raw[:min(len(raw), 200)])))
				}
				if got {
					kept++
				}
				// Judge names every matcher that matches, each read through
				// the projection of the detections whose screens passed,
				// on the bytes and on the reader's indexed members alike.
				members, _, ok := pipeline.IndexObject(raw, nil)
				if !ok {
					members = nil // the extra records with escaped keys among them
				}
				for _, rec := range []pipeline.RawRecord{{Data: raw}, {Data: raw, Members: members}} {
					v := set.Judge(pipeline.SourceCloudTrail, types[i], rec)
					if v.Keep != want {
						t.Errorf("record %d (%s, members %v): Judge keeps %v, full decode %v", i, types[i], rec.Members != nil, v.Keep, want)
					}
					if v.Matched == nil {
						continue
					}
					for _, sig := range append(append([]*Signal{}, byType...), anyType...) {
						judged := v.Matched[sig.Index/64]&(1<<(sig.Index%64)) != 0
						if full := sig.Match(full); judged != full {
							t.Errorf("record %d (%s, members %v): Judge says %s matches: %v, full decode %v", i, types[i], rec.Members != nil, sig.Name, judged, full)
						}
					}
				}
			}
			if kept != tc.kept {
				t.Errorf("kept %d of %d records, want %d", kept, len(raws), tc.kept)
			}
		})
	}
}

// BenchmarkMayMatch is the per-record cost of the replay filter with the
// pack and the 57 SigmaHQ rules over the Invictus records (most of which
// only the four rules constraining no event type are offered).
func BenchmarkMayMatch(b *testing.B) {
	raws, types := invictusRecords(b)
	set, ds := LoadPaths([]string{BuiltinName, sigmaHQDir}, LoadOptions{})
	if set == nil {
		b.Fatal(ds)
	}
	// The archive reader gives records with their members indexed; other
	// sources give the bytes alone.
	for _, indexed := range []bool{true, false} {
		recs := make([]pipeline.RawRecord, len(raws))
		for i, raw := range raws {
			recs[i].Data = raw
			if indexed {
				recs[i].Members, _, _ = pipeline.IndexObject(raw, nil)
			}
		}
		name := "bytes"
		if indexed {
			name = "indexed"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				i := n % len(recs)
				set.MayMatch(pipeline.SourceCloudTrail, types[i], recs[i])
				n++
			}
		})
		if !indexed {
			continue
		}
		// What replay asks: every matcher's verdict, not the first.
		b.Run("judge", func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				i := n % len(recs)
				set.Judge(pipeline.SourceCloudTrail, types[i], recs[i])
				n++
			}
		})
	}
}
