package securityhub

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
)

const (
	selfAccount  = "123456789012"
	otherAccount = "210987654321"
	staticKey    = "AKIDSTATICTEST000001"
	staticSecret = "staticSECRETkeyDoNotLog0000000000000000"
	otherRole    = "arn:aws:iam::210987654321:role/ecscorr-import"
)

type fakeKey struct{ secret, token, account string }

type imported struct {
	ID, UpdatedAt, Account, Signer string
	Raw                            json.RawMessage
}

// fakeAWS speaks Security Hub's REST-JSON BatchImportFindings (POST
// /findings/import) and STS's query protocol (GetCallerIdentity,
// AssumeRole). Every request must carry a valid SigV4 signature for the
// right service from a known key; findings are checked against the ASFF
// required fields and limits and refused in FailedFindings as Security Hub
// does; an import whose UpdatedAt is not later than the stored one is
// ignored, as Security Hub ignores it.
type fakeAWS struct {
	t       *testing.T
	sh, sts *httptest.Server

	mu         sync.Mutex
	keys       map[string]fakeKey
	roles      map[string]string // role ARN → account
	assumed    int
	requests   int
	batches    []int
	bodies     []int // request sizes, of the batches
	imports    []imported
	stored     map[string]time.Time // account/Id → UpdatedAt
	ignored    int
	invalid    []string // ASFF violations, in order
	sigErrors  []string
	down       int               // answer Security Hub with this status (500: InternalException)
	throttle   int               // answer this many next imports with 429
	throttleAs string            // the error type of throttling (default ThrottlingException)
	failures   int               // requests answered with an outage (5xx, 429)
	fail       map[string]string // Id → ErrorCode, every time
	failOnce   map[string]string // Id → ErrorCode, once
}

func newFakeAWS(t *testing.T) *fakeAWS {
	f := &fakeAWS{t: t, keys: map[string]fakeKey{staticKey: {secret: staticSecret, account: selfAccount}},
		roles: map[string]string{otherRole: otherAccount}, stored: map[string]time.Time{}, fail: map[string]string{}, failOnce: map[string]string{}}
	f.sh = httptest.NewServer(http.HandlerFunc(f.securityHub))
	f.sts = httptest.NewServer(http.HandlerFunc(f.stsHandler))
	t.Cleanup(f.sh.Close)
	t.Cleanup(f.sts.Close)
	return f
}

// env points the SDK's default configuration at the fake with static
// credentials, and away from this machine's own AWS configuration.
func (f *fakeAWS) env(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_SECURITYHUB": f.sh.URL, "AWS_ENDPOINT_URL_STS": f.sts.URL,
		"AWS_ACCESS_KEY_ID": staticKey, "AWS_SECRET_ACCESS_KEY": staticSecret, "AWS_SESSION_TOKEN": "",
		"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "", "AWS_PROFILE": "", "AWS_ENDPOINT_URL": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
}

var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)/(\d{8})/([a-z0-9-]+)/([a-z]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

// verify checks r's SigV4 signature by signing it again with the key's
// secret; it returns the key's account.
func (f *fakeAWS) verify(r *http.Request, body []byte, service string) (string, string, error) {
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return "", "", fmt.Errorf("malformed Authorization %q", r.Header.Get("Authorization"))
	}
	akid, date, region, svc, signed, sig := m[1], m[2], m[3], m[4], m[5], m[6]
	if svc != service || region != "us-east-1" {
		return "", "", fmt.Errorf("signed for %s in %s, want %s in us-east-1", svc, region, service)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	at, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, date) {
		return "", "", fmt.Errorf("X-Amz-Date %q does not match the credential date %s", amzDate, date)
	}
	f.mu.Lock()
	key, ok := f.keys[akid]
	f.mu.Unlock()
	if !ok {
		return "", "", fmt.Errorf("unknown access key")
	}
	if key.token != "" && r.Header.Get("X-Amz-Security-Token") != key.token {
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
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: key.secret, SessionToken: key.token}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), service, region, at); err != nil {
		return "", "", err
	}
	if want := authRE.FindStringSubmatch(again.Header.Get("Authorization")); want == nil || want[6] != sig {
		return "", "", fmt.Errorf("signature does not match")
	}
	return key.account, akid, nil
}

