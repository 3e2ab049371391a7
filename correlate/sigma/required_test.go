package sigma

import (
	"fmt"
	"strings"
	"testing"
)

// Required lists exactly the fields without which the condition is false.
func TestRequired(t *testing.T) {
	cases := []struct {
		detection string
		want      string // field@line:col, in order
	}{
		{"  sel: {eventName: A, a.b: x}\n  condition: sel", "eventName@5:9 a.b@5:23"},
		{"  sel:\n    - {x: 1, y: 2}\n    - {x: 3}\n  condition: sel", "x@6:8"},
		{"  a: {x: 1}\n  b: {y: 1}\n  condition: a or b", ""},
		{"  a: {x: 1}\n  b: {y: 1}\n  condition: a and not b", "x@5:7"},
		{"  a: {x: 1}\n  b: {x: 2, y: 1}\n  condition: 1 of them", "x@5:7"},
		{"  a: {x: 1}\n  b: {y: 1}\n  condition: all of them", "x@5:7 y@6:7"},
		{"  a: {x: null, y|exists: false, z|neq: 1, w|exists: true}\n  condition: a", "w@5:43"},
		{"  a: {x|fieldref: y}\n  condition: a", "x@5:7 y@5:19"},
		{"  a: {x|fieldref: [y, z]}\n  condition: a", "x@5:7"},
		{"  a: {x|fieldref|all: [y, z]}\n  condition: a", "x@5:7 y@5:24 z@5:27"},
		{"  a: ['kw']\n  condition: a", ""},
	}
	for _, tc := range cases {
		data := fmt.Sprintf("title: t\nid: r\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n%s\n", tc.detection)
		r, ds := Parse("t.yml", []byte(data))
		if r == nil {
			t.Fatalf("%q: %v", tc.detection, ds)
		}
		m, err := Compile(r)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range m.Required() {
			got = append(got, fmt.Sprintf("%s@%d:%d", f.Field, f.Pos.Line, f.Pos.Col))
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%q: Required = %q, want %q", tc.detection, g, tc.want)
		}
	}
}
