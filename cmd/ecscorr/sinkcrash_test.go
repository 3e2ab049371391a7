package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/sinks/securityhub/securityhubtest"
	"github.com/ecscorr/ecscorr/sinks/slack/slacktest"
)

// sinkFakes are one run's Slack and Security Hub, and the config and
// environment that send the real binary's incidents to them.
type sinkFakes struct {
	slack *slacktest.Server
	sh    *securityhubtest.Server
	cfg   string
	env   []string
}

// The fakes wait takeDelay before they take a message or an import, and
// answerDelay before they answer, so that a kill at a random time often
// lands in the middle of a delivery: in the first wait after the send,
// before the service has it (it drops the request); in the second, after
// the service has it, before the outbox's record of it.
const (
	takeDelay   = 15 * time.Millisecond
	answerDelay = 15 * time.Millisecond
)

// corpusAccount is the account of crashCorpus's tasks: its incidents go to
// its own Security Hub through a role.
const (
	corpusAccount = "111122223333"
	corpusRole    = "arn:aws:iam::111122223333:role/ecscorr-import"
)

// newSinkFakes starts the fakes; Slack is reached through its webhook, or
// with bot a token (threads and edits).
func newSinkFakes(t *testing.T, bot bool) *sinkFakes {
	t.Helper()
	f := &sinkFakes{slack: slacktest.New(t), sh: securityhubtest.New(t), cfg: filepath.Join(t.TempDir(), "ecscorr.yaml")}
	f.slack.SetDelay(takeDelay, answerDelay)
	f.sh.SetDelay(takeDelay, answerDelay)
	f.sh.AddRole(corpusRole, corpusAccount)
	slack := "webhook_url_env: SLACK_WEBHOOK_URL"
	if bot {
		slack = "token_env: SLACK_BOT_TOKEN\n    channel: " + slacktest.Channel + "\n    base_url: " + f.slack.APIURL()
	}
	// Slack's default 1/s would make every run last as many seconds as it
	// posts; the backoff is short so that nothing waits for a retry.
	cfg := "sinks:\n" +
		"  - type: slack\n    " + slack + "\n    rate: 200\n    backoff: 10ms\n" +
		"  - type: securityhub\n    region: us-east-1\n    backoff: 10ms\n    account_roles: {\"" + corpusAccount + "\": " + corpusRole + "}\n"
	if err := os.WriteFile(f.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// TMPDIR: a killed run cannot remove its temp dir.
	f.env = append(os.Environ(), "SLACK_WEBHOOK_URL="+f.slack.WebhookURL(), "SLACK_BOT_TOKEN="+slacktest.Token, "TMPDIR="+t.TempDir())
	for k, v := range f.sh.Env() {
		f.env = append(f.env, k+"="+v) // the last of a name wins
	}
	return f
}

// delivered is what the fakes received, per incident.
type delivered struct {
	alerts     map[string]int    // incident → top-level Slack alerts
	messages   int               // Slack messages of every kind
	findings   map[string]string // finding Id → its last import, without UpdatedAt
	imports    int
	requests   int // Slack requests received
	shRequests int // BatchImportFindings requests received
}

func (f *sinkFakes) delivered(t *testing.T) delivered {
	t.Helper()
	d := delivered{alerts: map[string]int{}, findings: map[string]string{}}
	seen := map[string]bool{}
	posts := map[string]string{} // ts → incident (bot)
	for i, m := range f.slack.Messages() {
		d.messages++
		switch {
		case m.Incident == "":
			t.Errorf("Slack message %d names no incident", i)
		case m.IsAlert():
			d.alerts[m.Incident]++
			seen[m.Incident] = true
			posts[m.TS] = m.Incident
		case !seen[m.Incident]:
			t.Errorf("Slack message %d: a follow-up of %s before its alert", i, m.Incident)
		case m.Kind == slacktest.KindReply && posts[m.ThreadTS] != m.Incident, m.Kind == slacktest.KindUpdate && posts[m.TS] != m.Incident:
			t.Errorf("Slack message %d: a %s of %s to a message about %q", i, m.Kind, m.Incident, posts[cmp.Or(m.ThreadTS, m.TS)])
		}
	}
	st := f.sh.State()
	d.requests, d.shRequests = f.slack.Requests(), st.Requests
	if len(st.Invalid) > 0 || len(st.SignatureErrors) > 0 || st.Ignored > 0 {
		t.Errorf("Security Hub: invalid %q, signature errors %q, %d imports ignored", st.Invalid, st.SignatureErrors, st.Ignored)
	}
	for _, im := range st.Imports {
		var fd map[string]any
		if err := json.Unmarshal(im.Raw, &fd); err != nil {
			t.Fatal(err)
		}
		delete(fd, "UpdatedAt")
		b, _ := json.Marshal(fd)
		d.findings[im.ID] = string(b)
		d.imports++
	}
	return d
}

// findingSummary names what a finding says of its incident's state.
func findingSummary(raw string) string {
	var fd struct {
		RecordState           string
		Workflow              struct{ Status string }
		FindingProviderFields struct{ Severity struct{ Label string } }
		ProductFields         map[string]string
	}
	json.Unmarshal([]byte(raw), &fd)
	return fmt.Sprintf("%s/%s/%s/count %s", fd.FindingProviderFields.Severity.Label, fd.RecordState, fd.Workflow.Status, fd.ProductFields["ecscorr/Count"])
}

// The real binary, replaying with Slack (a webhook or a bot token) and
// Security Hub sinks, is SIGKILLed at a random time, or while a fake holds
// a request it has not taken yet or the answer to one it took (a random
// one of the run's), then rerun to completion over the same state: every
// incident of one uninterrupted run reaches Slack with at most one
// duplicate alert, Security Hub holds exactly that run's findings, each
// last imported as that run last imported it, and the outbox is empty.
func TestSinksSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	t.Parallel() // with the other real-binary tests: much of their time is waiting
	bin := realBinary(t)
	corpus := crashCorpus(t, 12000)
	replay := func(f *sinkFakes, stateDir string) *exec.Cmd {
		cmd := exec.Command(bin, "replay", "--quiet", "--state", stateDir, "--config", f.cfg,
			"--commit-interval", "1ms", "--batch", "50", "--drain-timeout", "60s", corpus)
		cmd.Env = f.env
		return cmd
	}

	clean := newSinkFakes(t, false)
	t0 := time.Now()
	var stderr bytes.Buffer
	cmd := replay(clean, filepath.Join(t.TempDir(), "whole"))
	cmd.Stderr = &stderr
	report, err := cmd.Output()
	if err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, stderr.Bytes())
	}
	full := time.Since(t0)
	want := clean.delivered(t)
	for id, n := range want.alerts {
		if n != 1 {
			t.Fatalf("the uninterrupted run alerted %s %d times", id, n)
		}
	}
	if len(want.alerts) < 10 || len(want.findings) != len(want.alerts) {
		t.Fatalf("the uninterrupted run alerted %d incidents and imported %d findings\n%s", len(want.alerts), len(want.findings), stderr.Bytes())
	}
	t.Logf("uninterrupted run %v: %d incidents alerted in %d Slack messages, %d findings in %d imports",
		full, len(want.alerts), want.messages, len(want.findings), want.imports)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 8))
	t.Logf("kill seed %d", seed)
	const trials = 10
	plans := make([]killPlan, trials)
	for i := range plans {
		p := &plans[i]
		p.bot = i >= trials/2 // each kind of kill with each kind of Slack
		// The request held is one of the uninterrupted run's; Security Hub
		// batches by timing, so not its last.
		slackReq, shReq := 1+rng.IntN(want.requests), 1+rng.IntN(max(1, want.shRequests-1))
		switch i % 5 {
		case 0: // anywhere: reading, correlating, committing, delivering
			p.at = time.Duration(rng.Int64N(int64(full)))
		case 1: // Slack took a message and has not answered
			p.answer = slackReq
		case 2: // a message reached Slack, which has not taken it
			p.take = slackReq
		case 3: // Security Hub took an import and has not answered
			p.securityHub, p.answer = true, shReq
		case 4: // an import reached Security Hub, which has not taken it
			p.securityHub, p.take = true, shReq
		}
	}
	var mu sync.Mutex
	var killed, duplicated, reimported int
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2) // two trials at a time, each with its own state and fakes
	for i, p := range plans {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			k, dups, again := sinkTrial(t, i, p, replay, report, want)
			mu.Lock()
			defer mu.Unlock()
			if k {
				killed++
			}
			duplicated += dups
			reimported += again
		}()
	}
	wg.Wait()
	t.Logf("%d of %d runs killed before they ended; %d duplicate Slack alerts and %d findings imported again in all", killed, trials, duplicated, reimported)
	if killed < trials/2 {
		t.Errorf("only %d of %d runs were killed: the test proves little", killed, trials)
	}
}

