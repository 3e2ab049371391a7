// Package securityhub is the stream sink that imports incidents into AWS
// Security Hub as ASFF findings (BatchImportFindings), one per incident:
// its Id is the incident id, so every change re-imports the same finding
// with a later UpdatedAt and a redelivery never makes a second finding.
//
// The client comes from the SDK's default configuration (environment,
// shared files, instance or task role; AWS_ENDPOINT_URL_SECURITYHUB and
// AWS_ENDPOINT_URL_STS point it elsewhere). Findings of the calling account
// go to its Security Hub; findings of another account go to that account's
// own Security Hub through a role assumed there, and are dead-lettered when
// no role is configured for the account (Security Hub only takes findings
// from the account they are about).
package securityhub

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	"github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/internal/incfield"
)

// Request limits of BatchImportFindings.
const (
	maxBatch = 100
	// maxBatchBytes and maxFindingBytes stay under 6 MB and 240 KB
	// whichever way a megabyte is counted.
	maxBatchBytes   = 6_000_000
	maxFindingBytes = 240_000
)

// Config configures a Security Hub sink.
type Config struct {
	// Name is the sink's name in routes and the outbox (default
	// "securityhub").
	Name string
	// AWS is the SDK configuration; nil loads the default one.
	AWS *aws.Config
	// Region overrides the configuration's Region: the Security Hub
	// findings are imported into.
	Region string
	// AccountRoles maps the id of another account to the ARN of a role in
	// it that may call securityhub:BatchImportFindings; its incidents are
	// imported there. ExternalID is passed to AssumeRole when set.
	AccountRoles map[string]string
	ExternalID   string
	// SourceURL links a finding to a page about the incident; "{id}" in it
	// becomes the incident id.
	SourceURL string
	// GuardDutyDetectors maps "account/region" to the GuardDuty detector
	// id there, so that related GuardDuty findings are referenced by the
	// finding ARN Security Hub knows them by (without it, by finding id).
	GuardDutyDetectors map[string]string
	Logger             *slog.Logger
	// Now is the clock of UpdatedAt (default time.Now).
	Now func() time.Time
}

// DefaultPolicy is Security Hub's: batches of up to 100 findings, at most
// 10 requests per second (its throttle is 10 TPS with bursts of 30).
func DefaultPolicy() pipeline.DeliveryPolicy {
	return pipeline.DeliveryPolicy{BatchSize: maxBatch, Rate: 10, Burst: 10}
}

// importer is the part of the Security Hub client the sink uses.
type importer interface {
	BatchImportFindings(ctx context.Context, in *securityhub.BatchImportFindingsInput, opts ...func(*securityhub.Options)) (*securityhub.BatchImportFindingsOutput, error)
}

// Sink imports incidents into Security Hub.
type Sink struct {
	name      string
	cfg       aws.Config
	self      target // the calling account
	roles     map[string]string
	extID     string
	sourceURL string
	detectors map[string]string
	log       *slog.Logger
	warnOnce  sync.Once
	now       func() time.Time
	sts       *sts.Client
	maxBytes  int // a request's findings at most (maxBatchBytes; tests lower it)

	mu      sync.Mutex
	clients map[string]importer  // account → client
	last    map[string]time.Time // incident id → UpdatedAt last sent
}

