package pipeline

import (
	"os"
	"testing"
)

// BenchmarkIndexObject indexes every record of a decompressed CloudTrail
// object named by ECSCORR_BENCH_CT (say, one file of the Invictus corpus
// gunzipped), the reading phase's cost per record.
func BenchmarkIndexObject(b *testing.B) {
	path := os.Getenv("ECSCORR_BENCH_CT")
	if path == "" {
		b.Skip("ECSCORR_BENCH_CT is not set")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	// The records start after `{"Records":[`.
	start := 0
	for start < len(data) && data[start] != '[' {
		start++
	}
	start++
	b.SetBytes(int64(len(data)))
	var dst []Member
	for b.Loop() {
		i, n := start, 0
		for i < len(data) && data[i] == '{' {
			var end int
			var ok bool
			dst, end, ok = IndexObject(data[i:], dst[:0])
			if !ok {
				b.Fatalf("record %d at %d: not indexed", n, i)
			}
			i += end
			n++
			if i < len(data) && data[i] == ',' {
				i++
			}
		}
	}
}
