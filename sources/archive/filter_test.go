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
