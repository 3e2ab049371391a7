package securityhub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	"github.com/aws/aws-sdk-go-v2/service/securityhub/types"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/internal/sinktest"
	"github.com/ecscorr/ecscorr/sinks/securityhub/securityhubtest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

var now0 = time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.UTC)

func newSink(t *testing.T, f *securityhubtest.Server, cfg Config) *Sink {
	t.Helper()
	f.Setenv(t)
	if cfg.Now == nil {
		clock := now0
		cfg.Now = func() time.Time { clock = clock.Add(time.Second); return clock }
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// indent renders a finding with sorted keys: the SDK writes maps in
// random order.
func indent(t *testing.T, raw []byte) []byte {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs (run with -update to accept):\n%s", path, got)
	}
}

// One finding per incident with every field the integration promises;
// the resolved incident re-imports the same Id, later, archived.
func TestFindingOfAnIncident(t *testing.T) {
	f := securityhubtest.New(t)
	s := newSink(t, f, Config{SourceURL: "https://ecscorr.example/incidents/{id}",
		GuardDutyDetectors: map[string]string{securityhubtest.Account + "/us-east-1": "12abc34d567e8fa901bc2d34e56789f0"}})
	if s.Account() != securityhubtest.Account {
		t.Fatalf("calling account %q", s.Account())
	}
	open := sinktest.Incident(sinktest.Create(7, pipeline.SeverityCritical))
	open.Runbook = "https://runbooks.example/reverse-shell"
	resolved := sinktest.Incident(sinktest.Update(7, 1, pipeline.SeverityCritical, time.Hour, true))
	for _, inc := range []pipeline.Incident{open, resolved} {
		if err := s.Deliver(context.Background(), []pipeline.Incident{inc}); err != nil {
			t.Fatal(err)
		}
	}
	imps, reqs, inv, sig := got(f)
	if len(imps) != 2 || reqs != 2 || len(inv) != 0 || len(sig) != 0 || f.State().Ignored != 0 {
		t.Fatalf("%d imported in %d requests; invalid %v; signatures %v", len(imps), reqs, inv, sig)
	}
	if imps[0].ID != "inc-e007" || imps[1].ID != "inc-e007" || imps[0].UpdatedAt != "2026-03-04T05:06:08.891Z" || imps[1].UpdatedAt != "2026-03-04T05:06:09.891Z" {
		t.Fatalf("imports %+v", imps)
	}
	golden(t, "finding-open.json", indent(t, imps[0].Raw))
	golden(t, "finding-resolved.json", indent(t, imps[1].Raw))
}

// The fake refuses what Security Hub refuses, so the other tests' clean
// imports mean something.
func TestFakeRefusesInvalidFindings(t *testing.T) {
	f := securityhubtest.New(t)
	s := newSink(t, f, Config{})
	base := s.finding(ptr(sinktest.Incident(sinktest.Create(1, pipeline.SeverityHigh))), s.self, now0)
	mut := func(id string, fn func(*types.AwsSecurityFinding)) types.AwsSecurityFinding {
		fd := base
		fd.Id = aws.String(id)
		fn(&fd)
		return fd
	}
	fds := []types.AwsSecurityFinding{
		mut("ok", func(*types.AwsSecurityFinding) {}),
		mut("long-title", func(fd *types.AwsSecurityFinding) { fd.Title = aws.String(strings.Repeat("t", 257)) }),
		mut("33-resources", func(fd *types.AwsSecurityFinding) {
			for len(fd.Resources) < 33 {
				fd.Resources = append(fd.Resources, base.Resources[0])
			}
		}),
		mut("long-recommendation", func(fd *types.AwsSecurityFinding) {
			fd.Remediation = &types.Remediation{Recommendation: &types.Recommendation{Text: aws.String(strings.Repeat("r", 513))}}
		}),
		mut("other-account", func(fd *types.AwsSecurityFinding) { fd.AwsAccountId = aws.String(securityhubtest.OtherAccount) }),
		mut("bad-type", func(fd *types.AwsSecurityFinding) {
			fd.FindingProviderFields = &types.FindingProviderFields{Severity: base.FindingProviderFields.Severity, Types: []string{"T1059"}, Confidence: aws.Int32(1)}
		}),
	}
	out, err := s.clients[securityhubtest.Account].BatchImportFindings(context.Background(), &securityhub.BatchImportFindingsInput{Findings: fds})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ff := range out.FailedFindings {
		got = append(got, aws.ToString(ff.Id)+":"+aws.ToString(ff.ErrorCode))
	}
	if strings.Join(got, " ") != "long-title:InvalidInput 33-resources:InvalidInput long-recommendation:InvalidInput other-account:InvalidInput bad-type:InvalidInput" ||
		aws.ToInt32(out.SuccessCount) != 1 {
		t.Fatalf("failed %v, success %d", got, aws.ToInt32(out.SuccessCount))
	}
	many := make([]types.AwsSecurityFinding, 101)
	for i := range many {
		many[i] = mut(fmt.Sprint(i), func(*types.AwsSecurityFinding) {})
	}
	_, err = s.clients[securityhubtest.Account].BatchImportFindings(context.Background(), &securityhub.BatchImportFindingsInput{Findings: many})
	if err == nil || classify(err) == nil || !errors.Is(classify(err), pipeline.ErrPermanent) || !strings.Contains(err.Error(), "InvalidInputException") {
		t.Fatalf("101 findings: %v", err)
	}
}

func got(f *securityhubtest.Server) (imports []securityhubtest.Import, requests int, invalid, sigErrors []string) {
	s := f.State()
	return s.Imports, s.Requests, s.Invalid, s.SignatureErrors
}

func ptr[T any](v T) *T { return &v }

// A request signed with the wrong secret is refused by both fakes: the
// signature check is real.
func TestFakeChecksSignatures(t *testing.T) {
	f := securityhubtest.New(t)
	f.Setenv(t)
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(securityhubtest.AccessKeyID, "wrong", "")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), Config{AWS: &cfg}); err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("sts with a wrong secret: %v", err)
	}
	s := newSink(t, f, Config{})
	s.clients[securityhubtest.Account] = securityhub.NewFromConfig(cfg, func(o *securityhub.Options) {
		o.Retryer = aws.NopRetryer{}
	})
	err = s.Deliver(context.Background(), []pipeline.Incident{sinktest.Incident(sinktest.Create(1, pipeline.SeverityHigh))})
	_, _, _, sig := got(f)
	if err == nil || !strings.Contains(err.Error(), "InvalidSignatureException") || len(sig) != 2 ||
		sig[0] != "sts: signature does not match" || sig[1] != "securityhub: signature does not match" {
		t.Fatalf("deliver: %v; signature errors %q", err, sig)
	}
}

