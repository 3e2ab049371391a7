package sqs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sources/sqs/sqstest"
)

// BenchmarkReceive measures events/s through the input against sqstest:
// EventBridge "AWS API Call via CloudTrail" messages, 10 per receive,
// acknowledged (DeleteMessageBatch) on another goroutine as the Runner
// does after its commits. One op is one event. The server shares the
// machine.
func BenchmarkReceive(b *testing.B) {
	bodies := demoBodies(b)[10:] // the CloudTrail ones
	for _, receivers := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("receivers=%d", receivers), func(b *testing.B) {
			srv := sqstest.New()
			defer srv.Close()
			url := srv.CreateQueue("bench", sqstest.QueueOptions{})
			for i := range b.N {
				srv.Send("bench", bodies[i%len(bodies)])
			}
			in := open(b, Options{QueueURL: url, Client: sqsClient(srv), Receivers: receivers, Wait: time.Second})
			acks := make(chan pipeline.AckFunc, 64)
			done := make(chan struct{})
			go func() {
				for a := range acks {
					_ = a(context.Background(), nil)
				}
				close(done)
			}()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			n := 0
			for n < b.N {
				bt, ack, err := in.Read(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				n += len(bt.Events)
				acks <- ack
			}
			close(acks)
			<-done
			_ = in.Close(context.Background()) // waits for the queued deletes
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(n)/el.Seconds(), "events/s")
			if vis, fl := srv.Counts("bench"); vis != 0 || fl != 0 {
				b.Fatalf("left %d visible, %d in flight; %+v", vis, fl, in.Stats())
			}
		})
	}
}
