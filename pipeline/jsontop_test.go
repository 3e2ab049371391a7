package pipeline

import (
	"reflect"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
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

func TestProjectMatchesFullDecode(t *testing.T) {
	docs := []string{
		`{"eventName":"ExecuteCommand","requestParameters":{"task":"t","a":[1,{"b":"}"}]},"errorCode":null,"n":1.5e3}`,
		` { "a" : "x\"}y" , "b":[["]"],{}], "c":true,"d":false , "e": -0.25 } `,
		`{"dup":1,"x":{"dup":3},"dup":2}`,
		`{"esc\u0061ped":"v","plain":"w"}`,
		`{}`,
		`{"Type":"Task","CpuUtilized":12.5,"CpuReserved":1024,"CloudWatchMetrics":[{"Metrics":[{"Name":"CpuUtilized"}]}]}`,
	}
	keys := []string{"eventName", "requestParameters", "errorCode", "n", "a", "b", "c", "d", "e", "dup", "escaped", "Type", "CpuUtilized", "CpuReserved", "missing"}
	var paths [][]string
	for _, k := range keys {
		paths = append(paths, []string{k})
	}
	top := NewPathProjection(paths) // top-level keys, read whole
	for _, doc := range docs {
		got, ok := top.Project([]byte(doc))
		if !ok {
			t.Fatalf("project(%s) failed", doc)
		}
		var full map[string]any
		if err := json.Unmarshal([]byte(doc), &full); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{}
		for _, k := range keys {
			if v, ok := full[k]; ok {
				want[k] = v
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("project(%s)\n got %#v\nwant %#v", doc, got, want)
		}
	}
	for _, bad := range []string{``, `[]`, `{"a":`, `{"a":1`, `{"a" 1}`, `{"a":"unterminated}`, `{a:1}`} {
		if _, ok := top.Project([]byte(bad)); ok {
			t.Errorf("project(%q) accepted malformed input", bad)
		}
	}
}

// TestScanStringFindsTheEnd compares scanString and skipValue with
// encoding/json on strings whose quotes, backslashes and escaped quotes
// fall at every offset of the 8-byte words scanString reads at a time.
func TestScanStringFindsTheEnd(t *testing.T) {
	pieces := []string{`\"`, `\\`, `\\\"`, `"`, `\u0022`, `é`, `}`, `]`}
	checked := 0
	for pre := 0; pre < 20; pre++ {
		for _, p := range pieces {
			for post := 0; post < 12; post++ {
				body := strings.Repeat("a", pre) + p + strings.Repeat("b", post)
				s := `"` + body + `"` + `,"next":1}`
				var want string
				dec := json.NewDecoder(strings.NewReader(s))
				wantEnd := -1
				if err := dec.Decode(&want); err == nil {
					wantEnd = int(dec.InputOffset())
				}
				end, esc := scanString([]byte(s), 0)
				if end != wantEnd {
					t.Fatalf("scanString(%q) = %d, want %d", s, end, wantEnd)
				}
				if end > 0 && esc != strings.Contains(s[:end], `\`) {
					t.Fatalf("scanString(%q) escaped = %v", s, esc)
				}
				// The same string nested in an object and skipped whole.
				obj := `{"k":[` + s[:max(end, 0)] + `]}` + `,`
				if end > 0 {
					if got := skipValue([]byte(obj), 0); got != len(obj)-1 {
						t.Fatalf("skipValue(%q) = %d, want %d", obj, got, len(obj)-1)
					}
				}
				checked++
			}
		}
	}
	// Unterminated: a string cut inside an escape or its content.
	for _, s := range []string{`"abc`, `"abcdefghijklmnop\`, `"abcdefgh\"`, `"\`} {
		if end, _ := scanString([]byte(s), 0); end != -1 {
			t.Errorf("scanString(%q) = %d, want -1 (unterminated)", s, end)
		}
	}
	if checked != 20*len(pieces)*12 {
		t.Fatalf("checked %d strings", checked)
	}
}
