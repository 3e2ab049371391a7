package rule

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "0s": 0, "90s": 90 * time.Second, "1h30m": 90 * time.Minute, "1.5h": 90 * time.Minute,
		"500ms": 500 * time.Millisecond, "1µs": time.Microsecond, "1us": time.Microsecond,
		"7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "2w": 14 * 24 * time.Hour,
		"2w1d": 15 * 24 * time.Hour, "0.5d": 12 * time.Hour, " 5m ": 5 * time.Minute,
		"1h1d": 25 * time.Hour,
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"30":           `invalid duration "30": a unit is required (e.g. 30s or 30m)`,
		"1.5":          `invalid duration "1.5": a unit is required (e.g. 1.5s or 1.5m)`,
		"":             `empty duration (want e.g. 90s, 10m, 1h30m, 7d, 2w)`,
		"-5m":          `invalid duration "-5m" (want e.g. 90s, 10m, 1h30m, 7d, 2w)`,
		"+5m":          `invalid duration "+5m" (want e.g. 90s, 10m, 1h30m, 7d, 2w)`,
		"5x":           `invalid duration "5x" (want e.g. 90s, 10m, 1h30m, 7d, 2w)`,
		"d":            `invalid duration "d" (want e.g. 90s, 10m, 1h30m, 7d, 2w)`,
		"1h 30m":       `invalid duration "1h 30m" (want e.g. 90s, 10m, 1h30m, 7d, 2w)`,
		"1h30":         `invalid duration "1h30" (want e.g. 90s, 10m, 1h30m, 7d, 2w)`,
		"1e3s":         `invalid duration "1e3s" (want e.g. 90s, 10m, 1h30m, 7d, 2w)`,
		"20000w":       `invalid duration "20000w" (want e.g. 90s, 10m, 1h30m, 7d, 2w)`,
		"15000w15000w": `invalid duration "15000w15000w": too long`,
	} {
		if _, err := ParseDuration(in); err == nil || err.Error() != want {
			t.Errorf("ParseDuration(%q) error %v; want %s", in, err, want)
		}
	}
}

// A bare number in a rule is an error at its position, as in rule tests.
func TestBareNumberDuration(t *testing.T) {
	_, diags := loadString(t, `
rules:
  - id: r
    title: t
    severity: low
    detect:
      threshold:
        signal: exec
        window: 30
        count: {gte: 2}
`+baseSignals, LoadOptions{})
	want := `t.yaml:11:17: error: threshold.window: invalid duration "30": a unit is required (e.g. 30s or 30m)`
	if got := diags.Errors().Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
