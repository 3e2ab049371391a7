// Package securityhubtest is a fake AWS for tests of the Security Hub
// sink and of whatever runs it (the ecscorr binary): two httptest servers
// speaking Security Hub's REST-JSON BatchImportFindings (POST
// /findings/import) and STS's query protocol (GetCallerIdentity,
// AssumeRole), for the real aws-sdk-go-v2 clients.
//
// Every request must carry a valid SigV4 signature for the right service
// from a known key; findings are checked against the ASFF required fields
// and limits and refused in FailedFindings as Security Hub does; an import
// whose UpdatedAt is not later than the stored one is ignored, as Security
// Hub ignores it. Every import taken is recorded with its finding Id (the
// incident id). A Server is safe for concurrent use.
package securityhubtest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/ecscorr/ecscorr/sinks/internal/sinktest"
)

// The calling account and its static key; another account whose
// Security Hub is reached through OtherRole.
const (
	Account         = "123456789012"
	OtherAccount    = "210987654321"
	AccessKeyID     = "AKIDSTATICTEST000001"
	SecretAccessKey = "staticSECRETkeyDoNotLog0000000000000000"
	OtherRole       = "arn:aws:iam::210987654321:role/ecscorr-import"
	Region          = "us-east-1"
)

type key struct{ secret, token, account string }

// Import is one finding Security Hub took.
type Import struct {
	ID        string // the finding Id (the incident id)
	UpdatedAt string
	Account   string // the account it was imported into
	Signer    string // the access key id that signed the request
	Raw       json.RawMessage
}

// State is what the server has seen so far.
type State struct {
	Imports         []Import // taken, in order
	Requests        int      // BatchImportFindings requests received (before the delay of SetDelay), whatever their answer
	Batches         []int    // findings per request that reached validation
	Bodies          []int    // sizes of those requests
	Invalid         []string // ASFF violations, in order
	SignatureErrors []string
	Ignored         int // imports not later than the stored finding
	Stored          int // distinct findings (account and Id)
	Assumed         int // AssumeRole calls
	Failures        int // requests answered with an outage (5xx, 429)
}

// Server is the fake.
type Server struct {
	sh, sts *httptest.Server
	dir     string

	mu          sync.Mutex
	before      time.Duration // wait before an import is taken
	after       time.Duration // wait after it was taken, before the answer
	stallTake   int           // hold this import request (1-based) untaken until its client is gone
	stallAnswer int           // hold the answer to this import request until its client is gone
	keys        map[string]key
	roles       map[string]string // role ARN → account
	assumed     int
	requests    int
	batches     []int
	bodies      []int
	imports     []Import
	stored      map[string]time.Time // account/Id → UpdatedAt
	ignored     int
	invalid     []string
	sigErrors   []string
	down        int               // answer Security Hub with this status (500: InternalException)
	throttle    int               // answer this many next imports with 429
	throttleAs  string            // the error type of throttling (default ThrottlingException)
	failures    int               // requests answered with an outage (5xx, 429)
	fail        map[string]string // Id → ErrorCode, every time
	failOnce    map[string]string // Id → ErrorCode, once
}

// New starts the fake, closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{dir: t.TempDir(), keys: map[string]key{AccessKeyID: {secret: SecretAccessKey, account: Account}},
		roles: map[string]string{OtherRole: OtherAccount}, stored: map[string]time.Time{}, fail: map[string]string{}, failOnce: map[string]string{}}
	s.sh = httptest.NewServer(http.HandlerFunc(s.securityHub))
	s.sts = httptest.NewServer(http.HandlerFunc(s.stsHandler))
	t.Cleanup(s.sh.Close)
	t.Cleanup(s.sts.Close)
	return s
}

