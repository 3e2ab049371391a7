package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/cases")

// caseLine is one line of events.jsonl: an event, a metric series, or a
// watermark advance. Times are offsets from t0.
type caseLine struct {
	ID      string          `json:"id"`
	Source  pipeline.Source `json:"source"`
	Type    string          `json:"type"`
	At      string          `json:"at"`
	Task    string          `json:"task"`
	Entity  pipeline.Entity `json:"entity"`
	Sample  bool            `json:"sample"`
	Raw     json.RawMessage `json:"raw"`
	Advance string          `json:"advance"`
	// Series: [[value, samples], ...], one sample a minute from Start, as
	// Container Insights Task events with CpuReserved 100.
	Series [][2]float64 `json:"series"`
	Start  string       `json:"start"`
}

type step struct {
	ev      *pipeline.Event
	advance time.Duration
}

func parseDur(t *testing.T, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readCase(t *testing.T, path string) []step {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []*pipeline.Event
	var steps []step
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var l caseLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		switch {
		case l.Advance != "":
			sortEvents(evs)
			for _, e := range evs {
				steps = append(steps, step{ev: e})
			}
			evs = nil
			steps = append(steps, step{advance: parseDur(t, l.Advance)})
		case l.Series != nil:
			at := parseDur(t, l.Start)
			for _, s := range l.Series {
				for i := 0; i < int(s[1]); i++ {
					id := fmt.Sprintf("ci-%s-%s", l.Task[len(l.Task)-4:], at)
					raw := fmt.Sprintf(`{"Type":"Task","CpuReserved":100,"CpuUtilized":%g}`, s[0])
					evs = append(evs, ev(id, ci, "metrics/Task", at, l.Task, raw))
					at += time.Minute
				}
			}
		default:
			e := &pipeline.Event{ID: l.ID, Source: l.Source, Type: l.Type, Time: t0.Add(parseDur(t, l.At)), Entity: l.Entity, Sample: l.Sample, Raw: l.Raw}
			if l.Task != "" {
				e.Entity.TaskARN = l.Task
			}
			pipeline.CompleteEntity(&e.Entity)
			evs = append(evs, e)
		}
	}
	sortEvents(evs)
	for _, e := range evs {
		steps = append(steps, step{ev: e})
	}
	return steps
}

func TestGoldenCases(t *testing.T) {
	dirs, err := filepath.Glob("testdata/cases/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			set, diags := rule.LoadFiles([]string{filepath.Join(dir, "rules.yaml")}, rule.LoadOptions{Now: t0})
			if diags.HasErrors() {
				t.Fatalf("rules: %v", diags.Errors())
			}
			steps := readCase(t, filepath.Join(dir, "events.jsonl"))
			run := func(each bool) (*runner, []byte) {
				r := newRunner(t, set, nil)
				ctx := context.Background()
				for _, s := range steps {
					if s.ev != nil {
						r.take(r.e.Process(ctx, s.ev))
						if each {
							r.take(r.e.Advance(ctx, s.ev.Time))
						}
					} else {
						r.advance(s.advance)
					}
				}
				var b bytes.Buffer
				for _, in := range r.list() {
					j, err := json.Marshal(in)
					if err != nil {
						t.Fatal(err)
					}
					b.Write(j)
					b.WriteByte('\n')
				}
				for _, l := range r.e.Stats().SummaryLines() {
					j, _ := json.Marshal(map[string]string{"stats": l})
					b.Write(j)
					b.WriteByte('\n')
				}
				return r, b.Bytes()
			}
			full, got := run(false)
			_, got2 := run(true)
			if !bytes.Equal(got, got2) {
				t.Errorf("Advance after every event changes the result:\n%s\nvs\n%s", got2, got)
			}
			// A restart (Close, new Engine on the same store) at every
			// point of the input gives the same incidents, emitted once.
			want := incJSON(t, full.list())
			ctx := context.Background()
			for cut := 1; cut < len(steps); cut++ {
				st := memStore(t)
				r := newRunner(t, set, st)
				for i, s := range steps {
					if i == cut {
						if err := r.e.Close(ctx); err != nil {
							t.Fatal(err)
						}
						e2, err := New(ctx, set, st, Options{})
						if err != nil {
							t.Fatal(err)
						}
						r.e = e2
					}
					if s.ev != nil {
						r.take(r.e.Process(ctx, s.ev))
					} else {
						r.advance(s.advance)
					}
				}
				if g := incJSON(t, r.list()); !slices.Equal(g, want) {
					t.Errorf("restart before step %d: incidents differ:\n got %s\nwant %s", cut, g, want)
				}
				if !slices.Equal(r.seq, full.seq) {
					t.Errorf("restart before step %d: emissions differ:\n got %v\nwant %v", cut, r.seq, full.seq)
				}
			}
			wantFile := filepath.Join(dir, "want.jsonl")
			if *update {
				if err := os.WriteFile(wantFile, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			w, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(got, w) {
				t.Errorf("%s differs (run with -update to accept):\n got:\n%s\nwant:\n%s", wantFile, got, w)
			}
		})
	}
}