func (f *fakeAWS) stsHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	acct, _, err := f.verify(r, body, "sts")
	if err != nil {
		f.mu.Lock()
		f.sigErrors = append(f.sigErrors, "sts: "+err.Error())
		f.mu.Unlock()
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
		f.mu.Lock()
		target, ok := f.roles[q.Get("RoleArn")]
		f.assumed++
		n := f.assumed
		kid := fmt.Sprintf("ASIAFAKE%012d", n)
		if ok {
			f.keys[kid] = fakeKey{secret: fmt.Sprintf("assumedSECRET%d", n), token: fmt.Sprintf("token%d", n), account: target}
		}
		f.mu.Unlock()
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

func (f *fakeAWS) securityHub(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/findings/import" {
		restError(w, 404, "ResourceNotFoundException", "no such operation")
		return
	}
	acct, akid, err := f.verify(r, body, "securityhub")
	if err != nil {
		f.mu.Lock()
		f.sigErrors = append(f.sigErrors, "securityhub: "+err.Error())
		f.mu.Unlock()
		restError(w, 403, "InvalidSignatureException", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.throttle > 0:
		f.failures++
		f.throttle--
		restError(w, 429, cmp.Or(f.throttleAs, "ThrottlingException"), "Rate exceeded")
		return
	case f.down != 0:
		f.failures++
		restError(w, f.down, "InternalException", "Internal service error")
		return
	case len(body) > 6<<20:
		f.invalid = append(f.invalid, fmt.Sprintf("request of %d bytes", len(body)))
		restError(w, 413, "InvalidInputException", "request too large")
		return
	}
	var req struct{ Findings []json.RawMessage }
	if err := json.Unmarshal(body, &req); err != nil || len(req.Findings) == 0 {
		restError(w, 400, "InvalidInputException", "Findings is required")
		return
	}
	if len(req.Findings) > 100 {
		f.invalid = append(f.invalid, fmt.Sprintf("%d findings in one request", len(req.Findings)))
		restError(w, 400, "InvalidInputException", "Findings: at most 100")
		return
	}
	f.batches = append(f.batches, len(req.Findings))
	f.bodies = append(f.bodies, len(body))
	var failed []failedFinding
	for _, raw := range req.Findings {
		var fd map[string]any
		json.Unmarshal(raw, &fd)
		id, _ := fd["Id"].(string)
		if v := validate(fd, len(raw), acct); len(v) > 0 {
			f.invalid = append(f.invalid, id+": "+strings.Join(v, "; "))
			failed = append(failed, failedFinding{id, "InvalidInput", "Finding does not adhere to Amazon Finding Format. " + strings.Join(v, ", ")})
			continue
		}
		if code := f.fail[id]; code != "" {
			failed = append(failed, failedFinding{id, code, "refused by the test"})
			continue
		}
		if code := f.failOnce[id]; code != "" {
			delete(f.failOnce, id)
			failed = append(failed, failedFinding{id, code, "refused once by the test"})
			continue
		}
		upd, _ := time.Parse(time.RFC3339Nano, fd["UpdatedAt"].(string))
		if last, ok := f.stored[acct+"/"+id]; ok && !upd.After(last) {
			f.ignored++
			continue
		}
		f.stored[acct+"/"+id] = upd
		f.imports = append(f.imports, imported{ID: id, UpdatedAt: fd["UpdatedAt"].(string), Account: acct, Signer: akid, Raw: raw})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"FailedCount": len(failed), "SuccessCount": len(req.Findings) - len(failed), "FailedFindings": failed})
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

func (f *fakeAWS) state() (imports []imported, requests int, invalid, sigErrors []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]imported(nil), f.imports...), f.requests, append([]string(nil), f.invalid...), append([]string(nil), f.sigErrors...)
}

func (f *fakeAWS) set(fn func(f *fakeAWS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// failed reports whether at least n requests met the outage.
func (f *fakeAWS) failed(n int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failures >= n
}
