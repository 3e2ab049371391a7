package falco

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashEnv = "FALCO_SPOOL_CRASH_CHILD"

// TestMain lets the test binary act as the process that is killed.
func TestMain(m *testing.M) {
	if mode := os.Getenv(crashEnv); mode != "" {
		crashChild(mode, os.Getenv("FALCO_SPOOL_DIR"))
		return
	}
	os.Exit(m.Run())
}

func crashChild(mode, dir string) {
	switch mode {
	case "http":
		in, err := NewHTTP(HTTPOptions{Listen: "127.0.0.1:0", SpoolDir: dir})
		if err == nil {
			err = in.Open(context.Background(), nil)
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("addr", in.Addr().String())
		select {}
	case "spool":
		// Large records so that a write is likely under way when killed.
		sp, err := OpenSpool(dir, 0, SpoolOptions{SegmentBytes: 4 << 20})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		for i := 0; ; i++ {
			p, err := sp.Append(time.Now(), bigRecord(i))
			if err == nil {
				err = p.Wait(context.Background())
			}
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("synced", i)
		}
	}
}

func bigRecord(i int) []byte {
	return append([]byte(strconv.Itoa(i)+":"), bytes.Repeat([]byte{byte('a' + i%26)}, 300<<10)...)
}

// startChild runs the test binary in mode and returns it with its stdout.
func startChild(t *testing.T, mode, dir string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+mode, "FALCO_SPOOL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

// readAll reads everything the spool holds.
func readAll(t *testing.T, in *HTTPInput) []string {
	t.Helper()
	var got []string
	for {
		in.r.spool.rmu.Lock()
		r := in.r.spool.rOff
		in.r.spool.rmu.Unlock()
		if _, _, durable, _ := in.r.spool.Stats(); durable == r {
			return got
		}
		b, _, err := in.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range b.Events {
			got = append(got, ev.ID)
		}
	}
}

// SIGKILL the receiving process while POSTs are in flight: every alert
// answered 200 is in the spool after reopening, none twice.
func TestHTTPSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cmd, out := startChild(t, "http", dir)
	if !out.Scan() {
		t.Fatal("child said nothing")
	}
	var addr string
	if _, err := fmt.Sscanf(out.Text(), "addr %s", &addr); err != nil {
		t.Fatalf("child: %q", out.Text())
	}
	var mu sync.Mutex
	var ok []string
	attempted := map[string]bool{}
	var wg sync.WaitGroup
	c := &http.Client{Timeout: 5 * time.Second}
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				i := w*100000 + j
				mu.Lock()
				attempted[alertID(i)] = true
				mu.Unlock()
				resp, err := c.Post("http://"+addr+"/", "application/json", bytes.NewReader(alert(t, i)))
				if err != nil {
					return // killed
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					ok = append(ok, alertID(i))
					mu.Unlock()
				}
			}
		}()
	}
	waitFor(t, "300 accepted alerts", func() bool { mu.Lock(); defer mu.Unlock(); return len(ok) >= 300 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	wg.Wait()
	in := openHTTP(t, HTTPOptions{SpoolDir: dir}, nil)
	got := readAll(t, in)
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	if len(slices.Compact(slices.Clone(sorted))) != len(sorted) {
		t.Fatal("an alert is in the spool twice")
	}
	for _, id := range ok {
		if _, found := slices.BinarySearch(sorted, id); !found {
			t.Fatalf("alert %s was answered 200 but is not in the spool", id)
		}
	}
	for _, id := range got {
		if !attempted[id] {
			t.Fatalf("alert %s never posted", id)
		}
	}
	t.Logf("%d answered 200, %d in the spool", len(ok), len(got))
}

// SIGKILL a process writing large records: whatever a kill cut short is
// dropped on reopen, every synced record is there, in order.
func TestSpoolSurvivesSIGKILLMidWrite(t *testing.T) {
	dir := t.TempDir()
	cmd, out := startChild(t, "spool", dir)
	last := -1
	for out.Scan() {
		var i int
		if _, err := fmt.Sscanf(out.Text(), "synced %d", &i); err != nil {
			t.Fatalf("child: %q", out.Text())
		}
		last = i
		if last == 40 {
			cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	cmd.Wait()
	sp, err := OpenSpool(dir, 0, SpoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	_, _, durable, _ := sp.Stats()
	n := 0
	for sp.rOff < durable {
		recs, err := sp.next(context.Background(), 10, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if !bytes.Equal(r.payload, bigRecord(n)) {
				t.Fatalf("record %d damaged or out of order", n)
			}
			n++
		}
	}
	if n <= last {
		t.Fatalf("%d records after reopening; %d were synced", n, last+1)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	t.Logf("%d records synced before the kill, %d in the spool, %d segments", last+1, n, len(files))
}