// New builds a Security Hub sink and asks STS which account it calls as.
func New(ctx context.Context, c Config) (*Sink, error) {
	s := &Sink{name: cmp.Or(c.Name, "securityhub"), roles: c.AccountRoles, extID: c.ExternalID, sourceURL: c.SourceURL,
		detectors: c.GuardDutyDetectors, log: c.Logger, now: c.Now, maxBytes: maxBatchBytes, clients: map[string]importer{}, last: map[string]time.Time{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if c.AWS != nil {
		s.cfg = c.AWS.Copy()
	} else {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("securityhub sink %s: loading the AWS configuration: %w", s.name, err)
		}
		s.cfg = cfg
	}
	if c.Region != "" {
		s.cfg.Region = c.Region
	}
	if s.cfg.Region == "" {
		return nil, fmt.Errorf("securityhub sink %s: no AWS Region configured", s.name)
	}
	s.sts = sts.NewFromConfig(s.cfg)
	s.self = target{partition: pipeline.PartitionForRegion(s.cfg.Region), region: s.cfg.Region}
	// STS unreachable at start (a network not up yet) must not stop the
	// service: the outbox holds the findings and the next delivery asks
	// again. An answer that refuses the credentials does stop it: that is
	// a configuration error.
	if err := s.identify(ctx); err != nil {
		var api smithy.APIError
		if errors.As(err, &api) {
			return nil, err
		}
		s.log.Warn("securityhub: the account ecscorr runs as is not known yet; findings wait in the outbox", "sink", s.name, "err", err)
	}
	return s, nil
}

// identify learns the account the sink calls as (sts GetCallerIdentity),
// once.
func (s *Sink) identify(ctx context.Context) error {
	s.mu.Lock()
	known := s.self.account != ""
	s.mu.Unlock()
	if known {
		return nil
	}
	id, err := s.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return fmt.Errorf("securityhub sink %s: sts GetCallerIdentity: %w", s.name, err)
	}
	if aws.ToString(id.Account) == "" {
		return fmt.Errorf("securityhub sink %s: sts GetCallerIdentity named no account", s.name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.self.account = aws.ToString(id.Account)
	s.clients[s.self.account] = s.newClient(nil)
	return nil
}

// newClient makes a Security Hub client, with creds or the configuration's.
// The outbox retries with its own backoff, so the client does not.
func (s *Sink) newClient(creds aws.CredentialsProvider) *securityhub.Client {
	return securityhub.NewFromConfig(s.cfg, func(o *securityhub.Options) {
		o.Retryer = aws.NopRetryer{}
		if creds != nil {
			o.Credentials = creds
		}
	})
}

// Account is the account the sink calls as.
func (s *Sink) Account() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self.account
}

func (s *Sink) Name() string                { return s.name }
func (s *Sink) Mode() pipeline.SinkMode     { return pipeline.SinkStream }
func (s *Sink) Close(context.Context) error { return nil }

// client returns the client importing into account, or a permanent error
// when there is no way to.
func (s *Sink) client(account string) (importer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[account]; c != nil {
		return c, nil
	}
	role := s.roles[account]
	if role == "" && s.self.account == "" && account != "" {
		// The account the sink calls as is not known (STS unreachable):
		// try this one with the configured credentials.
		c := s.newClient(nil)
		s.clients[account] = c
		return c, nil
	}
	if role == "" {
		return nil, pipeline.Permanent(fmt.Errorf("no role configured for account %s", account))
	}
	prov := stscreds.NewAssumeRoleProvider(s.sts, role, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = "ecscorr-securityhub"
		if s.extID != "" {
			o.ExternalID = aws.String(s.extID)
		}
	})
	c := s.newClient(aws.NewCredentialsCache(prov))
	s.clients[account] = c
	return c, nil
}

// updatedAt is now, in ASFF's millisecond precision, and later than the
// UpdatedAt last sent for id: Security Hub ignores an import that is not.
func (s *Sink) updatedAt(id string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.now().UTC().Truncate(time.Millisecond)
	if last, ok := s.last[id]; ok && !t.After(last) {
		t = last.Add(time.Millisecond)
	}
	s.last[id] = t
	return t
}

