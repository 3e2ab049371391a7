package pipeline

import (
	"encoding/json"
	"fmt"
	"strings"
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

// The CloudTrail fast path agrees with time.Parse on every string of its
// form, valid or not, and leaves everything else to it.
func TestParseUTCSecondsAgreesWithTimeParse(t *testing.T) {
	cases := []string{
		"2023-07-23T00:42:18Z", "1999-12-31T23:59:59Z", "2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z",
		"2023-04-31T00:00:00Z", "2023-04-30T00:00:00Z", "2023-13-01T00:00:00Z", "2023-00-01T00:00:00Z",
		"2023-01-00T00:00:00Z", "2023-01-32T00:00:00Z", "2023-01-01T24:00:00Z", "2023-01-01T00:60:00Z",
		"2023-01-01T00:00:60Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2023-01-01t00:00:00Z",
		"2023-01-01T00:00:00z", "2023-01-01 00:00:00Z", "2023-01-01T00:00:0xZ", "+023-01-01T00:00:00Z",
		"2023-1-01T00:00:00ZZ", "2100-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "2023-06-31T10:00:00Z",
	}
	for mo := 1; mo <= 12; mo++ {
		for d := 28; d <= 32; d++ {
			cases = append(cases, fmt.Sprintf("2023-%02d-%02dT01:02:03Z", mo, d), fmt.Sprintf("2024-%02d-%02dT01:02:03Z", mo, d))
		}
	}
	// Every day of 1899..2101 (leap and century years), at a time of day
	// that moves with it.
	for d, day := 0, time.Date(1899, 1, 1, 0, 0, 0, 0, time.UTC); day.Year() < 2102; d, day = d+1, day.AddDate(0, 0, 1) {
		cases = append(cases, day.Add(time.Duration(d*7919)%(24*time.Hour)).Format(time.RFC3339))
	}
	fast := 0
	for _, s := range cases {
		want, werr := time.Parse(time.RFC3339, s)
		got, ok := parseUTCSeconds(s)
		if ok {
			fast++
			if werr != nil || !got.Equal(want) || got.Location() != time.UTC {
				t.Errorf("parseUTCSeconds(%q) = %v; time.Parse: %v, %v", s, got, want, werr)
			}
		}
		// The fast path refuses only what the general parser decides.
		pt, perr := ParseTimeString(s)
		if (perr == nil) != (werr == nil) && !strings.Contains(s, " ") {
			t.Errorf("ParseTimeString(%q) = %v, %v; time.Parse: %v", s, pt, perr, werr)
		}
		if perr == nil && werr == nil && !pt.Equal(want) {
			t.Errorf("ParseTimeString(%q) = %v, want %v", s, pt, want)
		}
	}
	if fast < 70000 {
		t.Fatalf("only %d of %d strings took the fast path", fast, len(cases))
	}
}

func BenchmarkParseTimeStringCloudTrail(b *testing.B) {
	for b.Loop() {
		if _, err := ParseTimeString("2023-07-23T00:42:18Z"); err != nil {
			b.Fatal(err)
		}
	}
}
