package pipeline

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// streamed hands out its batches in order, then io.EOF; streamedIn names
// each event's stream by the prefix of its id.
type streamed struct {
	batches [][]*Event
}

func (s *streamed) Name() string                       { return "streamed" }
func (s *streamed) Open(context.Context, []byte) error { return nil }
func (s *streamed) Close(context.Context) error        { return nil }
func (s *streamed) Read(ctx context.Context) (Batch, AckFunc, error) {
	if len(s.batches) == 0 {
		return Batch{}, nil, io.EOF
	}
	b := s.batches[0]
	s.batches = s.batches[1:]
	return Batch{Events: b}, func(context.Context, error) error { return nil }, nil
}

type streamedIn struct{ *streamed }

func (s streamedIn) Streams() []string { return []string{"a", "b"} }

func (s streamedIn) Stream(ev *Event) (string, bool) {
	name, _, _ := strings.Cut(ev.ID, "-")
	return name, true
}

// A stream read ahead of another (a backlog read partition by partition)
// moves the watermark only as far as the slowest stream: the other
// stream's events are not late, and all come out in event-time order.
func TestStreamedInputWatermarkPerStream(t *testing.T) {
	mk := func(stream string, from, n int) []*Event {
		var out []*Event
		for i := range n {
			out = append(out, &Event{ID: fmt.Sprintf("%s-%d", stream, from+i), Source: SourceCloudTrail, Type: "t",
				Time: t0.Add(time.Duration(from+i) * time.Minute)})
		}
		return out
	}
	for _, c := range []struct {
		name    string
		streams bool
		late    int64
	}{{"per stream", true, 0}, {"per source", false, 28}} {
		t.Run(c.name, func(t *testing.T) {
			in := &streamed{batches: [][]*Event{mk("a", 0, 30), mk("b", 0, 10), mk("b", 10, 20)}}
			var input Input = in
			if c.streams {
				input = streamedIn{in}
			}
			rec := &recorder{}
			r, err := NewRunner(RunnerOptions{Inputs: []Input{input}, Correlator: rec, DefaultLateness: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			st, err := r.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Late != c.late || len(rec.seen) != 60 {
				t.Fatalf("%d late, %d seen; want %d late, 60 seen", st.Late, len(rec.seen), c.late)
			}
			if c.late == 0 {
				for i := 1; i < len(rec.seen); i++ {
					if rec.seen[i].Time.Before(rec.seen[i-1].Time) {
						t.Fatalf("out of order at %d: %s after %s", i, rec.seen[i].ID, rec.seen[i-1].ID)
					}
				}
			}
		})
	}
}
