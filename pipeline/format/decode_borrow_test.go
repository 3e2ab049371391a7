package format

import (
	"math/rand/v2"
	"testing"
)

// borrowPlain takes a JSON string without escapes or control bytes as it
// is, and refuses the rest: checked against a byte loop on strings of
// every length up to 40 with each kind of byte at every offset, and on
// random ones.
func TestBorrowPlainAgreesWithAByteLoop(t *testing.T) {
	plain := func(in []byte) bool {
		for _, c := range in {
			if c == '\\' || c < 0x20 {
				return false
			}
		}
		return true
	}
	check := func(in []byte) {
		t.Helper()
		v := append(append([]byte{'"'}, in...), '"')
		s, ok := borrowPlain(v)
		if want := plain(in); ok != want || ok && s != string(in) {
			t.Fatalf("borrowPlain(%q) = %q, %v; want %v", v, s, ok, want)
		}
	}
	for n := 0; n <= 40; n++ {
		for at := 0; at < n; at++ {
			for _, c := range []byte{0x00, 0x01, 0x1f, 0x20, '\\', '"', 0x7f, 0x80, 0xc3, 0xff, 'a'} {
				in := make([]byte, n)
				for i := range in {
					in[i] = 'x'
				}
				in[at] = c
				check(in)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0x00, 0x1f, 0x20, 0x21, '\\', 0x7f, 0x80, 0xa0, 0xe0, 0xff, 'a', 'Z'}
	for range 20000 {
		in := make([]byte, r.IntN(33))
		for i := range in {
			in[i] = alphabet[r.IntN(len(alphabet))]
			if r.IntN(3) > 0 {
				in[i] = 'a' + byte(r.IntN(26)) // mostly plain, so that both answers come up
			}
		}
		check(in)
	}
}
