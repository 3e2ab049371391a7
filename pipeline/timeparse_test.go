package pipeline

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	d := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		name string
		in   any
		want time.Time
		bad  bool
	}{
		{"rfc3339 Z", "2024-10-14T14:11:38Z", d("2024-10-14T14:11:38Z"), false},
		{"rfc3339 ms", "2023-03-20T15:33:12.414Z", d("2023-03-20T15:33:12.414Z"), false},
		{"rfc3339 ns", "2019-05-17T15:31:56.746609046Z", d("2019-05-17T15:31:56.746609046Z"), false},
		{"offset", "2024-10-14T16:11:38+02:00", d("2024-10-14T14:11:38Z"), false},
		{"offset no colon", "2024-10-14T16:11:38.5+0200", d("2024-10-14T14:11:38.5Z"), false},
		{"space", "2024-10-14 14:11:38", d("2024-10-14T14:11:38Z"), false},
		{"space frac", "2024-10-14 14:11:38.123", d("2024-10-14T14:11:38.123Z"), false},
		{"no zone", "2024-10-14T14:11:38", d("2024-10-14T14:11:38Z"), false},
		{"epoch s float64", float64(1639005830), d("2021-12-08T23:23:50Z"), false},
		{"epoch s exponent string", "1.63900583E9", d("2021-12-08T23:23:50Z"), false},
		{"epoch s exponent number", json.Number("1.63900583E9"), d("2021-12-08T23:23:50Z"), false},
		{"epoch s frac", 1639005830.25, d("2021-12-08T23:23:50.25Z"), false},
		{"epoch ms int", int64(1623963900000), d("2021-06-17T21:05:00Z"), false},
		{"epoch ms float", float64(1623963900000), d("2021-06-17T21:05:00Z"), false},
		{"epoch ms string", "1623963900000", d("2021-06-17T21:05:00Z"), false},
		{"epoch us", int64(1623963900000123), d("2021-06-17T21:05:00.000123Z"), false},
		{"epoch ns", int64(1507591916746609046), d("2017-10-09T23:31:56.746609046Z"), false},
		{"epoch ns string", "1507591916746609046", d("2017-10-09T23:31:56.746609046Z"), false},
		{"int", 1700000000, d("2023-11-14T22:13:20Z"), false},
		{"empty", "", time.Time{}, true},
		{"garbage", "yesterday", time.Time{}, true},
		{"dots", "...", time.Time{}, true},
		{"date minus", "12-13-2020", time.Time{}, true},
		{"nil", nil, time.Time{}, true},
		{"bool", true, time.Time{}, true},
		{"huge", 1e300, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTime(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseTime(%v) = %v, want error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTime(%v): %v", tt.in, err)
			}
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Fatalf("ParseTime(%v) = %v, want %v UTC", tt.in, got, tt.want)
			}
		})
	}
}