// Security Hub's answers are classified: a finding it calls invalid is
// dead-lettered alone, the rest of its batch delivered; throttling waits;
// internal errors retry.
func TestAnswersAreClassified(t *testing.T) {
	f := securityhubtest.New(t)
	s := newSink(t, f, Config{})
	incs := []pipeline.Incident{}
	for i := range 4 {
		incs = append(incs, sinktest.Incident(sinktest.Create(i, pipeline.SeverityHigh)))
	}
	f.Fail(sinktest.ID(1), "InvalidInput")
	f.FailOnce(sinktest.ID(2), "InternalFailure")
	f.FailOnce(sinktest.ID(3), "ThrottlingException")
	err := s.Deliver(context.Background(), incs)
	var be *pipeline.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 3 {
		t.Fatalf("%v", err)
	}
	var ra *pipeline.RetryAfterError
	if e := be.Failed[sinktest.ID(1)]; !errors.Is(e, pipeline.ErrPermanent) || e.Error() != pipeline.ErrPermanent.Error()+": InvalidInput: refused by the test" {
		t.Fatalf("InvalidInput: %v", e)
	}
	if e := be.Failed[sinktest.ID(2)]; e == nil || errors.Is(e, pipeline.ErrPermanent) || errors.As(e, &ra) {
		t.Fatalf("InternalFailure: %v", e)
	}
	if e := be.Failed[sinktest.ID(3)]; !errors.As(e, &ra) || ra.After != time.Second {
		t.Fatalf("Throttling: %v", e)
	}
	if imps, _, _, _ := got(f); len(imps) != 1 || imps[0].ID != sinktest.ID(0) {
		t.Fatalf("imported %+v", imps)
	}
	one := incs[2:3]
	for _, c := range []struct {
		set       func(f *securityhubtest.Server)
		permanent bool
		after     time.Duration
		text      string
	}{
		{func(f *securityhubtest.Server) { f.Throttle(1, "") }, false, time.Second, "ThrottlingException"},
		{func(f *securityhubtest.Server) { f.Throttle(1, "LimitExceededException") }, false, time.Second, "LimitExceededException"},
		{func(f *securityhubtest.Server) { f.SetDown(500) }, false, 0, "InternalException"},
		{func(f *securityhubtest.Server) { f.SetDown(503) }, false, 0, "StatusCode: 503"},
	} {
		c.set(f)
		err := s.Deliver(context.Background(), one)
		ra = nil
		errors.As(err, &ra)
		if err == nil || errors.Is(err, pipeline.ErrPermanent) != c.permanent || (ra != nil) != (c.after > 0) || (ra != nil && ra.After != c.after) || !strings.Contains(err.Error(), c.text) {
			t.Fatalf("%s: %v", c.text, err)
		}
		f.SetDown(0)
	}
	if err := s.Deliver(context.Background(), one); err != nil {
		t.Fatal(err)
	}
	if imps, reqs, inv, _ := got(f); len(imps) != 2 || reqs != 6 || len(inv) != 0 {
		t.Fatalf("%d imported in %d requests (%v)", len(imps), reqs, inv)
	}
}

