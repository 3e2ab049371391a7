package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/sinks/slack/slacktest"
)

const testRuleOne = `apiVersion: ecscorr/v1
kind: RuleFile
signals:
  - name: t_one
    source: falco
    where: 'raw.rule == "Test rule one"'
rules:
  - id: test-one
    title: "test one in {{ .entity.task_arn }}"
    severity: high
    by: [task_arn]
    detect:
      match: {as: a, any_of: [t_one]}
`

// testAlert is a Falco json_output alert of rule, in a task named by its
// ECS label.
func testAlert(rule string, n int) []byte {
	b, _ := json.Marshal(map[string]any{
		"uuid": fmt.Sprintf("5b0c0000-0000-4000-8000-%012d", n), "time": time.Date(2026, 11, 30, 10, 0, n, 0, time.UTC).Format(time.RFC3339Nano),
		"priority": "Critical", "rule": rule, "source": "syscall", "hostname": "ip-10-0-0-1", "tags": []string{"test"},
		"output": fmt.Sprintf("10:00:%02d.000000000: Critical %s (n=%d)", n, rule, n),
		"output_fields": map[string]any{"container.id": "abcdef123456", "proc.name": "sh",
			"container.label[com.amazonaws.ecs.task-arn]": "arn:aws:ecs:eu-west-1:111122223333:task/prod/0123456789abcdef0123456789abcdef"},
	})
	return b
}

// syncBuffer is a bytes.Buffer a child process writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runProc is the real binary running `ecscorr run`.
type runProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	http   string
}

func startRun(t testing.TB, bin, cfg string, env ...string) *runProc {
	t.Helper()
	return startRunArgs(t, bin, []string{"run", "--config", cfg}, env...)
}

