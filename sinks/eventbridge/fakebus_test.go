package eventbridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/ecscorr/ecscorr/pipeline"
)

const (
	testRegion = "eu-west-1"
	testKey    = "AKIDECSCORRTEST"
	testSecret = "ecscorr-test-secret"
)

// fakeBus answers PutEvents the way EventBridge does (AWS JSON 1.1) and
// checks what a real bus would: the target, the content type, a SigV4
// signature for service "events" (recomputed), at most 10 entries and
// 256 KB, Detail a JSON object.
type fakeBus struct {
	t   *testing.T
	bus string

	mu sync.Mutex
	// down answers every call with a failure of the whole call,
	// alternating 500 InternalException and 400 ThrottlingException.
	down bool
	// throttleFrom, when not 0, throttles every call from this one on
	// (counting from 1).
	throttleFrom int
	// refuse answers the entry of an incident id with this ErrorCode.
	refuse map[string]string
	// refuseOnce is refuse for one answer only.
	refuseOnce map[string]string
	// invalidCall answers the whole call with ValidationException when it
	// holds an entry of one of these incident ids.
	invalidCall map[string]bool

	calls    int      // PutEvents calls seen
	sizes    []int    // entries per call that got an answer with entries
	accepted []putted // entries accepted, in order
	problems []string // protocol violations
}

type putted struct {
	Incident  pipeline.Incident
	Detail    string
	Resources []string
	Time      time.Time
	Size      int
}

type wireEntry struct {
	Source       string
	DetailType   string
	Detail       string
	EventBusName string
	Resources    []string
	Time         *float64
}

func newFakeBus(t *testing.T, bus string) (*fakeBus, *httptest.Server) {
	t.Helper()
	f := &fakeBus{t: t, bus: bus, refuse: map[string]string{}, refuseOnce: map[string]string{}, invalidCall: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	// The real client, configured only through the environment.
	t.Setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", testKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", testRegion)
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return f, srv
}

func (f *fakeBus) problem(format string, args ...any) {
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
}

func awsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