// Deliver imports one finding per incident, in requests of up to 100
// findings and 6 MB per account. Findings Security Hub refuses come back as
// a BatchError, classified by their ErrorCode.
func (s *Sink) Deliver(ctx context.Context, incs []pipeline.Incident) error {
	if err := s.identify(ctx); err != nil {
		var api smithy.APIError
		if errors.As(err, &api) {
			return err // STS refused: retried, nothing was sent
		}
		// STS unreachable (a private network without its endpoint):
		// import each incident into its own account with the configured
		// credentials (client); Security Hub refuses, per finding, what
		// they may not import.
		s.warnOnce.Do(func() {
			s.log.Warn("securityhub: sts unreachable; importing each incident into its own account with the configured credentials", "sink", s.name, "err", err)
		})
	}
	failed := map[string]error{}
	byAccount := map[string][]types.AwsSecurityFinding{}
	var accounts []string
	for i := range incs {
		inc := &incs[i]
		if inc.ID == "" || len(inc.ID) > maxID {
			failed[inc.ID] = pipeline.Permanent(fmt.Errorf("incident id of %d bytes is not a finding Id (1 to %d)", len(inc.ID), maxID))
			continue
		}
		acct := cmp.Or(incfield.Of(inc).Account, s.self.account)
		if _, err := s.client(acct); err != nil {
			failed[inc.ID] = err
			continue
		}
		to := s.self
		to.account = acct
		fd := s.finding(inc, to, s.updatedAt(inc.ID))
		if _, ok := byAccount[acct]; !ok {
			accounts = append(accounts, acct)
		}
		byAccount[acct] = append(byAccount[acct], fd)
	}
	for _, acct := range accounts {
		c, _ := s.client(acct)
		batches, tooBig := split(byAccount[acct], s.maxBytes)
		for id, n := range tooBig {
			failed[id] = pipeline.Permanent(fmt.Errorf("finding is %d bytes, over Security Hub's %d", n, maxFindingBytes))
		}
		for _, b := range batches {
			s.send(ctx, c, acct, b, failed)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	if len(incs) == 1 {
		return failed[incs[0].ID]
	}
	return &pipeline.BatchError{Failed: failed}
}

// send imports one batch and records what failed.
func (s *Sink) send(ctx context.Context, c importer, acct string, fds []types.AwsSecurityFinding, failed map[string]error) {
	out, err := c.BatchImportFindings(ctx, &securityhub.BatchImportFindingsInput{Findings: fds})
	if err != nil {
		err = classify(fmt.Errorf("BatchImportFindings into %s: %w", acct, err))
		for _, f := range fds {
			failed[aws.ToString(f.Id)] = err
		}
		return
	}
	for _, ff := range out.FailedFindings {
		id := aws.ToString(ff.Id)
		failed[id] = findingError(aws.ToString(ff.ErrorCode), aws.ToString(ff.ErrorMessage))
	}
	if n := int(aws.ToInt32(out.FailedCount)); n != len(out.FailedFindings) {
		s.log.Warn("securityhub: FailedCount disagrees with FailedFindings", "sink", s.name, "failed_count", n, "failed_findings", len(out.FailedFindings))
	}
}

// findingError classifies a FailedFindings entry: a finding Security Hub
// finds invalid will be refused again; throttling waits; anything else
// (internal errors, access not yet granted) is retried.
func findingError(code, msg string) error {
	err := fmt.Errorf("%s: %s", code, msg)
	switch {
	case strings.HasPrefix(code, "InvalidInput"), code == "ValidationException":
		return pipeline.Permanent(err)
	case throttling(code):
		return &pipeline.RetryAfterError{After: time.Second, Err: err}
	}
	return err
}

func throttling(code string) bool {
	return strings.Contains(code, "Throttl") || strings.HasPrefix(code, "LimitExceeded") || strings.HasPrefix(code, "TooManyRequests") || code == "RequestLimitExceeded"
}

// classify sorts a failed request: invalid input is permanent, throttling
// waits at least a second, the rest (internal errors, timeouts) retry.
func classify(err error) error {
	var ae smithy.APIError
	var re *awshttp.ResponseError
	switch {
	case errors.As(err, &ae) && (strings.HasPrefix(ae.ErrorCode(), "InvalidInput") || ae.ErrorCode() == "ValidationException"):
		return pipeline.Permanent(err)
	case errors.As(err, &ae) && throttling(ae.ErrorCode()),
		errors.As(err, &re) && re.HTTPStatusCode() == 429:
		return &pipeline.RetryAfterError{After: time.Second, Err: err}
	}
	return err
}

// split cuts findings into batches of at most 100 findings and maxBytes;
// tooBig names the findings over 240 KB, with their sizes.
func split(fds []types.AwsSecurityFinding, maxBytes int) (batches [][]types.AwsSecurityFinding, tooBig map[string]int) {
	var cur []types.AwsSecurityFinding
	size := 0
	const envelope = len(`{"Findings":[]}`)
	for _, f := range fds {
		n := wireSize(f)
		if n > maxFindingBytes {
			if tooBig == nil {
				tooBig = map[string]int{}
			}
			tooBig[aws.ToString(f.Id)] = n
			continue
		}
		if len(cur) == maxBatch || (len(cur) > 0 && envelope+size+n+len(cur) > maxBytes) {
			batches = append(batches, cur)
			cur, size = nil, 0
		}
		cur = append(cur, f)
		size += n
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches, tooBig
}

// wireSize is the size of f as the SDK sends it: JSON without the unset
// (null) members.
func wireSize(f types.AwsSecurityFinding) int {
	b, err := json.Marshal(f)
	if err != nil {
		return maxFindingBytes + 1
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return maxFindingBytes + 1
	}
	b, _ = json.Marshal(prune(v))
	return len(b)
}

func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
				continue
			}
			x[k] = prune(e)
			if m, ok := x[k].(map[string]any); ok && len(m) == 0 {
				delete(x, k)
			}
			if s, ok := x[k].(string); ok && s == "" {
				delete(x, k) // unset enums
			}
		}
	case []any:
		for i := range x {
			x[i] = prune(x[i])
		}
	}
	return v
}
