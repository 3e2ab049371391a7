package engine

import (
	"encoding/json"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/pipeline"
)

// A seen id written before ids were hashed ({"s","i","t"}) reads back as
// the hash a new delivery of that event computes, so a state kept across
// the upgrade still drops the duplicate; the new form round-trips.
func TestSeenRefReadsTheOldForm(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 7, time.UTC)
	old := `{"sn":[{"s":"container_insights","i":"ci-3f2a","t":"2026-03-01T10:00:00.000000007Z"}]}`
	for name, unmarshal := range map[string]func([]byte, any) error{"encoding/json": json.Unmarshal, "goccy": gojson.Unmarshal} {
		var ks keyState
		if err := unmarshal([]byte(old), &ks); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(ks.Seen) != 1 || ks.Seen[0].H != seenHash(pipeline.SourceContainerInsights, "ci-3f2a") || !ks.Seen[0].T.Equal(at) {
			t.Errorf("%s: old form read as %+v", name, ks.Seen)
		}
		b, err := gojson.Marshal(&ks)
		if err != nil {
			t.Fatal(err)
		}
		var back keyState
		if err := unmarshal(b, &back); err != nil || len(back.Seen) != 1 || back.Seen[0] != ks.Seen[0] {
			t.Errorf("%s: round trip %s → %+v (%v)", name, b, back.Seen, err)
		}
	}
	if seenHash(pipeline.SourceFalco, "a") == seenHash(pipeline.SourceCloudTrail, "a") {
		t.Error("the source is not part of the hash")
	}
}