func bigIncident(n int) pipeline.Incident {
	inc := sinktest.Incident(sinktest.Create(n, pipeline.SeverityHigh))
	for i := range 600 {
		inc.Events = append(inc.Events, pipeline.EventRef{Source: pipeline.SourceFalco, ID: fmt.Sprintf("%064x", i), Type: strings.Repeat("Terminal shell in container ", 2), Time: sinktest.T0.Add(time.Duration(i) * time.Second)})
	}
	inc.EventsDropped = 5
	return inc
}

// Findings go in requests of at most 100 findings and 6 MB. The size
// limit is lowered to 600 kB here (a tenth) to spare the test 8 MB of
// JSON; the fake still refuses requests over Security Hub's own 6 MB.
func TestBatchesByCountAndSize(t *testing.T) {
	f := securityhubtest.New(t)
	s := newSink(t, f, Config{})
	if s.maxBytes != 6_000_000 {
		t.Fatalf("limit %d", s.maxBytes)
	}
	small := make([]pipeline.Incident, 250)
	for i := range small {
		small[i] = sinktest.Incident(sinktest.Create(i, pipeline.SeverityHigh))
	}
	if err := s.Deliver(context.Background(), small); err != nil {
		t.Fatal(err)
	}
	s.maxBytes = 600_000
	big := make([]pipeline.Incident, 10)
	for i := range big {
		big[i] = bigIncident(300 + i)
	}
	if err := s.Deliver(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	imps, reqs, inv, _ := got(f)
	if len(imps) != 260 || len(inv) != 0 || fmt.Sprint(f.State().Batches) != "[100 100 50 7 3]" || reqs != 5 {
		t.Fatalf("%d imported in batches %v (%d requests); invalid %v", len(imps), f.State().Batches, reqs, inv)
	}
	// The first batch of big findings is as full as the limit allows: the
	// sizes the sink counts are the SDK's, one more would not fit.
	per := f.State().Bodies[3] / f.State().Batches[3]
	if f.State().Bodies[3] > s.maxBytes || f.State().Bodies[4] > s.maxBytes || f.State().Bodies[3]+per <= s.maxBytes || per < 60_000 {
		t.Fatalf("request sizes %v of batches %v", f.State().Bodies, f.State().Batches)
	}
	// The evidence of a big incident: as many lines as 39 full fields
	// take (40 at most), the last one ending with what did not fit. A long
	// line is 148 characters: 13 fit in 2048, and 12 beside the two short
	// lines of the first field.
	var fd struct{ ProductFields map[string]string }
	json.Unmarshal(imps[250].Raw, &fd)
	ev := 0
	for k := range fd.ProductFields {
		if strings.HasPrefix(k, "ecscorr/Evidence/") {
			ev++
		}
	}
	last := fd.ProductFields["ecscorr/Evidence/39"]
	lines := 0
	for i := 1; i <= ev; i++ {
		lines += strings.Count(fd.ProductFields[fmt.Sprintf("ecscorr/Evidence/%02d", i)], "\n") + 1
	}
	shown := lines - 1
	if ev != 39 || len(fd.ProductFields) != 44 || shown != 14+38*13 || !strings.HasSuffix(last, fmt.Sprintf("\n… and %d more", 602+5-shown)) {
		t.Fatalf("%d evidence fields of %d, %d lines shown; last ends %q", ev, len(fd.ProductFields), shown, last[max(0, len(last)-30):])
	}
}

// Incidents of another account go to its Security Hub through the role
// configured for it (assumed once); without a role they are dead-lettered
// and nothing is sent for them.
func TestOtherAccounts(t *testing.T) {
	f := securityhubtest.New(t)
	s := newSink(t, f, Config{AccountRoles: map[string]string{securityhubtest.OtherAccount: securityhubtest.OtherRole}})
	var incs []pipeline.Incident
	for i := range 6 {
		acct := []string{securityhubtest.Account, securityhubtest.OtherAccount, "333333333333"}[i%3]
		incs = append(incs, sinktest.Incident(sinktest.InAccount(sinktest.Create(i, pipeline.SeverityHigh), acct)))
	}
	for range 2 {
		err := s.Deliver(context.Background(), incs)
		var be *pipeline.BatchError
		if !errors.As(err, &be) || len(be.Failed) != 2 {
			t.Fatalf("%v", err)
		}
		for _, i := range []int{2, 5} {
			if e := be.Failed[sinktest.ID(i)]; !errors.Is(e, pipeline.ErrPermanent) || !strings.HasSuffix(e.Error(), "no role configured for account 333333333333") {
				t.Fatalf("%d: %v", i, e)
			}
		}
	}
	imps, reqs, inv, sig := got(f)
	if len(imps) != 8 || reqs != 4 || len(inv) != 0 || len(sig) != 0 || f.State().Assumed != 1 {
		t.Fatalf("%d imported in %d requests, %d roles assumed; invalid %v; signatures %v", len(imps), reqs, f.State().Assumed, inv, sig)
	}
	for _, im := range imps {
		var fd struct{ AwsAccountId, ProductArn string }
		json.Unmarshal(im.Raw, &fd)
		wantSigner := map[string]string{securityhubtest.Account: securityhubtest.AccessKeyID, securityhubtest.OtherAccount: "ASIAFAKE000000000001"}[im.Account]
		if fd.AwsAccountId != im.Account || im.Signer != wantSigner || !strings.Contains(fd.ProductArn, ":"+im.Account+":product/"+im.Account+"/default") {
			t.Fatalf("%s imported into %s as %s: %+v", im.ID, im.Account, im.Signer, fd)
		}
	}
	if p := DefaultPolicy(); p.BatchSize != 100 || p.Rate != 10 {
		t.Fatalf("policy %+v", p)
	}
}

// A redelivery after a crash between the import and the outbox's
// acknowledgement imports the same Id again, later: Security Hub updates
// the one finding, none is duplicated.
func TestRedeliveryAfterRestartUpdatesTheSameFinding(t *testing.T) {
	f := securityhubtest.New(t)
	inc := []pipeline.Incident{sinktest.Incident(sinktest.Create(4, pipeline.SeverityHigh))}
	for range 2 {
		if err := newSink(t, f, Config{Now: time.Now}).Deliver(context.Background(), inc); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // a restart takes longer than a millisecond
	}
	imps, _, _, _ := got(f)
	if len(imps) != 2 || imps[0].ID != imps[1].ID || imps[1].UpdatedAt <= imps[0].UpdatedAt || f.State().Stored != 1 || f.State().Ignored != 0 {
		t.Fatalf("imports %+v, %d findings stored, %d ignored", imps, f.State().Stored, f.State().Ignored)
	}
}

// An import taken whose answer never came (the caller gave up while the
// fake answered late) is sent again: Security Hub updates the one finding.
func TestLostAnswerReimportsTheSameFinding(t *testing.T) {
	f := securityhubtest.New(t)
	f.SetDelay(0, time.Minute)
	s := newSink(t, f, Config{})
	inc := []pipeline.Incident{sinktest.Incident(sinktest.Create(4, pipeline.SeverityHigh))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for len(f.State().Imports) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if err := s.Deliver(ctx, inc); !errors.Is(err, context.Canceled) || errors.Is(err, pipeline.ErrPermanent) {
		t.Fatalf("%v, want the cancellation", err)
	}
	f.SetDelay(0, 0)
	if err := s.Deliver(context.Background(), inc); err != nil {
		t.Fatal(err)
	}
	st := f.State()
	if len(st.Imports) != 2 || st.Imports[0].ID != sinktest.ID(4) || st.Imports[1].ID != sinktest.ID(4) || st.Stored != 1 || st.Ignored != 0 || st.Requests != 2 {
		t.Fatalf("%d imports in %d requests, %d stored, %d ignored", len(st.Imports), st.Requests, st.Stored, st.Ignored)
	}
}

// STS unreachable at start does not stop the service: the sink starts,
// and without knowing the account it calls as it imports each incident
// into the incident's own account with the configured credentials, which
// Security Hub accepts for that account only.
func TestSTSUnreachableAtStart(t *testing.T) {
	f := securityhubtest.New(t)
	f.Setenv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", dead)
	s, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatalf("New with STS down: %v", err)
	}
	if s.Account() != "" {
		t.Fatalf("account %q without STS", s.Account())
	}
	own := sinktest.Incident(sinktest.Create(1, pipeline.SeverityHigh))
	other := sinktest.Incident(sinktest.InAccount(sinktest.Create(2, pipeline.SeverityHigh), securityhubtest.OtherAccount))
	err = s.Deliver(context.Background(), []pipeline.Incident{own, other})
	var be *pipeline.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[other.ID] == nil {
		t.Fatalf("deliver with STS down: %v (want only the other account's finding refused)", err)
	}
	if st := f.State(); st.Stored != 1 || st.Imports[0].ID != own.ID || st.Imports[0].Account != securityhubtest.Account {
		t.Fatalf("Security Hub holds %+v", st.Imports)
	}
}

// ASFF Types from the incident's ATT&CK ids: the table's tactic, else
// the one tactic the (Sigma) tags name, else unusual behaviour.
func TestFindingTypes(t *testing.T) {
	for _, c := range []struct {
		mitre, tags []string
		want        string
	}{
		{[]string{"T1580", "T1619"}, []string{"attack.discovery", "attack.t1580", "attack.t1619"}, "TTPs/Discovery/T1580 TTPs/Discovery/T1619"},
		{[]string{"T1566.002"}, []string{"attack.initial-access"}, "TTPs/Initial Access/T1566.002"},
		{[]string{"T1686.001"}, []string{"attack.defense-impairment"}, "TTPs/Defense Evasion/T1686.001"},
		{[]string{"T1548", "T1550.001"}, []string{"attack.lateral-movement", "attack.privilege-escalation"}, "TTPs/Privilege Escalation/T1548 TTPs/Lateral Movement/T1550.001"},
		// Not in the table: filed by the tag only when the rule names one tactic.
		{[]string{"T1999"}, []string{"attack.collection"}, "TTPs/Collection/T1999"},
		{[]string{"T1999"}, []string{"attack.collection", "attack.execution"}, "Unusual Behaviors"},
		{[]string{"T1999"}, nil, "Unusual Behaviors"},
		{nil, nil, "Unusual Behaviors"},
	} {
		if got := strings.Join(findingTypes(c.mitre, c.tags), " "); got != c.want {
			t.Errorf("findingTypes(%v, %v) = %q, want %q", c.mitre, c.tags, got, c.want)
		}
	}
}
