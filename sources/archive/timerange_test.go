package archive

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// Event times outside [2004-01-01, now+24h] are bad records, whatever the
// format and whether or not a filter is set: they are rejected with the
// bound they violate and the read goes on.
func TestTimeOutOfRange(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	falco := func(id, ts string) string {
		return fmt.Sprintf(`{"uuid":"%s","output":"x","priority":"Warning","rule":"Terminal shell in container","time":"%s","output_fields":{"container.id":"abc"}}`, id, ts)
	}
	data := strings.Join([]string{
		ctLine("ok-first", `"2004-01-01T00:00:00Z"`),
		ctLine("far-future", `"9999-12-31T23:59:59Z"`),
		ctLine("too-old", `"2003-12-31T23:59:59Z"`),
		ctLine("year-one", `"0001-01-01T00:00:01Z"`),
		ctLine("ok-last", `"2026-06-02T00:00:00Z"`),
		ctLine("one-second-late", `"2026-06-02T00:00:01Z"`),
		falco("falco-future", "9999-12-31T00:00:00Z"),
		falco("falco-ok", "2026-05-31T00:00:00Z"),
	}, "\n") + "\n"
	wantErrs := []string{
		"2:event time 9999-12-31T23:59:59Z is after 2026-06-02T00:00:00Z, 24h0m0s past the start of this run; skipped",
		"3:event time 2003-12-31T23:59:59Z is before 2004-01-01T00:00:00Z, the earliest plausible event time; skipped",
		"4:event time 0001-01-01T00:00:01Z is before 2004-01-01T00:00:00Z, the earliest plausible event time; skipped",
		"6:event time 2026-06-02T00:00:01Z is after 2026-06-02T00:00:00Z, 24h0m0s past the start of this run; skipped",
		"7:event time 9999-12-31T00:00:00Z is after 2026-06-02T00:00:00Z, 24h0m0s past the start of this run; skipped",
	}
	for _, filtered := range []bool{false, true} {
		t.Run(fmt.Sprintf("filter=%v", filtered), func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "mixed.jsonl", []byte(data))
			opts := Options{Now: now}
			if filtered {
				opts.Filter = pipeline.KeepIf(func(pipeline.Source, string, time.Time, pipeline.RawRecord) bool { return true })
			}
			res := readPaths(t, opts, p)
			if got := ids(res.events); got != "ok-first,ok-last,falco-ok" {
				t.Errorf("events = %q, want ok-first,ok-last,falco-ok", got)
			}
			var got []string
			for _, e := range res.errs {
				got = append(got, fmt.Sprintf("%d:%s", e.Pos.Line, e.Reason))
				if e.Pos.File != p || len(e.Sample) == 0 {
					t.Errorf("error %v: want file %s and a sample", e, p)
				}
			}
			if strings.Join(got, "\n") != strings.Join(wantErrs, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantErrs, "\n"))
			}
			if want := map[string]int64{SkipTimeOutOfRange: 5}; fmt.Sprint(res.stats.Skipped) != fmt.Sprint(want) {
				t.Errorf("skipped = %v, want %v", res.stats.Skipped, want)
			}
			if want := map[pipeline.Source]int64{pipeline.SourceCloudTrail: 2, pipeline.SourceFalco: 1}; fmt.Sprint(res.stats.Read) != fmt.Sprint(want) {
				t.Errorf("read = %v, want %v", res.stats.Read, want)
			}
		})
	}
}
