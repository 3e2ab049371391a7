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

func TestLeakyLoads(t *testing.T) {
	set, diags := loadString(t, `
rules:
  - id: r
    severity: high
    detect:
      threshold: {signal: exec, leaky: {capacity: 5, leakspeed: 30s}}
`+baseSignals, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	th := set.Rules[0].Threshold
	if th.Leaky == nil || th.Leaky.Capacity != 5 || th.Leaky.LeakSpeed != 30*time.Second ||
		th.Window != 150*time.Second || th.Agg != AggCount || !th.ResetAfterFire || set.Rules[0].Retention != 150*time.Second {
		t.Errorf("threshold %+v leaky %+v", th, th.Leaky)
	}
}

func TestLeakyDiagnostics(t *testing.T) {
	wantDiags(t, `
rules:
  - id: r
    severity: high
    detect:
      threshold: {signal: exec, window: 1m, leaky: {capacity: 5, leakspeed: 30s}}
`+baseSignals, `8:33: error: threshold: leaky replaces window, count/distinct/sum/avg and after_fire`)
	wantDiags(t, `
rules:
  - id: r
    severity: high
    detect:
      threshold: {signal: exec, leaky: {capacity: 0, leakspeed: 30s}}
`+baseSignals, `8:51: error: threshold.leaky.capacity must be ≥ 1, got 0`)
	wantDiags(t, `
rules:
  - id: r
    severity: high
    detect:
      threshold: {signal: exec, leaky: {capacity: 2, leakspeed: 0s}}
`+baseSignals, `8:65: error: threshold.leaky.leakspeed must be > 0`)
	wantDiags(t, `
rules:
  - id: r
    severity: high
    detect:
      threshold: {signal: exec, leaky: {capacity: 2}}
`+baseSignals, `8:40: error: threshold.leaky: missing leakspeed`)
	wantDiags(t, `
rules:
  - id: r
    severity: high
    detect:
      threshold: {signal: exec, leaky: {capacity: 2000, leakspeed: 1h}}
`+baseSignals, `8:40: error: threshold.leaky: capacity × leakspeed = 83d8h exceeds the retention limit 7d`)
}

func TestTemporalMinCount(t *testing.T) {
	set, diags := loadString(t, `
rules:
  - id: r
    severity: high
    detect:
      temporal:
        window: 1h
        signals: {a: {signal: exec, min_count: 10}, b: shell}
`+baseSignals, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tp := set.Rules[0].Temporal
	if tp.Signals[0].MinCount != 10 || tp.Signals[1].MinCount != 0 {
		t.Errorf("min counts %d %d", tp.Signals[0].MinCount, tp.Signals[1].MinCount)
	}
	wantDiags(t, `
rules:
  - id: r
    severity: high
    detect:
      temporal:
        window: 1h
        signals: {a: {signal: exec, min_count: 0}, b: shell}
`+baseSignals, `10:48: error: temporal.signals.a.min_count must be ≥ 1, got 0`)
}

func TestDistinctEvidence(t *testing.T) {
	for _, tc := range []struct {
		opt  string
		want bool
	}{{"", true}, {", evidence: distinct", true}, {", evidence: all", false}} {
		set, diags := loadString(t, `
rules:
  - id: r
    severity: high
    detect:
      threshold: {signal: shell, window: 1m, distinct: {field: fields.dest, gte: 3`+tc.opt+`}}
`+baseSignals, LoadOptions{})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if got := set.Rules[0].Threshold.DistinctEvidence; got != tc.want {
			t.Errorf("%q: DistinctEvidence %v", tc.opt, got)
		}
	}
	wantDiags(t, `
rules:
  - id: r
    severity: high
    detect:
      threshold: {signal: shell, window: 1m, distinct: {field: fields.dest, gte: 3, evidence: some}}
`+baseSignals, `8:95: error: threshold.distinct.evidence: want distinct or all, got "some"`)
	wantDiags(t, `
rules:
  - id: r
    severity: high
    detect:
      threshold: {signal: shell, window: 1m, count: {gte: 3, evidence: all}}
`+baseSignals, `8:62: error: unknown key "evidence" in threshold.count`)
}

func TestByFields(t *testing.T) {
	body := `
rules:
  - id: r
    severity: high
    by: [{name: dest, expr: 'fields.dest'}]
    detect:
      temporal: {window: 1h, signals: {a: exec, b: shell}}
` + baseSignals
	set, diags := loadString(t, body, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !set.Rules[0].By[0].ReadsFields {
		t.Error("ReadsFields not set")
	}
	var notes []string
	for _, d := range diags {
		if d.Severity == SevNote && strings.Contains(d.String(), ": by ") {
			notes = append(notes, strings.TrimPrefix(d.String(), "t.yaml:"))
		}
	}
	want := "7:29: note: by dest reads fields.dest, which signal exec does not extract"
	if len(notes) != 1 || !strings.HasPrefix(notes[0], want) {
		t.Errorf("notes %q, want one %q", notes, want)
	}
	// Resolve signals are keyed too.
	_, diags = loadString(t, strings.Replace(body, "    detect:", "    resolve: {signal: shell}\n    detect:", 1), LoadOptions{})
	n := 0
	for _, d := range diags {
		if d.Severity == SevNote && strings.Contains(d.String(), "which signal") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("resolve by shell (which has dest): %d notes, want 1 (exec)", n)
	}
	_, diags = loadString(t, strings.Replace(body, "    detect:", "    resolve: {signal: cpu}\n    detect:", 1), LoadOptions{})
	n = 0
	for _, d := range diags {
		if d.Severity == SevNote && strings.Contains(d.String(), "which signal cpu") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("resolve by cpu (no dest): %d notes, want 1", n)
	}
	// A by without fields reads is not per signal.
	set, _ = loadString(t, strings.Replace(body, "fields.dest", "raw.x", 1), LoadOptions{})
	if set.Rules[0].By[0].ReadsFields {
		t.Error("ReadsFields set for raw.x")
	}
}
