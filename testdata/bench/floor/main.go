// Command floor measures the decode floor of a CloudTrail archive: with
// -workers files in parallel, each object is gunzipped (klauspost) and its
// records decoded (goccy) into the fields every CloudTrail consumer reads
// (time, source, name, id, region, account, identity); nothing else is
// done. No correlator can read the archive faster than this, so `make
// bench-sigma` reports replay's rate as a fraction of it, measured in the
// same run on the same files.
//
//	go run ./testdata/bench/floor -workers 2 /tmp/ecscorr-invictus
package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"github.com/klauspost/compress/gzip"
)

type header struct {
	EventTime          string `json:"eventTime"`
	EventSource        string `json:"eventSource"`
	EventName          string `json:"eventName"`
	EventID            string `json:"eventID"`
	AWSRegion          string `json:"awsRegion"`
	RecipientAccountID string `json:"recipientAccountId"`
	UserIdentity       struct {
		Type        string `json:"type"`
		ARN         string `json:"arn"`
		AccountID   string `json:"accountId"`
		PrincipalID string `json:"principalId"`
	} `json:"userIdentity"`
}

func main() {
	workers := flag.Int("workers", 2, "files read in parallel")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: floor [-workers N] PATH...")
		os.Exit(2)
	}
	var files []string
	for _, root := range flag.Args() {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json.gz") {
				files = append(files, p)
			}
			return err
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	start := time.Now()
	var records, bytesIn atomic.Int64
	next := make(chan string)
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for p := range next {
				n, size, err := decodeFile(p, &buf)
				if err != nil {
					log.Fatalf("%s: %v", p, err)
				}
				records.Add(int64(n))
				bytesIn.Add(size)
			}
		}()
	}
	for _, f := range files {
		next <- f
	}
	close(next)
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("floor: %d files, %d records, %.0f MB decompressed in %.2f s: %.0f records/s with %d workers\n",
		len(files), records.Load(), float64(bytesIn.Load())/1e6, el.Seconds(), float64(records.Load())/el.Seconds(), *workers)
}

func decodeFile(path string, buf *[]byte) (int, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return 0, 0, err
	}
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := zr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, err
		}
	}
	*buf = b
	var doc struct {
		Records []header `json:"Records"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return 0, 0, err
	}
	return len(doc.Records), int64(len(b)), nil
}
