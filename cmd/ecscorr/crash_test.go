package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binary buildBinary builds; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinary builds the real ecscorr binary once per test run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ecscorr-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "ecscorr")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func realBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// crashCorpus generates a seeded corpus big enough that a replay commits
// many times (the bench generator, small).
func crashCorpus(t *testing.T, events int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "corpus")
	out, err := exec.Command("go", "run", "../../testdata/bench/gen", "-out", dir, "-events", fmt.Sprint(events), "-seed", "7").CombinedOutput()
	if err != nil {
		t.Fatalf("generating corpus: %v\n%s", err, out)
	}
	return dir
}

// The real binary, SIGKILLed at random points of a replay with --state
// (reading, correlating, in the middle of a commit or of writing the
// report), then rerun to completion over the same state, reports exactly
// the incidents of one uninterrupted run, every time: the pack's and a
// Sigma correlation's (testdata/crash-sigma), whose last windows are
// decided at the end of the replay.
func TestReplaySurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	t.Parallel() // with the other real-binary tests: much of their time is waiting
	bin := realBinary(t)
	corpus := crashCorpus(t, 12000)
	// A killed run cannot remove its temp dir: the runs make theirs in
	// the test's, not in the machine's.
	tmp := t.TempDir()
	replay := func(ctx context.Context, stateDir string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, "replay", "--quiet", "--state", stateDir, "--commit-interval", "1ms", "--batch", "50",
			"--rules", "builtin", "--rules", "testdata/crash-sigma/rules.yml", corpus)
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		return cmd
	}
	t0 := time.Now()
	want, err := replay(context.Background(), filepath.Join(t.TempDir(), "whole")).Output()
	if err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("the uninterrupted run left %d entries in its temp dir (%s...)", len(left), left[0].Name())
	}
	full := time.Since(t0)
	if n := bytes.Count(want, []byte("\n")); n < 50 {
		t.Fatalf("only %d incidents in the uninterrupted run", n)
	}
	// The Sigma correlation's windows close as the replay goes and, for
	// those still open, at its end (DecideAtEnd): both are in what the
	// reruns must reproduce.
	if n := bytes.Count(want, []byte(`"rule":"crash-few-getobject"`)); n < 100 {
		t.Fatalf("only %d incidents of the Sigma correlation", n)
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 20))
	t.Logf("uninterrupted run %v; kill seed %d", full, seed)
	const trials = 20
	points := make([]time.Duration, trials)
	for i := range points {
		// Points spread over the whole run; most after the reading phase,
		// where commits happen.
		points[i] = full/4 + time.Duration(rng.Int64N(int64(full)))
	}
	var killedN sync.WaitGroup
	var mu sync.Mutex
	kills := 0
	// Two trials at a time: each is a separate state directory.
	sem := make(chan struct{}, 2)
	for i, at := range points {
		killedN.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; killedN.Done() }()
			if trial(t, i, at, replay, filepath.Join(t.TempDir(), fmt.Sprint("state", i)), want) {
				mu.Lock()
				kills++
				mu.Unlock()
			}
		}()
	}
	killedN.Wait()
	t.Logf("%d of %d runs were killed before they ended", kills, trials)
}

// trial kills one replay after at, reruns it and compares; it reports
// whether the first run was killed.
func trial(t *testing.T, i int, at time.Duration, replay func(context.Context, string) *exec.Cmd, dir string, want []byte) bool {
	{
		ctx, cancel := context.WithTimeout(context.Background(), at)
		cmd := replay(ctx, dir)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = new(bytes.Buffer), &stderr
		err := cmd.Run()
		cancel()
		// A run that ended just as the timer fired may report the
		// context's error though it exited normally.
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
		if err != nil && !killed && !cmd.ProcessState.Success() {
			t.Errorf("trial %d: first run: %v\n%s", i, err, stderr.Bytes())
			return false
		}
		cmd = replay(context.Background(), dir)
		stderr.Reset()
		cmd.Stderr = &stderr
		got, err := cmd.Output()
		if err != nil {
			t.Errorf("trial %d (killed after %v: %v): rerun: %v\n%s", i, at, killed, err, stderr.Bytes())
			return killed
		}
		if !bytes.Equal(got, want) {
			t.Errorf("trial %d (killed after %v: %v): rerun reports %d incidents unlike the uninterrupted run's %d, or with other content",
				i, at, killed, bytes.Count(got, []byte("\n")), bytes.Count(want, []byte("\n")))
		}
		return killed
	}
}