// Env is the environment that points the SDK's default configuration at
// the fake with the static key, and away from this machine's own AWS
// configuration: for a child process, or Setenv.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_SECURITYHUB": s.sh.URL, "AWS_ENDPOINT_URL_STS": s.sts.URL,
		"AWS_ACCESS_KEY_ID": AccessKeyID, "AWS_SECRET_ACCESS_KEY": SecretAccessKey, "AWS_SESSION_TOKEN": "",
		"AWS_REGION": Region, "AWS_DEFAULT_REGION": "", "AWS_PROFILE": "", "AWS_ENDPOINT_URL": "",
		"AWS_CONFIG_FILE": filepath.Join(s.dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(s.dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true",
	}
}

// Setenv sets Env in this process for the rest of the test.
func (s *Server) Setenv(t testing.TB) {
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
}

// State returns a copy of what the server has seen.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return State{Imports: append([]Import(nil), s.imports...), Requests: s.requests, Batches: append([]int(nil), s.batches...),
		Bodies: append([]int(nil), s.bodies...), Invalid: append([]string(nil), s.invalid...), SignatureErrors: append([]string(nil), s.sigErrors...),
		Ignored: s.ignored, Stored: len(s.stored), Assumed: s.assumed, Failures: s.failures}
}

// SetDelay makes every BatchImportFindings request wait before until its
// findings are taken (recorded, if accepted), and its answer wait after
// once they were; a wait ends early when the client goes away, and a
// request whose client went away before it was taken is dropped. A client
// stopped in the first wait has imported nothing; stopped in the second,
// it has imported but does not know it.
func (s *Server) SetDelay(before, after time.Duration) {
	s.with(func() { s.before, s.after = before, after })
}

// Stall holds the take-th BatchImportFindings request received (counting
// from 1, as State().Requests does) before its findings are taken, and the
// answer to the answer-th request after they were, each until its client
// goes away; 0 holds none. A test kills the client in the hold: at a known
// point between a send and its acknowledgement.
func (s *Server) Stall(take, answer int) {
	s.with(func() { s.stallTake, s.stallAnswer = take, answer })
}

// SetDown answers every import with status (500: InternalException; any
// other code as is) until called with 0.
func (s *Server) SetDown(status int) { s.with(func() { s.down = status }) }

// Throttle answers the next n imports with 429 and the error type typ
// ("": ThrottlingException).
func (s *Server) Throttle(n int, typ string) { s.with(func() { s.throttle, s.throttleAs = n, typ }) }

// AddRole lets AssumeRole of roleARN give credentials importing into
// account (OtherRole into OtherAccount is there from the start).
func (s *Server) AddRole(roleARN, account string) { s.with(func() { s.roles[roleARN] = account }) }

// Fail refuses the finding id in FailedFindings with code every time; ""
// stops.
func (s *Server) Fail(id, code string) { s.with(func() { set(s.fail, id, code) }) }

// FailOnce refuses the finding id in FailedFindings with code, once.
func (s *Server) FailOnce(id, code string) { s.with(func() { set(s.failOnce, id, code) }) }

func set(m map[string]string, k, v string) {
	if v == "" {
		delete(m, k)
	} else {
		m[k] = v
	}
}

func (s *Server) with(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)/(\d{8})/([a-z0-9-]+)/([a-z]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

// verify checks r's SigV4 signature by signing it again with the key's
// secret; it returns the key's account.
func (s *Server) verify(r *http.Request, body []byte, service string) (string, string, error) {
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return "", "", fmt.Errorf("malformed Authorization %q", r.Header.Get("Authorization"))
	}
	akid, date, region, svc, signed, sig := m[1], m[2], m[3], m[4], m[5], m[6]
	if svc != service || region != Region {
		return "", "", fmt.Errorf("signed for %s in %s, want %s in %s", svc, region, service, Region)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	at, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, date) {
		return "", "", fmt.Errorf("X-Amz-Date %q does not match the credential date %s", amzDate, date)
	}
	s.mu.Lock()
	k, ok := s.keys[akid]
	s.mu.Unlock()
	if !ok {
		return "", "", fmt.Errorf("unknown access key")
	}
	if k.token != "" && r.Header.Get("X-Amz-Security-Token") != k.token {
		return "", "", fmt.Errorf("session token missing")
	}
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	again.Header = http.Header{}
	for _, h := range strings.Split(signed, ";") {
		switch h {
		case "host":
		case "content-length":
			again.ContentLength = r.ContentLength
		default:
			again.Header[textproto.CanonicalMIMEHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: k.secret, SessionToken: k.token}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), service, region, at); err != nil {
		return "", "", err
	}
	if want := authRE.FindStringSubmatch(again.Header.Get("Authorization")); want == nil || want[6] != sig {
		return "", "", fmt.Errorf("signature does not match")
	}
	return k.account, akid, nil
}

