package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// readBytes reads data as one file through the file reader.
func readBytes(t *testing.T, data []byte) result {
	t.Helper()
	r := bytesReader
	var res result
	d := format.NewDecoder(format.DecoderOptions{Emit: func(e *pipeline.Event) error { res.events = append(res.events, e); return nil },
		Bad: func(e RecordError) { res.errs = append(res.errs, e) }})
	if _, _, err := r.readStream(context.Background(), "f", bytes.NewReader(data), d); err != nil {
		t.Fatal(err)
	}
	return res
}

// bytesReader is shared so that its buffer pool makes reads cheap.
var bytesReader = NewReader(Options{})

// A record cut short (a crashed writer, a truncated copy) costs only
// itself: reading resynchronises at the next record, in JSON lines, in a
// pretty-printed array and in a CloudTrail Records line. Every cut point
// of every record is tried; exactly the other records are read and
// exactly one error names the cut record.
func TestTruncatedRecordCostsOnlyItself(t *testing.T) {
	data, err := os.ReadFile("../../testdata/demo/falco/falco-events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	alerts := strings.Split(strings.TrimSpace(string(data)), "\n")
	whole := readBytes(t, data)
	if len(whole.events) != len(alerts) || len(whole.errs) != 0 {
		t.Fatalf("intact file: %d events, errors %v", len(whole.events), whole.errs)
	}
	var pretty []string
	for _, a := range alerts {
		var b bytes.Buffer
		if err := json.Indent(&b, []byte(a), "  ", "  "); err != nil {
			t.Fatal(err)
		}
		pretty = append(pretty, b.String())
	}
	ctRecs := make([]string, 7)
	for i := range ctRecs {
		ctRecs[i] = ctLine(fmt.Sprintf("ct%d", i), `"2026-01-02T03:04:05Z"`)
	}

	layouts := []struct {
		name string
		recs []string
		// build joins the records, record k replaced by cut.
		build func(recs []string) string
		ids   []string
		// line and record index the error must name, for a cut of record k.
		pos func(k int) (line, rec int)
		// lost lists the records lost with a cut of record k (default: k).
		lost func(k int) []int
	}{
		{
			name:  "JSON lines",
			recs:  alerts,
			build: func(recs []string) string { return strings.Join(recs, "\n") + "\n" },
			pos:   func(k int) (int, int) { return k + 1, 0 },
		},
		{
			name:  "pretty-printed array",
			recs:  pretty,
			build: func(recs []string) string { return "[\n  " + strings.Join(recs, ",\n  ") + "\n]\n" },
			pos: func(k int) (int, int) {
				line := 2
				for _, p := range pretty[:k] {
					line += strings.Count(p, "\n") + 1
				}
				return line, k
			},
		},
		{
			name:  "pretty-printed documents",
			recs:  pretty,
			build: func(recs []string) string { return strings.Join(recs, "\n") + "\n" },
			pos: func(k int) (int, int) {
				line := 1
				for _, p := range pretty[:k] {
					line += strings.Count(p, "\n") + 1
				}
				return line, 0
			},
		},
		{
			// A cut inside the Records line ends that line: the records
			// after the cut on it are lost with it.
			name: "Records line among JSON lines",
			recs: ctRecs,
			build: func(recs []string) string {
				return recs[0] + "\n" + `{"Records":[` + joinUntilCut(recs[1:4], ctRecs) + "\n" + strings.Join(recs[4:], "\n") + "\n"
			},
			ids:  []string{"ct0", "ct1", "ct2", "ct3", "ct4", "ct5", "ct6"},
			lost: func(k int) []int { return lostInLine(k, 1, 4) },
			pos: func(k int) (int, int) {
				switch {
				case k == 0:
					return 1, 0
				case k <= 3:
					return 2, k - 1
				}
				return k - 1, 0
			},
		},
		{
			name: "Records as the first line",
			recs: ctRecs,
			build: func(recs []string) string {
				return `{"Records":[` + joinUntilCut(recs[:3], ctRecs) + "\n" + strings.Join(recs[3:], "\n") + "\n"
			},
			ids:  []string{"ct0", "ct1", "ct2", "ct3", "ct4", "ct5", "ct6"},
			lost: func(k int) []int { return lostInLine(k, 0, 3) },
			pos: func(k int) (int, int) {
				if k < 3 {
					return 1, k
				}
				return k - 1, 0
			},
		},
	}
	for _, lt := range layouts {
		t.Run(lt.name, func(t *testing.T) {
			ids := lt.ids
			if ids == nil {
				for _, e := range whole.events {
					ids = append(ids, e.ID)
				}
			}
			failures := 0
			for k := range lt.recs {
				for j := 1; j < len(lt.recs[k]); j++ {
					if raceEnabled && j%11 != 0 && !strings.ContainsRune("{}[],:\"\\\n", rune(lt.recs[k][j-1])) {
						continue // every cut after a structural byte, a sample of the rest
					}
					recs := append([]string(nil), lt.recs...)
					recs[k] = recs[k][:j]
					res := readBytes(t, []byte(lt.build(recs)))
					var got []string
					for _, e := range res.events {
						got = append(got, e.ID)
					}
					lost := []int{k}
					if lt.lost != nil {
						lost = lt.lost(k)
					}
					var want []string
					for i, id := range ids {
						if !slices.Contains(lost, i) {
							want = append(want, id)
						}
					}
					line, rec := lt.pos(k)
					if strings.Join(got, ",") != strings.Join(want, ",") || len(res.errs) != 1 || res.errs[0].Pos.Line != line || res.errs[0].Pos.Record != rec {
						failures++
						if failures <= 3 {
							t.Errorf("record %d cut after %d bytes (%q): read %d of %d others; errors %v; want one at line %d record %d",
								k, j, lt.recs[k][max(0, j-20):j], len(got), len(want), res.errs, line, rec)
						}
					}
				}
			}
			if failures > 0 {
				t.Errorf("%d cut points fail", failures)
			}
		})
	}
}

// joinUntilCut joins the records of a Records line: a cut record (one not
// among the intact ones) ends the line, as a truncated line does.
func joinUntilCut(recs, intact []string) string {
	for i, r := range recs {
		if !slices.Contains(intact, r) {
			return strings.Join(recs[:i+1], ",")
		}
	}
	return strings.Join(recs, ",") + "]}"
}

// lostInLine: a cut of record k in the line holding records [from, to)
// loses k and the records after it on that line.
func lostInLine(k, from, to int) []int {
	if k < from || k >= to {
		return []int{k}
	}
	var l []int
	for i := k; i < to; i++ {
		l = append(l, i)
	}
	return l
}
