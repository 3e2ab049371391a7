package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
)

func readIncidents(t testing.TB, path string) []pipeline.Incident {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	incs, err := ReadJSONL(f)
	if err != nil {
		t.Fatal(err)
	}
	return incs
}

var _ = bufio.NewScanner
var _ = json.Marshal

func TestRenderTry(t *testing.T) {
	incs := readIncidents(t, "testdata/demo.jsonl")
	var b bytes.Buffer
	if err := Write(&b, Data{Incidents: incs, Source: "test"}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile("/tmp/r.html", b.Bytes(), 0o644)
}
