// Command insights writes a large Container Insights working set for the
// memory benchmark (make bench-rss): TASKS tasks × SAMPLES one-minute
// performance events, gzip JSON lines, seeded.
package main

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
)

func main() {
	out := flag.String("out", "/tmp/ecscorr-rss/ci.jsonl.gz", "output file")
	tasks := flag.Int("tasks", 90000, "distinct tasks")
	samples := flag.Int("samples", 40, "one-minute samples per task")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if err := os.MkdirAll(dirOf(*out), 0o755); err != nil {
		log.Fatal(err)
	}
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	w := bufio.NewWriterSize(zw, 1<<20)
	rng := rand.New(rand.NewPCG(*seed, 90))
	const t0 = 1772323200000 // 2026-03-01T00:00:00Z
	for s := range *samples {
		for t := range *tasks {
			fmt.Fprintf(w, `{"AccountID":"111122223333","ClusterName":"prod","CpuReserved":1024,"CpuUtilized":%.1f,"MemoryReserved":2048,"MemoryUtilized":512,"TaskId":"%032x","TaskDefinitionFamily":"app","TaskDefinitionRevision":"1","Timestamp":%d,"Type":"Task","Version":"0"}`+"\n",
				50+rng.Float64()*350, t, t0+s*60000)
		}
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "."
}