// killPlan says when a trial kills its first run: after at, or while
// Slack (or Security Hub) holds its take-th request before taking it, or
// the answer to its answer-th request after taking it.
type killPlan struct {
	bot          bool // Slack through a bot token, not a webhook
	at           time.Duration
	securityHub  bool
	take, answer int
}

// reached reports whether the fakes hold the request p kills in.
func (p *killPlan) reached(f *sinkFakes) bool {
	switch {
	case p.securityHub:
		st := f.sh.State()
		// Batches counts the requests whose findings were taken.
		return (p.take > 0 && st.Requests >= p.take) || (p.answer > 0 && len(st.Batches) >= p.answer)
	case p.take > 0:
		return f.slack.Requests() >= p.take
	}
	return len(f.slack.Messages()) >= p.answer // every message is taken here
}

// sinkTrial kills one replay as planned, reruns it to completion and
// checks what the fakes received; it reports whether the first run was
// killed, how many duplicate alerts were posted and how many more imports
// than the uninterrupted run's Security Hub took.
func sinkTrial(t *testing.T, i int, p killPlan, replay func(*sinkFakes, string) *exec.Cmd, report []byte, want delivered) (killed bool, dups, again int) {
	f := newSinkFakes(t, p.bot)
	if p.securityHub {
		f.sh.Stall(p.take, p.answer)
	} else {
		f.slack.Stall(p.take, p.answer)
	}
	dir := filepath.Join(t.TempDir(), "state")
	cmd := replay(f, dir)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = new(bytes.Buffer), &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		defer cmd.Process.Signal(syscall.SIGKILL)
		if p.take+p.answer == 0 {
			select {
			case <-time.After(p.at):
			case <-exited:
			}
			return
		}
		for !p.reached(f) {
			select {
			case <-exited:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(exited)
	what := fmt.Sprintf("trial %d (%+v)", i, p)
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	killed = ws.Signaled() && ws.Signal() == syscall.SIGKILL
	if err != nil && !killed {
		t.Errorf("%s: first run: %v\n%s", what, err, stderr.Bytes())
		return false, 0, 0
	}
	before := f.delivered(t)
	f.slack.Stall(0, 0)
	f.sh.Stall(0, 0)

	cmd = replay(f, dir)
	stderr.Reset()
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Errorf("%s: rerun: %v\n%s", what, err, stderr.Bytes())
		return killed, 0, 0
	}
	if !bytes.Equal(got, report) {
		t.Errorf("%s: the rerun's report differs from the uninterrupted run's", what)
	}
	d := f.delivered(t)
	what += fmt.Sprintf(" [killed %v with %d of %d Slack requests taken, %d imports in %d requests]", killed, before.messages, before.requests, before.imports, before.shRequests)
	for id := range want.alerts {
		switch n := d.alerts[id]; {
		case n == 0:
			t.Errorf("%s: %s never reached Slack", what, id)
		case n > 2:
			t.Errorf("%s: %s alerted %d times", what, id, n)
		case n == 2:
			dups++
		}
	}
	for id := range d.alerts {
		if _, ok := want.alerts[id]; !ok {
			t.Errorf("%s: %s alerted, unlike in the uninterrupted run", what, id)
		}
	}
	var ids, wantIDs []string
	for id := range d.findings {
		ids = append(ids, id)
	}
	for id, fd := range want.findings {
		wantIDs = append(wantIDs, id)
		if g, ok := d.findings[id]; ok && g != fd {
			t.Errorf("%s: finding %s last imported as %s, not as %s (or otherwise differs)\n got %s\nwant %s", what, id, findingSummary(g), findingSummary(fd), g, fd)
		}
	}
	slices.Sort(ids)
	slices.Sort(wantIDs)
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("%s: findings %v, want %v", what, ids, wantIDs)
	}
	for args, empty := range map[string]string{"": "no incidents waiting", "--dead": "no dead-lettered incidents"} {
		out, err := exec.Command(realBinary(t), strings.Fields("outbox list --state "+dir+" "+args)...).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != empty {
			t.Errorf("%s: outbox list %s after the rerun: %v\n%s", what, args, err, out)
		}
	}
	t.Logf("%s: %d duplicate alerts, %d imports more", what, dups, d.imports-want.imports)
	return killed, dups, d.imports - want.imports
}
