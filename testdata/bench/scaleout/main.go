// Command scaleout measures the correlate role on this machine. The bench
// corpus (or its earliest -events) is published once by an in-process
// ingest (the Publisher through the Runner, as `ecscorr run` with role
// ingest does) to a kfake broker; the messages are read back, with a tick
// an hour past the last event on every partition. Then, for 1,
// 2 and 3 instances: a fresh topic, that many `ecscorr run` processes with
// role correlate in one consumer group, a pause for the group to settle,
// and the messages written to their partitions as fast as the broker
// takes them. It prints the events (copies) correlated per second, from
// the first write to the last receipt, and the CPU time the instances
// spent per event (their rusage, start-up and group join included), which
// is what predicts scaling on more cores. The incidents the instances
// wrote together must equal one process's (replay of the same events, to
// the same watermark), or it fails. Run by `make bench-scaleout`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/partition"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/rules"
	"github.com/ecscorr/ecscorr/sources/archive"
)

func main() {
	corpus := flag.String("corpus", "/tmp/ecscorr-bench", "bench corpus (make bench generates it)")
	n := flag.Int("events", 100_000, "events of the corpus to publish (the earliest)")
	bin := flag.String("bin", "./bin/ecscorr", "the ecscorr binary")
	parts := flag.Int("partitions", 12, "partitions of the events topic")
	counts := flag.String("instances", "1,2,3", "correlate instance counts to measure")
	changelog := flag.Bool("changelog", false, "correlate instances move partition state through a changelog topic (kafka.changelog_topic)")
	kill := flag.Bool("kill", false, "with 3 instances, SIGKILL the first halfway and start a fourth (the group notices after its 30s session timeout)")
	flag.Parse()
	ctx := context.Background()

	var evs []*pipeline.Event
	var mu sync.Mutex
	rd := archive.NewReader(archive.Options{})
	if err := rd.Read(ctx, []string{*corpus}, func(ev *pipeline.Event) error {
		mu.Lock()
		evs = append(evs, ev)
		mu.Unlock()
		return nil
	}, nil); err != nil {
		log.Fatal(err)
	}
	sort.SliceStable(evs, func(i, j int) bool { return pipeline.Less(evs[i], evs[j]) })
	if len(evs) > *n {
		evs = evs[:*n]
	}

	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(*parts), "staging"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]

	set, ds := rule.LoadFS(rules.Builtin, rule.LoadOptions{})
	if set == nil || ds.HasErrors() {
		log.Fatal(ds)
	}
	pub, err := partition.NewPublisher(set, partition.PublisherOptions{Brokers: []string{addr}, Topic: "staging"})
	if err != nil {
		log.Fatal(err)
	}
	st, err := state.OpenInMemory()
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	read := func(ctx context.Context, emit func(*pipeline.Event) error) error {
		for _, ev := range evs {
			if err := emit(ev); err != nil {
				return err
			}
		}
		return nil
	}
	if _, _, _, err := pipeline.Replay(ctx, read, pub, pipeline.ReplayOptions{Store: st,
		Logger: slog.New(slog.DiscardHandler)}); err != nil {
		log.Fatal(err)
	}
	ps := pub.Stats()
	pub.Close()
	fmt.Printf("ingest: %d events in %.2fs (%.0f events/s); %d copies (%.2f per event, %.0f bytes per event), %d ticks, %d events no family needs\n",
		ps.Events, time.Since(start).Seconds(), float64(ps.Events)/time.Since(start).Seconds(),
		ps.Copies, float64(ps.Copies)/float64(ps.Events), float64(ps.Bytes)/float64(ps.Events), ps.Ticks, ps.Dropped)
	staged := readStaged(addr, ps.Copies+ps.Ticks)
	// Ticks an hour after the last event, on every partition for every
	// source, take the instances' watermarks to that hour less
	// kafka.lateness (idle_after is long, so they stop there); one
	// process decides up to the same time.
	end := evs[len(evs)-1].Time.Add(time.Hour)
	srcs := map[pipeline.Source]bool{}
	for _, ev := range evs {
		srcs[ev.Source] = true
	}
	for src := range srcs {
		for p := range *parts {
			v, err := pipeline.MarshalEventJSON(&pipeline.Event{ID: fmt.Sprintf("tick:%d:%s:end", p, src), Source: src, Type: partition.TickType, Time: end})
			if err != nil {
				log.Fatal(err)
			}
			staged = append(staged, kafkago.Message{Partition: p, Value: v})
		}
	}
	eng, err := engine.New(ctx, set, nil, engine.Options{Ephemeral: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	ref, _, _, err := pipeline.Replay(ctx, read, eng, pipeline.ReplayOptions{Logger: slog.New(slog.DiscardHandler),
		Archive: pipeline.ArchiveOptions{Until: end.Add(-correlateLateness + time.Nanosecond)}})
	if err != nil {
		log.Fatal(err)
	}
	want := map[string]string{}
	for _, inc := range ref {
		want[inc.ID] = viewOf(inc)
	}
	fmt.Printf("one process (replay of the same events): %d incidents\n", len(want))

	dir, err := os.MkdirTemp("", "ecscorr-scaleout")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fmt.Printf("%-9s %8s %10s %12s %14s %s\n", "instances", "wall s", "events/s", "CPU s (all)", "CPU µs/event", "per instance (messages, CPU s)")
	for _, f := range strings.Split(*counts, ",") {
		k, err := strconv.Atoi(f)
		if err != nil || k < 1 {
			log.Fatalf("instances: %q", f)
		}
		got := measure(*bin, dir, addr, k, *parts, staged, ps.Copies, *kill, *changelog)
		same := len(got) == len(want)
		for id, v := range want {
			if got[id] != v {
				same = false
				if g, ok := got[id]; ok {
					fmt.Printf("  differs: %s\n    scale-out %s\n    one       %s\n", id, g, v)
				} else {
					fmt.Printf("  missing: %s %s\n", id, v)
				}
			}
		}
		if !same {
			log.Fatalf("%d instances: %d incidents, one process %d: not the same", k, len(got), len(want))
		}
		fmt.Printf("  %d instances: the same %d incidents as one process\n", k, len(got))
	}
}

type instance struct {
	cmd     *exec.Cmd
	metrics string
	topic   string
}

// readStaged reads every message of the staging topic, with its partition.
func readStaged(addr string, n int64) []kafkago.Message {
	conn, err := kafkago.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	ps, err := conn.ReadPartitions("staging")
	conn.Close()
	if err != nil {
		log.Fatal(err)
	}
	var out []kafkago.Message
	for _, p := range ps {
		rd := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{addr}, Topic: "staging", Partition: p.ID, MaxWait: 100 * time.Millisecond})
		lc, err := kafkago.DialLeader(context.Background(), "tcp", addr, "staging", p.ID)
		if err != nil {
			log.Fatal(err)
		}
		last, err := lc.ReadLastOffset()
		lc.Close()
		if err != nil {
			log.Fatal(err)
		}
		for off := int64(0); off < last; off++ {
			m, err := rd.ReadMessage(context.Background())
			if err != nil {
				log.Fatal(err)
			}
			out = append(out, kafkago.Message{Partition: m.Partition, Key: m.Key, Value: m.Value})
		}
		rd.Close()
	}
	if int64(len(out)) != n {
		log.Fatalf("staged %d messages, want %d", len(out), n)
	}
	return out
}

