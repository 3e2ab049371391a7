package rule

import (
	"strings"
	"testing"
	"time"
)

// diagsOf returns the non-note diagnostics of body, without the file name.
func diagsOf(t *testing.T, body string) []string {
	t.Helper()
	_, diags := loadString(t, body, LoadOptions{})
	var got []string
	for _, d := range diags {
		if d.Severity == SevNote {
			continue
		}
		got = append(got, strings.TrimPrefix(d.String(), "t.yaml:"))
	}
	return got
}

func wantDiags(t *testing.T, body string, want ...string) {
	t.Helper()
	got := diagsOf(t, body)
	if len(got) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("diagnostic %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
}

func TestInZone(t *testing.T) {
	set, diags := loadString(t, `
signals:
  - name: off_hours
    source: cloudtrail
    where: 'inZone(event.time, "Europe/Paris").Hour() >= 18 || inZone(event.time, "Europe/Paris").Weekday().String() == "Sunday"'
    fields: {local: 'inZone(event.time, "America/New_York").Format("15:04 MST")'}
`, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := set.SignalsByName["off_hours"]
	cases := []struct {
		at    string
		want  bool
		local string
	}{
		// Paris is UTC+1 in winter, UTC+2 in summer.
		{"2026-01-14T16:59:59Z", false, "11:59 EST"},
		{"2026-01-14T17:00:00Z", true, "12:00 EST"},  // 18:00 in Paris, 17:00 in UTC
		{"2026-07-14T16:00:00Z", true, "12:00 EDT"},  // 18:00 CEST
		{"2026-07-14T15:59:00Z", false, "11:59 EDT"}, // 17:59 CEST
		{"2026-01-17T23:30:00Z", true, "18:30 EST"},  // Sunday 00:30 in Paris, Saturday in UTC
	}
	for _, tc := range cases {
		at, _ := time.Parse(time.RFC3339, tc.at)
		env := &Env{Event: EventEnv{Source: "cloudtrail", Time: at}}
		got, err := s.Eval(env)
		if err != nil || got != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.at, got, err, tc.want)
		}
		f, err := EvalFields(s, env, nil)
		if err != nil || f["local"] != tc.local {
			t.Errorf("%s: local %v %v; want %s", tc.at, f["local"], err, tc.local)
		}
	}
}

func TestInZoneDiagnostics(t *testing.T) {
	wantDiags(t, `
signals:
  - name: s
    source: cloudtrail
    where: 'inZone(event.time, "Europe/Pariss").Hour() > 18'
`, `7:32: error: where: inZone: unknown time zone "Europe/Pariss"`)
	wantDiags(t, `
signals:
  - name: s
    source: cloudtrail
    where: 'inZone(event.time, "Local").Hour() > 18'
`, `7:32: error: where: inZone: unknown time zone "Local"`)
	wantDiags(t, `
signals:
  - name: s
    source: cloudtrail
    where: 'inZone(event.time).Hour() > 18'
`, `7:13: error: where: not enough arguments to call inZone`)
	// A zone read from the event is checked per event: it loads.
	wantDiags(t, `
signals:
  - name: s
    source: cloudtrail
    where: 'inZone(event.time, raw.tz ?? "UTC").Hour() > 18'
`)
}
