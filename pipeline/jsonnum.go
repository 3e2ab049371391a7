package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"

	gojson "github.com/goccy/go-json"
)

// Numbers in a record decode as float64, which holds every integer up to
// 2^53 exactly. A longer integer literal (a 64-bit id, a byte count) would
// be rounded, and a matcher comparing it with a rule's value would compare
// the wrong digits; it decodes as int64 instead, when it fits, and stays a
// number for expressions and JSON output alike. An integer beyond int64,
// or a fraction, stays float64 (not uint64: expressions would wrap it to a
// negative int when comparing it with an int).

// number decodes a JSON number literal (the caller has checked that it
// starts like one).
func number(v []byte) (any, bool) {
	if len(v) > 15 && isInteger(v) {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return exactInt(n), true
		}
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return nil, false
	}
	return f, true
}

// exactInt is n as float64 when that holds it exactly, else n.
func exactInt(n int64) any {
	if n >= -(1<<53) && n <= 1<<53 {
		return float64(n)
	}
	return n
}

func isInteger(v []byte) bool {
	if v[0] == '-' {
		v = v[1:]
	}
	if len(v) == 0 || (v[0] == '0' && len(v) > 1) {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// mayHoldLongInt reports whether b may hold an integer literal of 16 digits
// or more (one that float64 may round): a run of as many digits with a
// literal's neighbours (numberAround; a string may pass too). It reads
// b eight bytes at a time: such a run covers a whole 8-byte word at a
// multiple of 8 from b's start, and only around a word of digits (an
// account id, a date) is the run measured.
func mayHoldLongInt(b []byte) bool {
	const (
		zeros = 0x3030303030303030
		add   = 0x7676767676767676
		high  = 0x8080808080808080
	)
	for i := 0; i+8 <= len(b); i += 8 {
		// Each byte XOR '0' is 0-9 for a digit; adding 0x76 sets its high
		// bit unless it is below 10 (a carry only comes out of a byte
		// that is not a digit, so it cannot hide one that is not).
		x := binary.LittleEndian.Uint64(b[i:]) ^ zeros
		if ((x+add)|x)&high != 0 {
			continue
		}
		lo, hi := i, i+8
		for lo > 0 && isDigit(b[lo-1]) {
			lo--
		}
		for hi < len(b) && isDigit(b[hi]) {
			hi++
		}
		if hi-lo >= 16 && numberAround(b, lo, hi) {
			return true
		}
		i = (hi &^ 7) - 8 // the next word not inside this run
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// numberAround reports whether the digits b[lo:hi] may be (the integer
// part of) a number literal, judged by the bytes around them: digits
// inside a string ("aws-go-sdk-1733270523000000000", a session name)
// rarely have a literal's neighbours.
func numberAround(b []byte, lo, hi int) bool {
	if lo > 0 && b[lo-1] == '-' {
		lo--
	}
	if lo > 0 {
		switch b[lo-1] {
		case ':', ',', '[', ' ', '\t', '\n', '\r':
		default:
			return false
		}
	}
	if hi < len(b) {
		switch b[hi] {
		case ',', '}', ']', ' ', '\t', '\n', '\r', '.', 'e', 'E':
		default:
			return false
		}
	}
	return true
}

// UnmarshalRecord decodes a JSON record (an object, or any value when v is
// *any) as the matchers read it: like encoding/json, but for integers that
// float64 would round (see above).
func UnmarshalRecord(b []byte, v any) error {
	if err := gojson.Unmarshal(b, v); err != nil {
		return err
	}
	if !mayHoldLongInt(b) {
		return nil
	}
	// Rare: decode again keeping the literals, and convert them.
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	switch p := v.(type) {
	case *map[string]any:
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return err
		}
		exactNumbers(m)
		*p = m
	case *any:
		var x any
		if err := d.Decode(&x); err != nil {
			return err
		}
		*p = exactNumbers(x)
	}
	return nil
}

// exactNumbers replaces the json.Numbers in v by what number decodes.
func exactNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, ok := number([]byte(v)); ok {
			return n
		}
	case map[string]any:
		for k, x := range v {
			switch x.(type) {
			case json.Number, map[string]any, []any:
				v[k] = exactNumbers(x)
			}
		}
	case []any:
		for i, x := range v {
			v[i] = exactNumbers(x)
		}
	}
	return v
}