// checkSigV4 recomputes the request's signature with the test credentials.
func (f *fakeBus) checkSigV4(r *http.Request, body []byte) {
	auth := r.Header.Get("Authorization")
	m := authRE.FindStringSubmatch(auth)
	if m == nil {
		f.problem("authorization header not SigV4: %q", auth)
		return
	}
	if m[1] != testKey || m[3] != testRegion || m[4] != "events" {
		f.problem("credential scope key=%s region=%s service=%s", m[1], m[3], m[4])
	}
	signed := strings.Split(m[5], ";")
	for _, h := range []string{"host", "x-amz-date", "x-amz-target", "content-type"} {
		if !strings.Contains(";"+m[5]+";", ";"+h+";") {
			f.problem("%s not signed (%s)", h, m[5])
		}
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || at.Format("20060102") != m[2] {
		f.problem("x-amz-date %q against scope date %s", r.Header.Get("X-Amz-Date"), m[2])
		return
	}
	// Sign a copy holding only the signed headers; the result must match.
	req, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	req.Host, req.ContentLength = r.Host, r.ContentLength
	for _, h := range signed {
		if h != "host" {
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: testKey, SecretAccessKey: testSecret},
		req, hex.EncodeToString(sum[:]), "events", testRegion, at)
	if err != nil {
		f.problem("re-signing: %v", err)
		return
	}
	if got := req.Header.Get("Authorization"); got != auth {
		f.problem("signature does not verify:\n got  %s\n want %s", auth, got)
	}
}

func (f *fakeBus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away mid-request (a run stopping)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		f.problem("%s %s", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		f.problem("content type %q", ct)
	}
	if tg := r.Header.Get("X-Amz-Target"); tg != "AWSEvents.PutEvents" {
		f.problem("target %q", tg)
		awsError(w, 400, "UnknownOperationException", tg)
		return
	}
	f.checkSigV4(r, body)
	if f.throttleFrom > 0 && f.calls >= f.throttleFrom {
		awsError(w, 400, "ThrottlingException", "Rate exceeded")
		return
	}
	if f.down {
		if f.calls%2 == 1 {
			awsError(w, 500, "InternalException", "Internal error")
		} else {
			awsError(w, 400, "ThrottlingException", "Rate exceeded")
		}
		return
	}
	var in struct{ Entries []wireEntry }
	if err := json.Unmarshal(body, &in); err != nil {
		f.problem("request body: %v", err)
		awsError(w, 400, "SerializationException", err.Error())
		return
	}
	if n := len(in.Entries); n < 1 || n > MaxEntries {
		f.problem("%d entries in one call", n)
		awsError(w, 400, "ValidationException", fmt.Sprintf("1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10 (%d)", n))
		return
	}
	total := 0
	incs := make([]pipeline.Incident, len(in.Entries))
	sizes := make([]int, len(in.Entries))
	for i, e := range in.Entries {
		sizes[i] = len(e.Source) + len(e.DetailType) + len(e.Detail)
		if e.Time != nil {
			sizes[i] += 14
		}
		for _, res := range e.Resources {
			sizes[i] += len(res)
		}
		total += sizes[i]
		if e.EventBusName != f.bus || e.Source != "ecscorr" || e.DetailType != DetailType {
			f.problem("entry %d: bus %q source %q detail type %q", i, e.EventBusName, e.Source, e.DetailType)
		}
		if !json.Valid([]byte(e.Detail)) || !strings.HasPrefix(e.Detail, "{") {
			f.problem("entry %d: detail is not a JSON object", i)
		} else if err := json.Unmarshal([]byte(e.Detail), &incs[i]); err != nil {
			f.problem("entry %d: detail is not an incident: %v", i, err)
		}
	}
	if total > MaxRequestBytes {
		f.problem("request of %d entry bytes", total)
		awsError(w, 400, "ValidationException", "Total size of the entries in the request is over the limit.")
		return
	}
	for _, inc := range incs {
		if f.invalidCall[inc.ID] {
			awsError(w, 400, "ValidationException", "1 validation error detected in "+inc.ID)
			return
		}
	}
	type result struct {
		EventId      string `json:",omitempty"`
		ErrorCode    string `json:",omitempty"`
		ErrorMessage string `json:",omitempty"`
	}
	out := struct {
		FailedEntryCount int
		Entries          []result
	}{}
	for i, e := range in.Entries {
		id := incs[i].ID
		code := f.refuse[id]
		if c, ok := f.refuseOnce[id]; ok {
			code = c
			delete(f.refuseOnce, id)
		}
		if code != "" {
			out.FailedEntryCount++
			out.Entries = append(out.Entries, result{ErrorCode: code, ErrorMessage: "refused by the test"})
			continue
		}
		p := putted{Incident: incs[i], Detail: e.Detail, Resources: e.Resources, Size: sizes[i]}
		if e.Time != nil {
			p.Time = time.Unix(0, int64(*e.Time*1e9)).UTC()
		}
		f.accepted = append(f.accepted, p)
		out.Entries = append(out.Entries, result{EventId: fmt.Sprintf("evt-%d", len(f.accepted))})
	}
	f.sizes = append(f.sizes, len(in.Entries))
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func (f *fakeBus) snapshot() (calls int, sizes []int, accepted []putted, problems []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, append([]int(nil), f.sizes...), append([]putted(nil), f.accepted...), append([]string(nil), f.problems...)
}

func (f *fakeBus) set(fn func(f *fakeBus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// The signature check itself catches a request signed with another secret.
func TestFakeBusRejectsBadSignature(t *testing.T) {
	f := &fakeBus{t: t}
	body := []byte(`{"Entries":[]}`)
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", nil)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AWSEvents.PutEvents")
	sum := sha256.Sum256(body)
	err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: testKey, SecretAccessKey: "wrong"},
		req, hex.EncodeToString(sum[:]), "events", testRegion, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req.Host = req.URL.Host
	f.checkSigV4(req, body)
	if len(f.problems) != 1 || !strings.HasPrefix(f.problems[0], "signature does not verify") {
		t.Fatalf("problems %q", f.problems)
	}
}