// byPartition writes each message to the partition it names.
type byPartition struct{}

func (byPartition) Balance(m kafkago.Message, _ ...int) int { return m.Partition }

// correlateLateness is kafka.lateness's default.
const correlateLateness = 10 * time.Second

// viewOf is what must be equal between one process and many: identity,
// content and evidence.
func viewOf(inc pipeline.Incident) string {
	var ev []string
	for _, e := range inc.Events {
		ev = append(ev, string(e.Source)+":"+e.ID)
	}
	b, _ := json.Marshal([]any{inc.Rule, inc.Title, inc.Severity, inc.Key, inc.Status, inc.Count, inc.FirstSeen.UTC(), inc.LastSeen.UTC(), ev})
	return string(b)
}

// measure runs k instances over the staged messages (with 3 and kill, the
// first is SIGKILLed halfway and a fourth joins) and returns the incidents
// they wrote, merged.
func measure(bin, dir, addr string, k, parts int, staged []kafkago.Message, copies int64, kill, changelog bool) map[string]string {
	group := fmt.Sprintf("bench-%d", k)
	topic := fmt.Sprintf("events-%d", k)
	clTopic := fmt.Sprintf("changelog-%d", k)
	conn, err := kafkago.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	tcs := []kafkago.TopicConfig{{Topic: topic, NumPartitions: parts, ReplicationFactor: 1}}
	clLine := ""
	if changelog {
		tcs = append(tcs, kafkago.TopicConfig{Topic: clTopic, NumPartitions: parts, ReplicationFactor: 1,
			ConfigEntries: []kafkago.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}})
		clLine = "  changelog_topic: " + clTopic + "\n"
	}
	if err := conn.CreateTopics(tcs...); err != nil {
		log.Fatal(err)
	}
	conn.Close()
	if changelog {
		defer func() {
			var n int64
			for p := range parts {
				lc, err := kafkago.DialLeader(context.Background(), "tcp", addr, clTopic, p)
				if err != nil {
					log.Fatal(err)
				}
				last, err := lc.ReadLastOffset()
				lc.Close()
				if err != nil {
					log.Fatal(err)
				}
				n += last
			}
			fmt.Printf("  changelog: %d records written (%.3f per copy)\n", n, float64(n)/float64(copies))
		}()
	}
	msgs := int64(len(staged))
	var ins []*instance
	var files []string
	startOne := func(i int) *instance {
		port := freePort()
		cfg := fmt.Sprintf(`role: correlate
kafka:
  brokers: [%s]
  events_topic: %s
  group: %s
%sstate_dir: %s
http:
  listen: 127.0.0.1:%d
idle_after: 1h
log_level: error
sinks:
  - type: jsonl
    path: %s
    all_routes: true
`, addr, topic, group, clLine, filepath.Join(dir, fmt.Sprintf("%s-%d", group, i)), port, filepath.Join(dir, fmt.Sprintf("%s-%d.jsonl", group, i)))
		p := filepath.Join(dir, fmt.Sprintf("%s-%d.yaml", group, i))
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			log.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "--config", p)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		files = append(files, filepath.Join(dir, fmt.Sprintf("%s-%d.jsonl", group, i)))
		return &instance{cmd: cmd, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), topic: topic}
	}
	for i := range k {
		ins = append(ins, startOne(i))
	}
	// Every instance up, then time for the group to settle on its
	// assignment (kafka-go joins, the coordinator waits for the rest).
	for _, in := range ins {
		for received(in) < 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(8 * time.Second)
	start := time.Now()
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: topic, Balancer: byPartition{}, BatchSize: 5000,
		BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafkago.RequireOne}
	out := make([]kafkago.Message, len(staged))
	for i, m := range staged {
		out[i] = kafkago.Message{Partition: m.Partition, Key: m.Key, Value: m.Value}
	}
	if err := w.WriteMessages(context.Background(), out...); err != nil {
		log.Fatal(err)
	}
	w.Close()
	var got []int64
	var killed []*instance
	var killedAt int64
	deadline := time.Now().Add(10 * time.Minute)
	for {
		got = got[:0]
		sum := killedAt
		for _, in := range ins {
			n := max(received(in), 0)
			got = append(got, n)
			sum += n
		}
		if kill && k == 3 && killed == nil && sum >= msgs/2 {
			// A crash: its partitions go to the others once the group
			// notices (kafka.session_timeout), rebuilt from the topic.
			_ = ins[0].cmd.Process.Signal(syscall.SIGKILL)
			_ = ins[0].cmd.Wait()
			killedAt = got[0]
			killed = append(killed, ins[0])
			ins = append(ins[1:], startOne(k))
			continue
		}
		if sum >= msgs+killedAt && killed != nil || sum >= msgs && killed == nil {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("%d instances read %d of %d messages in 10 minutes", k, sum, msgs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wall := time.Since(start)
	// Let the last decisions reach the sinks before stopping.
	incs := merged(files)
	for stable := 0; stable < 20; {
		time.Sleep(100 * time.Millisecond)
		if n := merged(files); len(n) == len(incs) {
			stable++
		} else {
			stable, incs = 0, n
		}
	}

	var cpu []float64
	var all float64
	for _, in := range append(killed, ins...) {
		if in.cmd.ProcessState == nil {
			_ = in.cmd.Process.Signal(syscall.SIGTERM)
			_ = in.cmd.Wait()
		}
		ru := in.cmd.ProcessState.SysUsage().(*syscall.Rusage)
		s := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		cpu = append(cpu, s)
		all += s
	}
	var per []string
	if killed != nil {
		per = append(per, fmt.Sprintf("(%d, %.2f, SIGKILLed)", killedAt, cpu[0]))
		cpu = cpu[1:]
	}
	for i := range ins {
		per = append(per, fmt.Sprintf("(%d, %.2f)", got[i], cpu[i]))
	}
	fmt.Printf("%-9d %8.2f %10.0f %12.2f %14.1f %s\n", k, wall.Seconds(), float64(copies)/wall.Seconds(), all, all/float64(copies)*1e6, strings.Join(per, " "))
	res := map[string]string{}
	for id, inc := range merged(files) {
		res[id] = viewOf(inc)
	}
	return res
}

// merged reads the instances' JSONL files, the newest version of each
// incident (a SIGKILLed instance may leave a cut last line).
func merged(files []string) map[string]pipeline.Incident {
	all := map[string]pipeline.Incident{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			var inc pipeline.Incident
			if json.Unmarshal([]byte(line), &inc) != nil {
				continue
			}
			if cur, ok := all[inc.ID]; !ok || pipeline.Newer(inc, cur) {
				all[inc.ID] = inc
			}
		}
	}
	return all
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// received is the instance's ecscorr_events_received_total for its events
// topic (-1 until its endpoint answers).
func received(in *instance) int64 {
	resp, err := http.Get(in.metrics)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var total int64
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, `ecscorr_events_received_total{input="kafka:`+in.topic+`"`) {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			total += int64(v)
		}
	}
	return total
}
