package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
)

// anchor is what a --since/--until value is relative to.
type anchor int

const (
	anchorNone   anchor = iota // the flag was not given
	anchorAbs                  // a date or date-time
	anchorNow                  // -24h, now-1h: the wall clock at the start of the run
	anchorNewest               // newest-24h: the newest event read
)

// timeArg is a parsed --since or --until value.
type timeArg struct {
	flag, raw string
	anchor    anchor
	abs       time.Time     // anchorAbs
	off       time.Duration // anchorNow, anchorNewest
}

// timeArgHelp is the accepted syntax, for flag help and errors (never a Go
// layout string).
const timeArgHelp = "a date (2023-07-10, UTC midnight), a date-time (2023-07-10T12:00:00Z, 2023-07-10T12:00+02:00; " +
	"2023-07-10 12:00 or 2023-07-10T12:00 without a zone is UTC), an offset from now (-24h, -90m, -7d, now-1h) " +
	"or from the newest event read (newest-24h)"

// dateTimeLayouts are tried in order; a zone-less value is UTC.
var dateTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseTimeArg parses a --since/--until value; "" is no bound.
func parseTimeArg(flagName, s string) (timeArg, error) {
	a := timeArg{flag: flagName, raw: s}
	v := strings.TrimSpace(s)
	if v == "" {
		return a, nil
	}
	bad := func(why string) (timeArg, error) {
		if why != "" {
			why = " (" + why + ")"
		}
		return timeArg{}, fmt.Errorf("%s %q%s: want %s", flagName, s, why, timeArgHelp)
	}
	lower := strings.ToLower(v)
	for _, p := range []struct {
		word string
		a    anchor
	}{{"newest", anchorNewest}, {"now", anchorNow}} {
		if rest, ok := strings.CutPrefix(lower, p.word); ok {
			a.anchor = p.a
			if rest == "" {
				return a, nil
			}
			off, err := parseOffset(rest)
			if err != nil {
				return bad(err.Error())
			}
			a.off = off
			return a, nil
		}
	}
	if v[0] == '-' || v[0] == '+' {
		off, err := parseOffset(v)
		if err != nil {
			return bad(err.Error())
		}
		a.anchor, a.off = anchorNow, off
		return a, nil
	}
	// RFC 3339 allows a space for the T; lower-case t and z too.
	norm := strings.ToUpper(v)
	if len(norm) > 10 && norm[10] == ' ' {
		norm = norm[:10] + "T" + norm[11:]
	}
	why := ""
	for _, layout := range dateTimeLayouts {
		t, err := time.Parse(layout, norm)
		if err == nil {
			a.anchor, a.abs = anchorAbs, t.UTC()
			return a, nil
		}
		// Only a value of the right shape with an impossible field says
		// why ("day out of range"); the layout itself is never shown.
		var pe *time.ParseError
		if why == "" && errors.As(err, &pe) && strings.Contains(pe.Message, "out of range") {
			why = strings.TrimPrefix(pe.Message, ": ")
		}
	}
	return bad(why)
}

// parseOffset parses "-24h", "+90m", "-7d", "-1h30m".
func parseOffset(s string) (time.Duration, error) {
	if s == "" || (s[0] != '-' && s[0] != '+') {
		return 0, fmt.Errorf("an offset starts with - or +")
	}
	d, err := rule.ParseDuration(s[1:])
	if err != nil {
		return 0, errors.New("not a duration such as 24h, 90m, 7d or 1h30m")
	}
	if s[0] == '-' {
		d = -d
	}
	return d, nil
}

// resolve returns the instant a stands for (zero for no bound).
func (a timeArg) resolve(now, newest time.Time) time.Time {
	switch a.anchor {
	case anchorAbs:
		return a.abs
	case anchorNow:
		return now.Add(a.off).UTC()
	case anchorNewest:
		if newest.IsZero() {
			return time.Time{}
		}
		return newest.Add(a.off).UTC()
	}
	return time.Time{}
}

// String shows the value as given and, when relative, what it resolved to.
func (a timeArg) describe(t time.Time) string {
	if a.anchor == anchorAbs || t.IsZero() {
		return fmt.Sprintf("%s %s", a.flag, a.raw)
	}
	return fmt.Sprintf("%s %s (%s)", a.flag, a.raw, t.Format(time.RFC3339Nano))
}

// usageError is a bad command line found after parsing (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// timeRange is a replay's --since/--until.
type timeRange struct{ since, until timeArg }

// needsNewest reports whether the range can only be resolved once the
// input has been read.
func (r timeRange) needsNewest() bool {
	return r.since.anchor == anchorNewest || r.until.anchor == anchorNewest
}

// resolve returns the range's bounds, or a usageError when it is empty
// (since at or after until).
func (r timeRange) resolve(now, newest time.Time) (since, until time.Time, err error) {
	since, until = r.since.resolve(now, newest), r.until.resolve(now, newest)
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return since, until, &usageError{fmt.Sprintf("%s is not before %s: the range is empty (--until is exclusive)", r.since.describe(since), r.until.describe(until))}
	}
	return since, until, nil
}

// check finds an empty range before anything is read: always when both
// bounds have the same anchor, else when neither needs the input.
func (r timeRange) check(now time.Time) error {
	if r.since.anchor == anchorNone || r.until.anchor == anchorNone {
		return nil
	}
	if r.since.anchor == anchorNewest && r.until.anchor == anchorNewest {
		// Any stand-in for the newest event decides it.
		_, _, err := r.resolve(now, now)
		if err != nil {
			return &usageError{fmt.Sprintf("%s is not before %s: the range is empty (--until is exclusive)", r.since.describe(time.Time{}), r.until.describe(time.Time{}))}
		}
		return nil
	}
	if r.needsNewest() {
		return nil
	}
	_, _, err := r.resolve(now, time.Time{})
	return err
}
