package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// longDigitRun is mayHoldLongInt's reference: a run of 16 digits or more
// with a number literal's neighbours.
func longDigitRun(b []byte) bool {
	for _, m := range regexp.MustCompile(`[0-9]{16,}`).FindAllIndex(b, -1) {
		lo, hi := m[0], m[1]
		if lo > 0 && b[lo-1] == '-' {
			lo--
		}
		if (lo == 0 || strings.IndexByte(":,[ \t\n\r", b[lo-1]) >= 0) && (hi == len(b) || strings.IndexByte(",}] \t\n\r.eE", b[hi]) >= 0) {
			return true
		}
	}
	return false
}

func TestMayHoldLongIntFindsEveryRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("0123456789/:.,[]}-eE\"x \xff\x00")
	for range 200000 {
		b := make([]byte, rng.IntN(48))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[i] = '0' + byte(rng.IntN(10))
			}
		}
		if got, want := mayHoldLongInt(b), longDigitRun(b); got != want {
			t.Fatalf("mayHoldLongInt(%q) = %v, want %v", b, got, want)
		}
	}
	// A typical record does not take the slow path, nor digits in a
	// session name.
	rec := []byte(`{"eventTime":"2026-12-04T01:02:03Z","recipientAccountId":"123456789012","arn":"arn:aws:iam::123456789012:role/x","ts":1733270523000,"requestID":"6d9c1a3e-1f2b-4c5d-8e9f-0a1b2c3d4e5f","port":443,"roleSessionName":"aws-go-sdk-1733270523123456789"}`)
	if mayHoldLongInt(rec) {
		t.Errorf("slow path for %s", rec)
	}
}

func TestNumberKeepsLongIntegers(t *testing.T) {
	for _, c := range []struct {
		lit  string
		want any
	}{
		{"443", 443.0},
		{"-1.5e3", -1500.0},
		{"123456789012345", 123456789012345.0},
		{"9007199254740992", 9007199254740992.0}, // 2^53: float64 holds it
		{"-9007199254740992", -9007199254740992.0},
		{"9007199254740993", int64(9007199254740993)},
		{"-9007199254740993", int64(-9007199254740993)},
		{"9223372036854775807", int64(9223372036854775807)},
		{"-9223372036854775808", int64(-9223372036854775808)},
		{"9223372036854775808", 9223372036854775808.0}, // beyond int64: a float
		{"9007199254740993.5", 9007199254740993.5},
		{"1e400", nil},
	} {
		got, ok := number([]byte(c.lit))
		if c.want == nil {
			if ok {
				t.Errorf("number(%s) = %v, want an error", c.lit, got)
			}
			continue
		}
		if !ok || got != c.want {
			t.Errorf("number(%s) = %#v, %v; want %#v", c.lit, got, ok, c.want)
		}
	}
}

func TestUnmarshalRecordAndProjectKeepLongIntegers(t *testing.T) {
	rec := []byte(`{"a":9007199254740993,"b":{"c":[1,18446744073709551615,{"d":-9007199254740993}]},"s":"9007199254740993","f":0.5}`)
	want := map[string]any{
		"a": int64(9007199254740993),
		"b": map[string]any{"c": []any{1.0, 18446744073709551615.0, map[string]any{"d": int64(-9007199254740993)}}},
		"s": "9007199254740993",
		"f": 0.5,
	}
	var m map[string]any
	if err := UnmarshalRecord(rec, &m); err != nil || !reflect.DeepEqual(m, want) {
		t.Errorf("UnmarshalRecord = %#v, %v\nwant %#v", m, err, want)
	}
	var v any
	if err := UnmarshalRecord(rec, &v); err != nil || !reflect.DeepEqual(v, any(want)) {
		t.Errorf("UnmarshalRecord(*any) = %#v, %v", v, err)
	}
	if err := UnmarshalRecord([]byte(`{"a":9007199254740993`), &m); err == nil {
		t.Error("a truncated record decoded")
	}
	// The projection decodes alike: a scalar, a value read whole, and
	// through an array.
	pp := NewPathProjection([][]string{{"a"}, {"b"}, {"f"}})
	got, ok := pp.Project(rec)
	delete(want, "s")
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("Project = %#v, %v\nwant %#v", got, ok, want)
	}
	pp = NewPathProjection([][]string{{"b", "c", "d"}})
	got, ok = pp.Project(rec)
	wantD := map[string]any{"b": map[string]any{"c": []any{1.0, 18446744073709551615.0, map[string]any{"d": int64(-9007199254740993)}}}}
	if !ok || !reflect.DeepEqual(got, wantD) {
		t.Errorf("Project(b.c.d) = %#v, %v\nwant %#v", got, ok, wantD)
	}
}

// UnmarshalRecord decodes as encoding/json with UseNumber does, each
// number then read by number (the reference), whatever the input; and the
// fast path is taken only when no 16-digit literal can be there.
func FuzzUnmarshalRecord(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, `{"a":9007199254740993}`, `{"a":[1,-9007199254740993,{"b":1e400}]}`, `{"s":"aws-go-sdk-1733270523123456789"}`,
		`{"a":12345678901234567890123}`, `{"a":-0.12345678901234567e3}`, `[9007199254740993]`, `{"a":9007199254740993`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got any
		gerr := UnmarshalRecord(b, &got)
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var want any
		werr := d.Decode(&want)
		if werr == nil && d.More() {
			werr = errors.New("trailing data")
		}
		if werr == nil {
			if _, err := d.Token(); err != io.EOF {
				werr = errors.New("trailing data")
			}
		}
		if (gerr == nil) != (werr == nil) {
			// The two decoders may disagree on what is valid at the edges
			// (goccy is laxer with some invalid UTF-8 and number forms);
			// only the decodes both accept are compared.
			return
		}
		if gerr != nil {
			return
		}
		want = exactNumbers(want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("UnmarshalRecord(%q) = %#v\nwant %#v", b, got, want)
		}
	})
}
