package engine

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/correlate/rule"
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

// A key that takes thousands of events (a key-less Sigma rule) searches
// its seen ids through an index: duplicates are still found exactly,
// across the index's creation, expiry and the cap.
func TestSeenIndexedKeepsDuplicatesExact(t *testing.T) {
	set, ds := rule.Load([]rule.NamedSource{{Name: "stop.yml", Data: []byte(sigmaStopLogging)}}, rule.LoadOptions{})
	if set == nil {
		t.Fatal(ds)
	}
	var evs []*pipeline.Event
	mk := func(i int, at time.Duration) *pipeline.Event {
		id := fmt.Sprintf("e%05d", i)
		return ev(id, ct, "cloudtrail.amazonaws.com:StopLogging", at, "",
			`{"eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","eventID":"`+id+`"}`)
	}
	const n = 300 // past seenIndexAt
	for i := range n {
		evs = append(evs, mk(i, time.Duration(i)*time.Second))
		if i%7 == 0 { // redelivered at once, and later
			evs = append(evs, mk(i, time.Duration(i)*time.Second))
		}
		if i%50 == 49 {
			evs = append(evs, mk(i-40, time.Duration(i)*time.Second))
		}
	}
	// Two hours on, the first ids have left the rule's reach (1h): taken
	// in again, not counted as duplicates.
	for i := range 10 {
		evs = append(evs, mk(i, 2*time.Hour+time.Duration(i)*time.Second))
	}
	r := newRunner(t, set, nil).feed(evs, false)
	s := r.e.Stats()
	id := set.Rules[0].ID
	if s.Incidents[id] != n || len(r.list()) != n {
		t.Errorf("%d incidents (%d listed), want %d", s.Incidents[id], len(r.list()), n)
	}
	if want := uint64(43 + 6); s.Duplicates[id] != want {
		t.Errorf("%d duplicates, want %d", s.Duplicates[id], want)
	}
}
