package kafkasrc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

const (
	benchTopic = "bench"
	benchParts = 6
	brokerEnv  = "KAFKASRC_BENCH_BROKER_MSGS"
)

// TestBenchBroker is the benchmark's broker, run in a child process so that
// the benchmark's peak RSS is the input's alone: kfake with benchTopic
// filled with $KAFKASRC_BENCH_BROKER_MSGS CloudTrail records, its address
// printed, until stdin closes.
func TestBenchBroker(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(brokerEnv))
	if n == 0 {
		t.Skip("the benchmark's broker process")
	}
	c, total := benchBroker(t, n)
	defer c.Close()
	fmt.Printf("BROKER %s %d\n", c.ListenAddrs()[0], total)
	io.Copy(io.Discard, os.Stdin)
}

// benchBroker is kfake with benchTopic holding about n CloudTrail records.
func benchBroker(t testing.TB, n int) (*kfake.Cluster, int64) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(benchParts, benchTopic))
	if err != nil {
		t.Fatal(err)
	}
	addr := c.ListenAddrs()[0]
	recs := ctRecords(t, 4096)
	ctx := context.Background()
	per := (n + benchParts - 1) / benchParts
	for p := range benchParts {
		conn, err := kafkago.DialLeader(ctx, "tcp", addr, benchTopic, p)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < per; i += 500 {
			msgs := make([]kafkago.Message, min(500, per-i))
			for j := range msgs {
				msgs[j].Value = recs[(p*per+i+j)%len(recs)]
			}
			if _, err := conn.WriteMessages(msgs...); err != nil {
				t.Fatal(err)
			}
		}
		conn.Close()
	}
	return c, int64(per * benchParts)
}

// BenchmarkInput reads b.N CloudTrail records (~1.6 KB each, 6 partitions)
// from kfake in another process through the input (decode included) and
// acknowledges each batch, as the Runner does.
func BenchmarkInput(b *testing.B) {
	addr, total, stop := brokerProcess(b)
	defer stop()
	benchInput(b, addr, total)
}

// BenchmarkInputInProcess is BenchmarkInput with kfake in this process
// (as research/perfbench measured kafka-go); peak RSS then includes the
// broker's copy of the topic.
func BenchmarkInputInProcess(b *testing.B) {
	c, total := benchBroker(b, b.N)
	defer c.Close()
	benchInput(b, c.ListenAddrs()[0], total)
}

func brokerProcess(b *testing.B) (string, int64, func()) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchBroker$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", brokerEnv, b.N))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func() {
		stdin.Close()
		cmd.Wait()
		if st := cmd.ProcessState; st != nil {
			b.Logf("broker process CPU: user %s system %s", st.UserTime(), st.SystemTime())
		}
	}
	var addr string
	var total int64
	sc := bufio.NewScanner(stdout)
	var out []string
	for sc.Scan() {
		out = append(out, sc.Text())
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "BROKER" {
			addr = f[1]
			total, _ = strconv.ParseInt(f[2], 10, 64)
			break
		}
	}
	if addr == "" {
		stop()
		b.Fatalf("the broker process did not start:\n%s", strings.Join(out, "\n"))
	}
	go io.Copy(io.Discard, stdout)
	return addr, total, stop
}

func benchInput(b *testing.B, addr string, total int64) {

	in, err := New(Options{Brokers: []string{addr}, Topics: []string{benchTopic}, Group: "bench",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	if err := in.Open(ctx, nil); err != nil {
		b.Fatal(err)
	}
	var events, batches int64
	for in.Stats().Messages < total {
		bt, ack, err := in.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		events += int64(len(bt.Events))
		batches++
		ack(ctx, nil)
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	in.Close(ctx)
	if events != total {
		b.Fatalf("%d events from %d messages", events, total)
	}
	b.ReportMetric(float64(events)/el.Seconds(), "events/s")
	b.ReportMetric(float64(events)/float64(batches), "events/batch")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(events), "cpu-ns/event")
	if hwm := peakRSS(); hwm > 0 {
		b.ReportMetric(float64(hwm)/1024, "peak-RSS-MiB")
	}
}

// cpuTime is the CPU time (user and system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is the process's VmHWM in KiB (0 where /proc is missing).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
