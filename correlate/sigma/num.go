package sigma

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
)

// numLit is a rule's number, compared with a record's numbers exactly:
// float64 serves every value it holds (nearly all), and a big.Rat the
// integers beyond 2^53, on either side (records decode those as int64 or
// uint64: pipeline.UnmarshalRecord).
type numLit struct {
	f     float64
	exact bool     // f is the literal's value
	r     *big.Rat // the literal's value (nil: a float that is not finite)
}

func newNumLit(v Value) numLit {
	l := numLit{f: v.Num}
	if r, ok := new(big.Rat).SetString(v.Text); ok && isDecimalInt(v.Text) {
		l.r = r
	} else if !math.IsInf(v.Num, 0) && !math.IsNaN(v.Num) {
		l.r = new(big.Rat).SetFloat64(v.Num)
	}
	if l.r != nil {
		if f, exact := l.r.Float64(); exact && f == v.Num {
			l.exact = true
		}
	} else {
		l.exact = true // ±Inf compares as a float
	}
	return l
}

func isDecimalInt(s string) bool {
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// cmp compares the number x holds with l: -1, 0 or +1, and false when x
// holds no number (or NaN). Strings that parse as numbers are numbers.
func (l numLit) cmp(x any) (int, bool) {
	var r *big.Rat
	switch x := x.(type) {
	case float64:
		if l.exact || math.IsInf(x, 0) {
			return cmpFloat(x, l.f)
		}
		r = new(big.Rat).SetFloat64(x)
		if r == nil {
			return 0, false
		}
	case int64:
		if x >= -(1<<53) && x <= 1<<53 && l.exact {
			return cmpFloat(float64(x), l.f)
		}
		r = new(big.Rat).SetInt64(x)
	case uint64:
		r = new(big.Rat).SetUint64(x)
	case int:
		r = new(big.Rat).SetInt64(int64(x))
	case float32:
		return l.cmp(float64(x))
	case json.Number:
		return l.cmpString(string(x))
	case string:
		return l.cmpString(x)
	default:
		return 0, false
	}
	if l.r == nil {
		return cmpFloat(0, l.f) // l is ±Inf: any finite number compares as 0 does
	}
	return r.Cmp(l.r), true
}

func (l numLit) cmpString(s string) (int, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	if len(s) > 15 && isDecimalInt(s) && l.r != nil {
		if r, ok := new(big.Rat).SetString(s); ok {
			return r.Cmp(l.r), true
		}
	}
	return l.cmp(f)
}

func cmpFloat(a, b float64) (int, bool) {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return 0, false
	case a < b:
		return -1, true
	case a > b:
		return 1, true
	}
	return 0, true
}
