package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Epoch magnitude bounds used to pick the unit of a number. Seconds below
// 1e11 reach year 5138; ms below 1e14 reach year 5138; µs below 1e17 too;
// anything larger is taken as nanoseconds.
const (
	epochMsFrom = 1e11
	epochUsFrom = 1e14
	epochNsFrom = 1e17
)

// ParseTime turns a decoded JSON value into a UTC time: a string (RFC 3339
// or numeric), a number (float64, json.Number, integers) or a time.Time.
// Numbers are epoch seconds, ms, µs or ns chosen by magnitude.
func ParseTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case string:
		return ParseTimeString(t)
	case json.Number:
		return ParseTimeString(string(t))
	case float64:
		return epochFloat(t)
	case float32:
		return epochFloat(float64(t))
	case int:
		return epochInt(int64(t)), nil
	case int64:
		return epochInt(t), nil
	case int32:
		return epochInt(int64(t)), nil
	case uint64:
		if t > math.MaxInt64 {
			return time.Time{}, fmt.Errorf("time %d out of range", t)
		}
		return epochInt(int64(t)), nil
	case time.Time:
		if t.IsZero() {
			return time.Time{}, errors.New("zero time")
		}
		return t.UTC(), nil
	case nil:
		return time.Time{}, errors.New("time is null")
	}
	return time.Time{}, fmt.Errorf("time has unsupported type %T", v)
}

// layouts are tried in order after the fast RFC 3339 path.
var layouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02",
}

// ParseTimeString parses an ISO 8601 / RFC 3339 time (with or without
// fractional seconds, Z or an offset, T or a space) or a numeric epoch
// string. The result is always UTC.
func ParseTimeString(s string) (time.Time, error) {
	if t, ok := parseUTCSeconds(s); ok {
		return t, nil
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("empty time")
	}
	if c := s[0]; (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' {
		if isNumeric(s) {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return epochInt(i), nil
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("time %q: %w", s, err)
			}
			return epochFloat(f)
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised time %q", s)
}

// isNumeric reports whether s looks like a JSON number (no date separators
// after the first character, no colons).
func isNumeric(s string) bool {
	digits := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = true
		case c == '.', c == 'e', c == 'E', c == '+':
		case c == '-':
			// A minus is only part of a number at the start or in an exponent.
			if i != 0 && s[i-1] != 'e' && s[i-1] != 'E' {
				return false
			}
		default:
			return false
		}
	}
	return digits
}

func epochInt(n int64) time.Time {
	a := n
	if a < 0 {
		a = -a
	}
	switch {
	case a >= epochNsFrom:
		return time.Unix(0, n).UTC()
	case a >= epochUsFrom:
		return time.UnixMicro(n).UTC()
	case a >= epochMsFrom:
		return time.UnixMilli(n).UTC()
	}
	return time.Unix(n, 0).UTC()
}

func epochFloat(f float64) (time.Time, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, fmt.Errorf("time %v is not a number", f)
	}
	a := math.Abs(f)
	if a >= 9.2e18 {
		return time.Time{}, fmt.Errorf("time %v out of range", f)
	}
	var ns float64
	switch {
	case a >= epochNsFrom:
		ns = f
	case a >= epochUsFrom:
		ns = f * 1e3
	case a >= epochMsFrom:
		ns = f * 1e6
	default:
		// Seconds: keep the integral part exact and round the fraction to µs,
		// which is all a float64 epoch carries.
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC(), nil
	}
	return time.Unix(0, int64(ns)).UTC(), nil
}

// parseUTCSeconds reads the form CloudTrail writes every eventTime in,
// 2006-01-02T15:04:05Z, without the general parser (a replay parses a
// million of them); anything else, including an out-of-range field, is
// left to it.
func parseUTCSeconds(s string) (time.Time, bool) {
	if len(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	y, mo, d, h, mi, sec := num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	leap := y%4 == 0 && (y%100 != 0 || y%400 == 0)
	if d > 28 && (mo == 2 && (d > 29 || !leap) || d > 30 && (mo == 4 || mo == 6 || mo == 9 || mo == 11) || d > 31) {
		return time.Time{}, false // 31 April: time.Parse refuses it
	}
	// Days since 1970-01-01 of the proleptic Gregorian date (the civil
	// days algorithm: years start in March, so leap days end them).
	if mo <= 2 {
		y--
	}
	era := y / 400
	if y < 0 { // year 0's January and February: floor, not truncate
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (mo + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := era*146097 + doe - 719468
	return time.Unix(int64(days)*86400+int64(h*3600+mi*60+sec), 0).UTC(), true
}
