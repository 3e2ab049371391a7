package pipeline

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Times far outside the int64-nanosecond range (about 1678–2262) come out
// of a spilled sort exactly as they went in, in the same order as an
// in-memory sort: the result must not depend on --sort-mem.
func TestSorterExtremeTimesSurviveSpill(t *testing.T) {
	times := []time.Time{
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		{}, // 0001-01-01, the zero time
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2262, 4, 11, 23, 47, 16, 854775808, time.UTC), // one past UnixNano's max
		time.Date(1677, 9, 21, 0, 12, 43, 145224191, time.UTC),  // one before UnixNano's min
		time.Date(2023, 7, 10, 12, 1, 10, 0, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 500000000, time.UTC),
		time.Date(200000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	drain := func(maxBytes int64) (string, *Sorter) {
		s := &Sorter{MaxBytes: maxBytes, Dir: t.TempDir()}
		for i, tm := range times {
			if err := s.Add(&Event{ID: fmt.Sprintf("e%d", i), Source: SourceCloudTrail, Type: "x", Time: tm}); err != nil {
				t.Fatal(err)
			}
		}
		var out []string
		if err := s.Drain(func(e *Event) error {
			out = append(out, e.ID+"@"+e.Time.UTC().String())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, "\n"), s
	}
	mem, s := drain(1 << 30)
	if s.Spilled != 0 {
		t.Fatalf("in-memory sort spilled %d events", s.Spilled)
	}
	spilled, s := drain(1) // every event its own run
	if s.Spilled != uint64(len(times)) {
		t.Fatalf("spilled %d events, want %d", s.Spilled, len(times))
	}
	want := strings.Join([]string{
		"e1@0001-01-01 00:00:00 +0000 UTC",
		"e2@0001-01-01 00:00:00.000000001 +0000 UTC",
		"e4@1677-09-21 00:12:43.145224191 +0000 UTC",
		"e7@1969-12-31 23:59:59.5 +0000 UTC",
		"e6@1970-01-01 00:00:00 +0000 UTC",
		"e5@2023-07-10 12:01:10 +0000 UTC",
		"e3@2262-04-11 23:47:16.854775808 +0000 UTC",
		"e0@9999-12-31 23:59:59.999999999 +0000 UTC",
		"e8@200000-01-01 00:00:00 +0000 UTC",
	}, "\n")
	if mem != want {
		t.Errorf("in memory:\n%s\nwant:\n%s", mem, want)
	}
	if spilled != want {
		t.Errorf("spilled:\n%s\nwant:\n%s", spilled, want)
	}
}

// What a reader worked out of a record it did not keep (the matchers'
// verdict, the content digest) survives a spill: without them a spilled
// event would match nothing and conflict with nothing.
func TestSorterKeepsVerdictsThroughSpill(t *testing.T) {
	s := &Sorter{MaxBytes: 1, Dir: t.TempDir()}
	t0 := time.Date(2023, 7, 10, 12, 0, 0, 0, time.UTC)
	raw := []byte(`{"eventName":"AssumeRole"}`)
	for i := range 3 {
		ev := &Event{ID: fmt.Sprintf("e%d", i), Source: SourceCloudTrail, Type: "sts.amazonaws.com:AssumeRole", Time: t0.Add(time.Duration(2-i) * time.Second)}
		if i > 0 {
			ev.Judged, ev.JudgedBy = []uint64{1 << uint(i), 1 << 63}, 0xfeed
			ev.HashContent(raw)
		}
		if err := s.Add(ev); err != nil {
			t.Fatal(err)
		}
	}
	var d xxhash.Digest
	want := contentHash(&d, &Event{Type: "sts.amazonaws.com:AssumeRole", Time: t0.Add(time.Second)}, raw)
	var got []string
	if err := s.Drain(func(e *Event) error {
		got = append(got, fmt.Sprintf("%s %v %x %v", e.ID, e.Judged, e.JudgedBy, e.hashed))
		if e.ID == "e1" && e.contentHash != want {
			t.Errorf("e1's content digest %x, want %x", e.contentHash, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if s.Spilled != 3 {
		t.Fatalf("spilled %d", s.Spilled)
	}
	if w := "e2 [4 9223372036854775808] feed true|e1 [2 9223372036854775808] feed true|e0 [] 0 false"; strings.Join(got, "|") != w {
		t.Fatalf("got %s\nwant %s", strings.Join(got, "|"), w)
	}
}
