package archive

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// A filter sees every valid CloudTrail record with its type and time;
// rejected records count as read and filtered, and are not emitted.
func TestFilterSkipsRejectedCloudTrail(t *testing.T) {
	cut := time.Date(2023, 7, 10, 12, 0, 0, 0, time.UTC)
	var asked int
	rawMismatch := 0
	indexed := 0
	filter := func(src pipeline.Source, typ string, ts time.Time, r pipeline.RawRecord) bool {
		asked++ // Read is sequential here
		// Data is the record itself, and Members, when the reader indexed
		// it, are its top-level members.
		var rec map[string]json.RawMessage
		if json.Unmarshal(r.Data, &rec) != nil || string(rec["eventSource"])+":"+string(rec["eventName"]) != `"`+strings.Replace(typ, ":", `":"`, 1)+`"` {
			rawMismatch++
		}
		if r.Members != nil {
			indexed++
			if len(r.Members) != len(rec) {
				rawMismatch++
			}
			for _, m := range r.Members {
				if string(rec[string(m.Key)]) != string(m.Value) {
					rawMismatch++
				}
			}
		}
		return src == pipeline.SourceCloudTrail && typ == "iam.amazonaws.com:AttachRolePolicy" && ts.After(cut)
	}
	res := readPaths(t, Options{Filter: pipeline.KeepIf(filter)}, filepath.Join("testdata", "invictus"))
	if len(res.errs) != 0 {
		t.Fatalf("record errors: %v", res.errs)
	}
	if rawMismatch != 0 {
		t.Fatalf("%d records handed to the filter with a raw record of another type", rawMismatch)
	}
	// The Invictus objects are CloudTrail's: one line, every record
	// indexed while it is found.
	if indexed != 2900 {
		t.Fatalf("%d records indexed, want 2900", indexed)
	}
	if asked != 2900 {
		t.Fatalf("filter asked %d times, want 2900", asked)
	}
	// The Invictus run attaches role policies 6 times, 5 of them after 12:00.
	if len(res.events) != 5 {
		t.Fatalf("emitted %d events, want 5", len(res.events))
	}
	for _, e := range res.events {
		checkEvent(t, e)
		if e.Type != "iam.amazonaws.com:AttachRolePolicy" || !e.Time.After(cut) {
			t.Fatalf("filter let through %s at %v", e.Type, e.Time)
		}
	}
	if res.stats.Read[pipeline.SourceCloudTrail] != 2900 || res.stats.Filtered[pipeline.SourceCloudTrail] != 2895 {
		t.Fatalf("stats: read %d filtered %d, want 2900 and 2895", res.stats.Read[pipeline.SourceCloudTrail], res.stats.Filtered[pipeline.SourceCloudTrail])
	}
}

// The reader says why records were filtered (time alone, or content),
// bounds the event times of every valid record, kept or not, and its live
// count of filtered records ends at the total.
func TestFilterCountsOutsideAndSpan(t *testing.T) {
	dir := filepath.Join("testdata", "invictus")
	all := readPaths(t, Options{}, dir)
	var first, last time.Time
	for _, e := range all.events {
		if first.IsZero() || e.Time.Before(first) {
			first = e.Time
		}
		if e.Time.After(last) {
			last = e.Time
		}
	}
	cut := time.Date(2023, 7, 10, 12, 0, 0, 0, time.UTC)
	var before int64
	for _, e := range all.events {
		if e.Time.Before(cut) {
			before++
		}
	}
	if before == 0 || before == int64(len(all.events)) {
		t.Fatalf("cut %v splits nothing (%d of %d before)", cut, before, len(all.events))
	}
	r := NewReader(Options{Filter: func(_ pipeline.Source, typ string, ts time.Time, _ pipeline.RawRecord) pipeline.Verdict {
		if ts.Before(cut) {
			return pipeline.Verdict{Outside: true}
		}
		return pipeline.Verdict{Keep: typ == "iam.amazonaws.com:AttachRolePolicy"}
	}})
	var kept int64
	if err := r.Read(t.Context(), []string{dir}, func(*pipeline.Event) error { kept++; return nil }, func(e RecordError) { t.Fatal(e) }); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.OutOfRange != before {
		t.Fatalf("OutOfRange %d, want %d", st.OutOfRange, before)
	}
	if got, want := st.Filtered[pipeline.SourceCloudTrail], int64(len(all.events))-kept; got != want || kept != 5 {
		t.Fatalf("filtered %d (kept %d), want %d and 5", got, kept, want)
	}
	if got := r.FilteredSoFar(); got != st.Filtered[pipeline.SourceCloudTrail] {
		t.Fatalf("FilteredSoFar %d at the end, want %d", got, st.Filtered[pipeline.SourceCloudTrail])
	}
	if !st.First.Equal(first) || !st.Last.Equal(last) {
		t.Fatalf("span %v .. %v, want %v .. %v", st.First, st.Last, first, last)
	}
}
