package pipeline

import (
	"strings"
	"testing"
)

func TestScanObject(t *testing.T) {
	doc := ` {"a":1, "b" : {"x":"}\"]","y":[1,[2]]}, "c\u0041":"v", "d":[{"e":"f"}], "g":null}`
	var got []string
	ok := ScanObject([]byte(doc), func(k []byte, esc bool, v []byte) bool {
		mark := ""
		if esc {
			mark = "!"
		}
		got = append(got, string(k)+mark+"="+string(v))
		return true
	})
	want := `a=1|b={"x":"}\"]","y":[1,[2]]}|c\u0041!="v"|d=[{"e":"f"}]|g=null`
	if !ok || strings.Join(got, "|") != want {
		t.Fatalf("ScanObject = %v %q\nwant %q", ok, strings.Join(got, "|"), want)
	}
	// Stopping early is not a failure.
	n := 0
	if !ScanObject([]byte(doc), func([]byte, bool, []byte) bool { n++; return n < 2 }) || n != 2 {
		t.Fatalf("early stop: n=%d", n)
	}
	for _, bad := range []string{``, `[]`, `{"a":`, `{"a":1`, `{"a" 1}`, `{"a":"x}`, `{a:1}`, `{"a":1,}`, `{"a":,}`} {
		if ScanObject([]byte(bad), func([]byte, bool, []byte) bool { return true }) {
			t.Errorf("ScanObject(%q) accepted malformed input", bad)
		}
	}
	for in, want := range map[string]string{`"plain"`: "plain", `""`: ""} {
		if s, ok := UnquotePlain([]byte(in)); !ok || s != want {
			t.Errorf("UnquotePlain(%s) = %q %v", in, s, ok)
		}
	}
	for _, in := range []string{`"esc\n"`, `12`, `"`} {
		if _, ok := UnquotePlain([]byte(in)); ok {
			t.Errorf("UnquotePlain(%s) accepted", in)
		}
	}
}
