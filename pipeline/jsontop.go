package pipeline

import (
	"encoding/binary"
	"math/bits"
)

// ScanObject walks the top-level members of the JSON object in data,
// calling fn with each member's raw key (without quotes; escaped reports
// whether it holds escape sequences) and its raw value bytes. It stops
// early when fn returns false. It reports false when data is not a
// well-formed object at the top level; values are skipped by bracket depth
// and string scanning, not validated. Hot paths use it to read a few
// fields of a record without decoding all of it.
func ScanObject(data []byte, fn func(key []byte, escaped bool, value []byte) bool) bool {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i++
	for first := true; ; first = false {
		i = skipWS(data, i)
		if i >= len(data) {
			return false
		}
		if data[i] == '}' && first {
			return true
		}
		if data[i] != '"' {
			return false
		}
		kEnd, escaped := scanString(data, i)
		if kEnd < 0 {
			return false
		}
		key := data[i+1 : kEnd-1]
		i = skipWS(data, kEnd)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipWS(data, i+1)
		vEnd := skipValue(data, i)
		if vEnd < 0 {
			return false
		}
		if !fn(key, escaped, data[i:vEnd]) {
			return true
		}
		i = skipWS(data, vEnd)
		if i < len(data) && data[i] == ',' {
			i++
			continue
		}
		return i < len(data) && data[i] == '}'
	}
}

// UnquotePlain returns the contents of a JSON string value without escape
// sequences, and false for anything else (then decode it properly).
func UnquotePlain(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	for _, c := range v[1 : len(v)-1] {
		if c == '\\' || c < 0x20 {
			return "", false
		}
	}
	return string(v[1 : len(v)-1]), true
}

func skipWS(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\n' || d[i] == '\t' || d[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index just past the string starting at d[i] ('"')
// and whether it holds escapes; -1 if unterminated.
func scanString(d []byte, i int) (int, bool) {
	if j, ok := shortString(d, i+1); ok {
		return j, false
	}
	return stringFrom(d, i+1)
}

// stringFrom is scanString from d[j], inside the string.
func stringFrom(d []byte, j int) (int, bool) {
	esc := false
	for {
		j = plainRun(d, j)
		if j >= len(d) {
			return -1, false
		}
		if d[j] == '"' {
			return j + 1, esc
		}
		esc = true
		j += 2 // the escaped byte cannot end the string
	}
}

// plainRunSWAR returns the index of the first '"' or '\\' at or after
// d[j], len(d) when there is none: 16 bytes a turn, as two words (strings
// are most of a record).
func plainRunSWAR(d []byte, j int) int {
	for j+16 <= len(d) {
		w := d[j : j+16 : j+16]
		if m := quoteOrBackslash(binary.LittleEndian.Uint64(w)); m != 0 {
			return j + bits.TrailingZeros64(m)>>3
		}
		if m := quoteOrBackslash(binary.LittleEndian.Uint64(w[8:])); m != 0 {
			return j + 8 + bits.TrailingZeros64(m)>>3
		}
		j += 16
	}
	for j < len(d) && d[j] != '"' && d[j] != '\\' {
		j++
	}
	return j
}

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// quoteOrBackslash marks (with its high bit) each byte of x that is '"' or
// '\\', by the SWAR zero-byte test on x XOR each pattern. Only the lowest
// mark is exact: a borrow can mark a byte above it, so callers take the
// lowest.
func quoteOrBackslash(x uint64) uint64 {
	q := x ^ (lo8 * '"')
	b := x ^ (lo8 * '\\')
	return ((q-lo8)&^q | (b-lo8)&^b) & hi8
}

// skipNestedScalar returns the index just past the object or array whose
// walk is at d[j] at bracket depth depth (0: d[j] opens it), inside a
// string when inStr, or -1: brackets count by depth, whatever their kind,
// and strings are skipped whole.
func skipNestedScalar(d []byte, j, depth int, inStr bool) int {
	if inStr {
		end, _ := stringFrom(d, j)
		if end < 0 {
			return -1
		}
		j = end
	}
	for ; j < len(d); j++ {
		switch d[j] {
		case '"':
			end, _ := scanString(d, j)
			if end < 0 {
				return -1
			}
			j = end - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1
			}
		}
	}
	return -1
}

// skipValue returns the index just past the JSON value starting at d[i],
// or -1.
func skipValue(d []byte, i int) int {
	if i >= len(d) {
		return -1
	}
	switch d[i] {
	case '"':
		end, _ := scanString(d, i)
		return end
	case '{', '[':
		return skipNested(d, i)
	case ',', '}', ']', ':':
		return -1
	default:
		j := i
		for j < len(d) {
			switch d[j] {
			case ',', '}', ']', ' ', '\n', '\t', '\r':
				return j
			}
			j++
		}
		return j
	}
}

// scalar decodes the common scalar values without the JSON decoder; it
// reports false for objects, arrays and strings with escapes, which the
// decoder handles.
func scalar(v []byte) (any, bool) {
	if len(v) == 0 {
		return nil, false
	}
	switch {
	case v[0] == '"':
		return UnquotePlain(v)
	case string(v) == "null":
		return nil, true
	case string(v) == "true":
		return true, true
	case string(v) == "false":
		return false, true
	case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
		return number(v)
	}
	return nil, false
}
