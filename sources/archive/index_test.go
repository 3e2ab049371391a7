package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"

	"github.com/ecscorr/ecscorr/internal/testfix"
)

// Indexing CloudTrail records while their end is found is a shortcut: on
// intact and damaged objects alike (cut short, a quote or a line break
// where none belongs, an escaped key, a non-object element, a huge
// record), the reader emits the same events at the same positions and
// reports the same problems as when it scans records the long way, with
// and without a filter.
func TestIndexedReadEqualsScanned(t *testing.T) {
	raw := invictusJSON(t)
	n := len(raw)
	variants := map[string][]byte{
		"intact":       raw,
		"cut-25":       raw[:n/4],
		"cut-50":       raw[:n/2],
		"cut-77":       raw[:n*77/100],
		"quote":        flip(raw, n/3, '"'),
		"brace":        flip(raw, n/2+17, '}'),
		"bracket":      flip(raw, 2*n/3, ']'),
		"newline":      flip(raw, n/5, '\n'),
		"escaped-key":  bytes.Replace(raw, []byte(`"eventName"`), []byte(`"event\u004eame"`), 7),
		"non-object":   bytes.Replace(raw, []byte(`[{`), []byte(`[42,{`), 1),
		"pretty-start": bytes.Replace(raw, []byte(`[{`), []byte("[\n{"), 1),
		"huge":         bytes.Replace(raw, []byte(`"userAgent":"`), []byte(`"userAgent":"`+strings.Repeat("x", 80<<10)), 1),
	}
	dir := t.TempDir()
	for name, data := range variants {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(data)
		zw.Close()
		os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644)
		os.WriteFile(filepath.Join(dir, name+".json.gz"), gz.Bytes(), 0o644)
	}
	filters := map[string]func(pipeline.Source, string, time.Time, pipeline.RawRecord) bool{
		"no filter": nil,
		// It reads userIdentity from the members when the reader indexed
		// the record, from the bytes otherwise: a wrong index shows.
		"filter": func(_ pipeline.Source, typ string, _ time.Time, r pipeline.RawRecord) bool {
			var ui []byte
			if r.Members != nil {
				for _, m := range r.Members {
					if string(m.Key) == "userIdentity" {
						ui = m.Value
					}
				}
			} else {
				pipeline.ScanObject(r.Data, func(k []byte, _ bool, v []byte) bool {
					if string(k) == "userIdentity" {
						ui = v
					}
					return true
				})
			}
			return strings.HasPrefix(typ, "s3.") || bytes.Contains(ui, []byte(`"AssumedRole"`))
		},
	}
	for fname, filter := range filters {
		for name := range variants {
			for _, ext := range []string{".json", ".json.gz"} {
				path := filepath.Join(dir, name+ext)
				read := func(noIndex bool) string {
					r := NewReader(Options{Filter: pipeline.KeepIf(filter), MaxRecordBytes: 64 << 10})
					r.noIndex = noIndex
					var b strings.Builder
					err := r.Read(context.Background(), []string{path}, func(e *pipeline.Event) error {
						fmt.Fprintf(&b, "event %s %s %s %s %d\n", e.ID, e.Type, e.Time.Format(time.RFC3339Nano), e.Pos, len(e.Raw))
						return nil
					}, func(e RecordError) { fmt.Fprintf(&b, "bad %s %s %s\n", e.Pos, e.Class, e.Reason) })
					if err != nil {
						t.Fatal(err)
					}
					st := r.Stats()
					fmt.Fprintf(&b, "read %v filtered %v skipped %v\n", st.Read, st.Filtered, st.Skipped)
					return b.String()
				}
				fast, slow := read(false), read(true)
				if fast != slow {
					t.Errorf("%s, %s%s: indexed read differs from the scanned one\n--- indexed\n%s\n--- scanned\n%s", fname, name, ext, head(fast), head(slow))
				}
				if name == "intact" && strings.Count(fast, "event ") == 0 && filter == nil {
					t.Errorf("%s%s: no events", name, ext)
				}
			}
		}
	}
}

func invictusJSON(t *testing.T) []byte {
	return testfix.Gunzip(t, filepath.Join("testdata", "invictus", "invictus_stratus_cloudtrail_part1.json.gz"))
}

func flip(b []byte, at int, c byte) []byte {
	out := bytes.Clone(b)
	out[at] = c
	return out
}

func head(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}
