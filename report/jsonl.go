package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/ecscorr/ecscorr/pipeline"
)

// ReadJSONL reads incidents as `replay --format jsonl` and the jsonl sink
// write them, one per line; blank lines are skipped. A stream sink's file
// holds every change of an incident: the last line of each id wins (its
// final state), in the order ids first appeared.
func ReadJSONL(r io.Reader) ([]pipeline.Incident, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var out []pipeline.Incident
	at := map[string]int{}
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var inc pipeline.Incident
		if err := json.Unmarshal(b, &inc); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if inc.ID == "" {
			return nil, fmt.Errorf("line %d: an incident without an id", line)
		}
		if i, ok := at[inc.ID]; ok {
			out[i] = inc
			continue
		}
		at[inc.ID] = len(out)
		out = append(out, inc)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	pipeline.SortIncidents(out)
	return out, nil
}