func (s *Server) stsHandler(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away while sending: there is nothing to check
	}
	acct, _, err := s.verify(r, body, "sts")
	if err != nil {
		s.mu.Lock()
		s.sigErrors = append(s.sigErrors, "sts: "+err.Error())
		s.mu.Unlock()
		w.WriteHeader(403)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>%s</Message></Error></ErrorResponse>`, err)
		return
	}
	q, _ := url.ParseQuery(string(body))
	w.Header().Set("Content-Type", "text/xml")
	switch q.Get("Action") {
	case "GetCallerIdentity":
		fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::%s:user/ecscorr</Arn><UserId>AIDATEST</UserId><Account>%s</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>`, acct, acct)
	case "AssumeRole":
		s.mu.Lock()
		target, ok := s.roles[q.Get("RoleArn")]
		s.assumed++
		n := s.assumed
		kid := fmt.Sprintf("ASIAFAKE%012d", n)
		if ok {
			s.keys[kid] = key{secret: fmt.Sprintf("assumedSECRET%d", n), token: fmt.Sprintf("token%d", n), account: target}
		}
		s.mu.Unlock()
		if !ok || q.Get("RoleSessionName") == "" {
			w.WriteHeader(403)
			io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to assume the role</Message></Error></ErrorResponse>`)
			return
		}
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>assumedSECRET%d</SecretAccessKey><SessionToken>token%d</SessionToken><Expiration>%s</Expiration></Credentials><AssumedRoleUser><Arn>%s/ecscorr</Arn><AssumedRoleId>AROA:ecscorr</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>2</RequestId></ResponseMetadata></AssumeRoleResponse>`,
			kid, n, n, time.Now().Add(time.Hour).UTC().Format(time.RFC3339), q.Get("RoleArn"))
	default:
		w.WriteHeader(400)
		io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>unknown action</Message></Error></ErrorResponse>`)
	}
}

func restError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", typ)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"Code": typ, "Message": msg})
}

type failedFinding struct {
	Id, ErrorCode, ErrorMessage string
}

func (s *Server) securityHub(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away while sending: there is nothing to check
	}
	s.mu.Lock()
	s.requests++
	n := s.requests
	s.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/findings/import" {
		restError(w, 404, "ResourceNotFoundException", "no such operation")
		return
	}
	acct, akid, err := s.verify(r, body, "securityhub")
	if err != nil {
		s.mu.Lock()
		s.sigErrors = append(s.sigErrors, "securityhub: "+err.Error())
		s.mu.Unlock()
		restError(w, 403, "InvalidSignatureException", err.Error())
		return
	}
	s.mu.Lock()
	before, after := s.before, s.after
	if n == s.stallTake {
		before = sinktest.Forever
	}
	if n == s.stallAnswer {
		after = sinktest.Forever
	}
	s.mu.Unlock()
	if !sinktest.Pause(r.Context(), before) {
		return // the client is gone
	}
	answer := s.importFindings(body, acct, akid)
	if !sinktest.Pause(r.Context(), after) {
		return
	}
	answer(w)
}

// importFindings takes a request's findings under the lock and returns
// the answer to write.
func (s *Server) importFindings(body []byte, acct, akid string) func(http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refuse := func(status int, typ, msg string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) { restError(w, status, typ, msg) }
	}
	switch {
	case s.throttle > 0:
		s.failures++
		s.throttle--
		return refuse(429, cmp.Or(s.throttleAs, "ThrottlingException"), "Rate exceeded")
	case s.down != 0:
		s.failures++
		return refuse(s.down, "InternalException", "Internal service error")
	case len(body) > 6<<20:
		s.invalid = append(s.invalid, fmt.Sprintf("request of %d bytes", len(body)))
		return refuse(413, "InvalidInputException", "request too large")
	}
	var req struct{ Findings []json.RawMessage }
	if err := json.Unmarshal(body, &req); err != nil || len(req.Findings) == 0 {
		return refuse(400, "InvalidInputException", "Findings is required")
	}
	if len(req.Findings) > 100 {
		s.invalid = append(s.invalid, fmt.Sprintf("%d findings in one request", len(req.Findings)))
		return refuse(400, "InvalidInputException", "Findings: at most 100")
	}
	s.batches = append(s.batches, len(req.Findings))
	s.bodies = append(s.bodies, len(body))
	var failed []failedFinding
	for _, raw := range req.Findings {
		var fd map[string]any
		json.Unmarshal(raw, &fd)
		id, _ := fd["Id"].(string)
		if v := validate(fd, len(raw), acct); len(v) > 0 {
			s.invalid = append(s.invalid, id+": "+strings.Join(v, "; "))
			failed = append(failed, failedFinding{id, "InvalidInput", "Finding does not adhere to Amazon Finding Format. " + strings.Join(v, ", ")})
			continue
		}
		if code := s.fail[id]; code != "" {
			failed = append(failed, failedFinding{id, code, "refused by the test"})
			continue
		}
		if code := s.failOnce[id]; code != "" {
			delete(s.failOnce, id)
			failed = append(failed, failedFinding{id, code, "refused once by the test"})
			continue
		}
		upd, _ := time.Parse(time.RFC3339Nano, fd["UpdatedAt"].(string))
		if last, ok := s.stored[acct+"/"+id]; ok && !upd.After(last) {
			s.ignored++
			continue
		}
		s.stored[acct+"/"+id] = upd
		s.imports = append(s.imports, Import{ID: id, UpdatedAt: fd["UpdatedAt"].(string), Account: acct, Signer: akid, Raw: raw})
	}
	out, _ := json.Marshal(map[string]any{"FailedCount": len(failed), "SuccessCount": len(req.Findings) - len(failed), "FailedFindings": failed})
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(out, '\n'))
	}
}

var (
	productArnRE = regexp.MustCompile(`^arn:aws:securityhub:us-east-1:(\d{12}):product/(\d{12})/default$`)
	namespaces   = []string{"Software and Configuration Checks", "TTPs", "Effects", "Unusual Behaviors", "Sensitive Data Identifications"}
	labels       = map[string]bool{"INFORMATIONAL": true, "LOW": true, "MEDIUM": true, "HIGH": true, "CRITICAL": true}
	ecsTaskKeys  = map[string]bool{"ClusterArn": true, "TaskDefinitionArn": true, "Version": true, "CreatedAt": true, "StartedAt": true, "StartedBy": true, "Group": true, "Volumes": true, "Containers": true}
)

// validate checks one finding as Security Hub does, for the caller's
// account; size is its encoded size.
func validate(fd map[string]any, size int, caller string) []string {
	var v []string
	bad := func(f string, a ...any) { v = append(v, fmt.Sprintf(f, a...)) }
	str := func(name string, lo, hi int) string {
		s, ok := fd[name].(string)
		if n := utf8.RuneCountInString(s); !ok || n < lo || n > hi {
			bad("data.%s should be a string of %d to %d characters (%d)", name, lo, hi, n)
		}
		return s
	}
	if size > 240*1024 {
		bad("finding of %d bytes", size)
	}
	if str("SchemaVersion", 1, 64) != "2018-10-08" {
		bad("SchemaVersion")
	}
	str("Id", 1, 512)
	str("GeneratorId", 1, 512)
	str("Title", 1, 256)
	str("Description", 1, 1024)
	if acct := str("AwsAccountId", 12, 12); acct != caller {
		bad("AwsAccountId %s is not the calling account %s", acct, caller)
	}
	if m := productArnRE.FindStringSubmatch(str("ProductArn", 12, 2048)); m == nil || m[1] != caller || m[2] != caller {
		bad("ProductArn is not the default product of %s", caller)
	}
	for _, k := range []string{"CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt"} {
		s, ok := fd[k].(string)
		if _, err := time.Parse(time.RFC3339Nano, s); (ok || k == "CreatedAt" || k == "UpdatedAt") && err != nil {
			bad("data.%s is not a timestamp", k)
		}
	}
	res, _ := fd["Resources"].([]any)
	if len(res) < 1 || len(res) > 32 {
		bad("data.Resources should have 1 to 32 items (%d)", len(res))
	}
	for _, r := range res {
		rm, _ := r.(map[string]any)
		typ, _ := rm["Type"].(string)
		id, _ := rm["Id"].(string)
		if typ == "" || id == "" || len(typ) > 256 {
			bad("Resource without Type or Id")
		}
		if d, ok := rm["Details"].(map[string]any); ok {
			for k, dv := range d {
				if k != typ {
					bad("Details.%s on a %s", k, typ)
				}
				if k == "AwsEcsTask" {
					for dk := range dv.(map[string]any) {
						if !ecsTaskKeys[dk] {
							bad("Details.AwsEcsTask.%s is not in the model", dk)
						}
					}
				}
			}
		}
	}
	fpf, _ := fd["FindingProviderFields"].(map[string]any)
	sev, _ := fpf["Severity"].(map[string]any)
	if l, _ := sev["Label"].(string); !labels[l] {
		bad("FindingProviderFields.Severity.Label %q", l)
	}
	types, _ := fpf["Types"].([]any)
	if len(types) < 1 || len(types) > 50 {
		bad("FindingProviderFields.Types should have 1 to 50 items (%d)", len(types))
	}
	for _, t := range types {
		s, _ := t.(string)
		ns, _, _ := strings.Cut(s, "/")
		ok := false
		for _, n := range namespaces {
			ok = ok || ns == n
		}
		if !ok || strings.Count(s, "/") > 2 {
			bad("Type %q is not namespace/category/classifier", s)
		}
	}
	if c, ok := fpf["Confidence"].(float64); !ok || c < 0 || c > 100 {
		bad("Confidence")
	}
	rel, _ := fpf["RelatedFindings"].([]any)
	if len(rel) > 10 {
		bad("RelatedFindings has %d items", len(rel))
	}
	for _, r := range rel {
		rm, _ := r.(map[string]any)
		if p, _ := rm["ProductArn"].(string); p == "" || rm["Id"] == nil {
			bad("RelatedFinding without ProductArn or Id")
		}
	}
	if rem, ok := fd["Remediation"].(map[string]any); ok {
		rec, _ := rem["Recommendation"].(map[string]any)
		if t, _ := rec["Text"].(string); n(t) < 1 || n(t) > 512 {
			bad("data.Remediation.Recommendation.Text should NOT be longer than 512 characters (%d)", n(t))
		}
	}
	pf, _ := fd["ProductFields"].(map[string]any)
	if len(pf) > 50 {
		bad("ProductFields has %d pairs", len(pf))
	}
	for k, val := range pf {
		s, _ := val.(string)
		if n(k) > 128 || n(s) > 2048 {
			bad("ProductFields %s too long", k)
		}
	}
	if rs, ok := fd["RecordState"].(string); ok && rs != "ACTIVE" && rs != "ARCHIVED" {
		bad("RecordState %q", rs)
	}
	return v
}

func n(s string) int { return utf8.RuneCountInString(s) }
