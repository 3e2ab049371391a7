package cwlogs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/sources/cwlogs/cwltest"
)

// BenchmarkRead reads 20,000 Container Insights events (2 clusters, 100
// task streams, pages of 10,000) through a fresh input per iteration
// against cwltest: the SDK, JSON 1.1 over loopback HTTP, SigV4, the
// per-stream position and the decoder.
func BenchmarkRead(b *testing.B) {
	w := newWorld(b, cwltest.Options{})
	const streams, tasksPer = 50, 2
	for _, c := range []string{"prod", "staging"} {
		for m := 0; m < 34; m++ {
			for s := 0; s < streams; s++ {
				w.put(c, fmt.Sprintf("FargateTelemetry-%d", s), int64(m)*3000, taskID(s*tasksPer), taskID(s*tasksPer+1))
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		in := w.input(Options{})
		if err := in.Open(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
		g := read(b, in, w.n)
		if i == 0 {
			b.ReportMetric(float64(len(g.last)), "position-bytes")
		}
	}
	b.ReportMetric(float64(w.n*b.N)/time.Since(start).Seconds(), "events/s")
}
