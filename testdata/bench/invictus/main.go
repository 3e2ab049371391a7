// Command invictus writes the Invictus Stratus CloudTrail records (2,900
// records, sources/archive/testdata/invictus, CC BY 4.0) scaled by
// -copies into a CloudTrail S3 layout of gzip objects: copy k has every
// eventID made unique (its first 8 hex digits are k) and every eventTime
// moved k hours later (the original spans 56 minutes), so that a replay
// sees 345 × 2,900 = 1,000,500 distinct records in time order. Same input,
// same bytes.
//
//	go run ./testdata/bench/invictus -out /tmp/ecscorr-invictus -copies 345
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"time"
)

func main() {
	in := flag.String("in", "sources/archive/testdata/invictus", "folder of the Invictus .json.gz files")
	out := flag.String("out", "/tmp/ecscorr-invictus", "output folder (replaced)")
	copies := flag.Int("copies", 345, "number of copies")
	flag.Parse()
	if err := run(*in, *out, *copies); err != nil {
		log.Fatal(err)
	}
}

func run(in, out string, copies int) error {
	files, err := filepath.Glob(filepath.Join(in, "*.json.gz"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no .json.gz files in %s", in)
	}
	sort.Strings(files)
	var parts [][]map[string]any
	for _, f := range files {
		recs, err := readRecords(f)
		if err != nil {
			return err
		}
		sort.SliceStable(recs, func(i, j int) bool { return recs[i]["eventTime"].(string) < recs[j]["eventTime"].(string) })
		parts = append(parts, recs)
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	seen := map[string]bool{}
	n := 0
	for k := range copies {
		for p, recs := range parts {
			var first time.Time
			batch := make([]map[string]any, len(recs))
			for i, r := range recs {
				c := make(map[string]any, len(r))
				for key, v := range r {
					c[key] = v
				}
				id, _ := r["eventID"].(string)
				if len(id) < 8 {
					return fmt.Errorf("record without a UUID eventID: %q", id)
				}
				c["eventID"] = fmt.Sprintf("%08x", k) + id[8:]
				if seen[c["eventID"].(string)] {
					return fmt.Errorf("duplicate eventID %s", c["eventID"])
				}
				seen[c["eventID"].(string)] = true
				t, err := time.Parse(time.RFC3339, r["eventTime"].(string))
				if err != nil {
					return err
				}
				t = t.Add(time.Duration(k) * time.Hour)
				if i == 0 {
					first = t
				}
				c["eventTime"] = t.UTC().Format(time.RFC3339)
				batch[i] = c
			}
			acct, _ := recs[0]["recipientAccountId"].(string)
			region, _ := recs[0]["awsRegion"].(string)
			dir := filepath.Join(out, "AWSLogs", acct, "CloudTrail", region, first.Format("2006/01/02"))
			name := fmt.Sprintf("%s_CloudTrail_%s_%s_%04d%d.json.gz", acct, region, first.Format("20060102T1504Z"), k, p)
			if err := writeObject(filepath.Join(dir, name), batch); err != nil {
				return err
			}
			n += len(batch)
		}
	}
	fmt.Printf("wrote %d records in %d objects to %s\n", n, copies*len(parts), out)
	return nil
}

func readRecords(path string) ([]map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Records []map[string]any `json:"Records"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc.Records, nil
}

func writeObject(path string, recs []map[string]any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	enc := json.NewEncoder(zw)
	if err := enc.Encode(map[string]any{"Records": recs}); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
