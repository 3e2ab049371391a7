package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"
)

type nopCorrelator struct{}

func (nopCorrelator) Process(context.Context, *Event) ([]Incident, error)    { return nil, nil }
func (nopCorrelator) Advance(context.Context, time.Time) ([]Incident, error) { return nil, nil }
func (nopCorrelator) Horizon() time.Duration                                 { return time.Hour }
func (nopCorrelator) CheckpointBatch(context.Context, StateWriter) error     { return nil }

// BenchmarkReplayRunner measures what the Runner adds per event on the
// replay path (sorting, reorder buffer, watermark, applied-event set), with
// a correlator that does nothing.
func BenchmarkReplayRunner(b *testing.B) {
	const n = 200_000
	raw := []byte(`{"eventVersion":"1.08","eventSource":"ecs.amazonaws.com","eventName":"ExecuteCommand","awsRegion":"eu-west-1","requestParameters":{"cluster":"prod","task":"0123456789abcdef"}}`)
	evs := make([]Event, n)
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for i := range evs {
		evs[i] = Event{ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), Source: SourceCloudTrail, Type: "ecs.amazonaws.com:ExecuteCommand",
			Time: t0.Add(time.Duration(i) * 100 * time.Millisecond), Raw: raw}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_, _, _, err := Replay(context.Background(), func(ctx context.Context, emit func(*Event) error) error {
			for i := range evs {
				ev := evs[i]
				if err := emit(&ev); err != nil {
					return err
				}
			}
			return nil
		}, nopCorrelator{}, ReplayOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}
