package pipeline

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/internal/testfix"
)

// checkSkips compares, at every bracket of d, skipNested with the scalar
// walk, at every quote scanString with the plain scan, and at every byte
// plainRun with the SWAR scan: built with
// GOEXPERIMENT=simd on a CPU with AVX2 (make test), the vector code is
// checked against the scalar; otherwise they are one.
func checkSkips(t testing.TB, d []byte) {
	t.Helper()
	for i, c := range d {
		if c == '{' || c == '[' {
			if got, want := skipNested(d, i), skipNestedScalar(d, i, 0, false); got != want {
				t.Fatalf("skipNested(%q, %d) = %d, scalar %d", d, i, got, want)
			}
		}
		if got, want := plainRun(d, i), plainRunSWAR(d, i); got != want {
			t.Fatalf("plainRun(%q, %d) = %d, SWAR %d", d, i, got, want)
		}
		if c == '"' {
			gotEnd, gotEsc := scanString(d, i)
			wantEnd, wantEsc := stringFrom(d, i+1)
			if gotEnd != wantEnd || gotEsc != wantEsc {
				t.Fatalf("scanString(%q, %d) = %d, %v; stringFrom %d, %v", d, i, gotEnd, gotEsc, wantEnd, wantEsc)
			}
		}
	}
}

// The vector scans agree with the scalar ones on the Invictus records, on
// values whose strings, escapes and brackets straddle every 64-byte block
// boundary, on broken values, and on random bytes of JSON's alphabet.
func TestSkipNestedMatchesScalar(t *testing.T) {
	data := testfix.Gunzip(t, "../sources/archive/testdata/invictus/invictus_stratus_cloudtrail_part1.json.gz")
	// Whole-file walks are quadratic here: the first records, and the
	// whole file from its first bracket.
	checkSkips(t, data[:min(len(data), 20000)])
	if i := bytes.IndexByte(data, '['); skipNested(data, i) != bytes.LastIndexByte(data, ']')+1 {
		t.Fatalf("the Records array ends at %d", skipNested(data, i))
	}
	pad := func(n int) string { return strings.Repeat("a", n) }
	var cases []string
	for n := range 70 {
		cases = append(cases,
			`{"k":"`+pad(n)+`","n":{"x":[1,2,{"y":"}]"}]}}`,
			`{"k":"`+pad(n)+`\"}","v":"\\","w":{}}`,
			`[`+pad(n)+`"\\\"]"]`,
			`{"a":"`+pad(n)+`}`,            // unterminated string
			`{"a":{"b":[`+pad(n)+`]}`,      // never closed
			`{"a":"x"}}]`+pad(n)+`{"z":1}`, // closed early, then more
			`{`+pad(n)+`\"{[}`,             // a backslash outside a string
		)
	}
	for _, c := range cases {
		checkSkips(t, []byte(c))
	}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = `{}[]"\\:,a0 `
	for range 3000 {
		b := make([]byte, 1+r.IntN(300))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		checkSkips(t, b)
	}
}

func FuzzSkipNested(f *testing.F) {
	f.Add([]byte(`{"k":"v","n":{"x":[1,2,{"y":"}]"}]},"e":"\"\\"}`))
	f.Add([]byte(`[[[[` + strings.Repeat(`"\\"`, 30) + `]]]]`))
	f.Fuzz(func(t *testing.T, d []byte) { checkSkips(t, d) })
}