func startRunArgs(t testing.TB, bin string, args []string, env ...string) *runProc {
	t.Helper()
	p := &runProc{stderr: &syncBuffer{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	return p
}

func (p *runProc) get(path string) (int, string) {
	resp, err := http.Get("http://" + p.http + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls until cond holds, for at most 30 s.
func waitFor(t testing.TB, what string, cond func() bool, p *runProc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s\n%s", what, tail(p.stderr.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// `ecscorr run`'s operations: /healthz, /readyz naming the source that is
// not connected, metrics, a SIGHUP that keeps the running rules when the
// new set is broken and takes a fixed one, a secret from ${ENV} that never
// reaches the log, and SIGTERM.
func TestRunOperations(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	t.Parallel()
	bin := realBinary(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	os.MkdirAll(rules, 0o755)
	os.WriteFile(filepath.Join(rules, "one.yaml"), []byte(testRuleOne), 0o644)
	falcoAddr, httpAddr := freeAddr(t), freeAddr(t)
	out := filepath.Join(dir, "incidents.jsonl")
	cfg := filepath.Join(dir, "ecscorr.yaml")
	os.WriteFile(cfg, []byte(`state_dir: `+filepath.Join(dir, "state")+`
rules: [`+rules+`]
http: {listen: `+httpAddr+`}
lateness: {falco: 1s}
sources:
  - type: falco_http
    listen: `+falcoAddr+`
    secret_header: X-Ecscorr-Token
    secret: ${FALCO_TOKEN}
  - type: falco_grpc
    endpoints: [unix://`+filepath.Join(dir, "nowhere.sock")+`]
sinks:
  - type: jsonl
    path: `+out+`
`), 0o644)
	const token = "tok-3f9c2e7a1b5d4c8e9f0a"
	p := startRun(t, bin, cfg, "FALCO_TOKEN="+token)
	p.http = httpAddr
	waitFor(t, "healthz", func() bool { c, _ := p.get("/healthz"); return c == 200 }, p)
	// Ready except for the gRPC source, once the listener is open (the
	// HTTP endpoint answers before the sources are).
	var code int
	var body string
	waitFor(t, "readyz naming only falco_grpc", func() bool {
		code, body = p.get("/readyz")
		return code == 503 && strings.Contains(body, `"falco_grpc"`) && !strings.Contains(body, "falco_http") && !strings.Contains(body, `"runner"`)
	}, p)
	post := func(rule string, n int, tok string) int {
		req, _ := http.NewRequest("POST", "http://"+falcoAddr+"/", bytes.NewReader(testAlert(rule, n)))
		req.Header.Set("X-Ecscorr-Token", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post("Test rule one", 1, "wrong"); c != 401 {
		t.Errorf("a wrong secret got %d", c)
	}
	if c := post("Test rule one", 1, token); c != 200 {
		t.Fatalf("alert: %d", c)
	}
	incidents := func() map[string]int {
		b, _ := os.ReadFile(out)
		m := map[string]int{}
		for _, l := range strings.Split(string(b), "\n") {
			var inc struct{ Rule string }
			if json.Unmarshal([]byte(l), &inc) == nil && inc.Rule != "" {
				m[inc.Rule]++
			}
		}
		return m
	}
	waitFor(t, "the first incident", func() bool { return incidents()["test-one"] == 1 }, p)

	// A broken rule set is refused; the running one stays.
	os.WriteFile(filepath.Join(rules, "two.yaml"), []byte(strings.ReplaceAll(strings.ReplaceAll(testRuleOne, "one", "two"), "severity: high", "severity: extreme")), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "a failed reload", func() bool {
		return strings.Contains(p.stderr.String(), "rule reload failed; keeping the running rules")
	}, p)
	if !strings.Contains(p.stderr.String(), "two.yaml:") {
		t.Errorf("the reload error does not name the file:\n%s", tail(p.stderr.String()))
	}
	// Fixed, it is taken.
	os.WriteFile(filepath.Join(rules, "two.yaml"), []byte(strings.ReplaceAll(testRuleOne, "one", "two")), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "a reload", func() bool { return strings.Contains(p.stderr.String(), `"msg":"rules reloaded","rules":2`) }, p)
	post("Test rule two", 2, token)
	post("Test rule one", 3, token) // the same task within the dedup window: an update of the first
	waitFor(t, "the new rule's incident", func() bool { return incidents()["test-two"] == 1 }, p)
	// The third alert is an update: wait until it is counted, not only posted.
	received := `ecscorr_events_received_total{input="falco_http:` + falcoAddr + `",source="falco"} 3`
	waitFor(t, "the third alert counted", func() bool { _, m := p.get("/metrics"); return strings.Contains(m, received) }, p)
	_, metrics := p.get("/metrics")
	for _, m := range []string{`ecscorr_rule_reloads_total{result="failed"} 1`, `ecscorr_rule_reloads_total{result="ok"} 1`,
		`ecscorr_incidents_opened_total{rule="test-two",severity="high"} 1`, `ecscorr_input_ready{input="falco_grpc"} 0`,
		`ecscorr_events_received_total{input="falco_http:` + falcoAddr + `",source="falco"} 3`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	t0 := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v\n%s", err, tail(p.stderr.String()))
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("SIGTERM took %v", d)
	}
	if strings.Contains(p.stderr.String(), token) {
		t.Errorf("the secret reached the log")
	}
	for _, l := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("a log line is not JSON: %q", l)
		}
	}
}

// SIGTERM waits for sinks to drain (up to shutdown_timeout); a second
// SIGTERM ends the process at once, and what the sink had not taken is
// still in the outbox for the next start.
func TestRunSecondSignalExitsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	t.Parallel()
	bin := realBinary(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	os.MkdirAll(rules, 0o755)
	os.WriteFile(filepath.Join(rules, "one.yaml"), []byte(testRuleOne), 0o644)
	slack := slacktest.New(t)
	slack.SetDown(503) // Slack is out: the alert waits in the outbox
	falcoAddr, httpAddr := freeAddr(t), freeAddr(t)
	state := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "ecscorr.yaml")
	os.WriteFile(cfg, []byte(`state_dir: `+state+`
rules: [`+rules+`]
http: {listen: `+httpAddr+`}
shutdown_timeout: 60s
sources:
  - type: falco_http
    listen: `+falcoAddr+`
sinks:
  - type: slack
    webhook_url: ${SLACK_WEBHOOK_URL}
    backoff: 10ms
    max_backoff: 50ms
    max_attempts: 1000000
`), 0o644)
	p := startRun(t, bin, cfg, "SLACK_WEBHOOK_URL="+slack.WebhookURL())
	p.http = httpAddr
	waitFor(t, "ready", func() bool { c, _ := p.get("/readyz"); return c == 200 }, p)
	resp, err := http.Post("http://"+falcoAddr+"/", "application/json", bytes.NewReader(testAlert("Test rule one", 1)))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("alert: %v %v", err, resp)
	}
	resp.Body.Close()
	waitFor(t, "failing deliveries", func() bool { return slack.Failures() >= 3 }, p)
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, "the drain", func() bool { return strings.Contains(p.stderr.String(), "stopping: intake stops") }, p)
	time.Sleep(300 * time.Millisecond)
	if p.cmd.ProcessState != nil {
		t.Fatal("exited before the drain deadline although Slack took nothing")
	}
	t0 := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	err = p.cmd.Wait()
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("the second SIGTERM took %v", d)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("after the second SIGTERM: %v", err)
	}
	// Nothing was lost: the alert waits in the outbox.
	code, out, errOut := runCmd(t, "outbox", "list", "--state", state, "--format", "jsonl")
	if code != 0 || strings.Count(out, `"rule":"test-one"`) != 1 {
		t.Fatalf("outbox after the exit: %d %q %s", code, out, errOut)
	}
}
