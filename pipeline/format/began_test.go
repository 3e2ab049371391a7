package format

import (
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

func TestBegan(t *testing.T) {
	first := time.Date(2023, 7, 10, 12, 14, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		src  pipeline.Source
		raw  string
		want time.Time
	}{
		{"finding", pipeline.SourceGuardDuty, `{"id":"f","service":{"eventFirstSeen":"2023-07-10T12:14:05.000Z","eventLastSeen":"2023-07-10T12:26:05.000Z"}}`, first},
		{"ASFF-style casing", pipeline.SourceGuardDuty, `{"Id":"f","Service":{"EventFirstSeen":"2023-07-10T12:14:05Z"}}`, first},
		{"no service", pipeline.SourceGuardDuty, `{"id":"f"}`, time.Time{}},
		{"not a time", pipeline.SourceGuardDuty, `{"service":{"eventFirstSeen":"soon"}}`, time.Time{}},
		{"not GuardDuty", pipeline.SourceCloudTrail, `{"service":{"eventFirstSeen":"2023-07-10T12:14:05Z"}}`, time.Time{}},
		{"not JSON", pipeline.SourceGuardDuty, `{`, time.Time{}},
	} {
		got, ok := Began(tc.src, []byte(tc.raw))
		if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
			t.Errorf("%s: Began = %v, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
}
