// Package cwltest is an in-process Amazon CloudWatch Logs for tests: an
// httptest server speaking the service's AWS JSON 1.1 protocol as
// aws-sdk-go-v2 service/cloudwatchlogs (v1.92.2) uses it, for the
// operations a log reader and its tests need: CreateLogGroup,
// CreateLogStream, PutLogEvents, DescribeLogGroups, DescribeLogStreams and
// FilterLogEvents.
//
// Semantics follow the CloudWatch Logs API reference: every request must
// carry a valid SigV4 signature for the server's credentials and region;
// FilterLogEvents returns the events of a log group with
// startTime <= timestamp <= endTime, sorted by timestamp, then ingestion
// time, then PutLogEvents request, in pages of at most limit (≤ 10,000)
// events and about 1 MB, continued by an opaque nextToken (a page may be
// empty and still carry one, as the service's may); an unknown log group
// is a ResourceNotFoundException; logStreamNames and logStreamNamePrefix
// together, or a limit out of range, an InvalidParameterException.
// Throttling and server errors can be injected per operation.
package cwltest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Credentials and region the server accepts unless Options say otherwise.
const (
	AccessKeyID     = "AKIDCWLTEST"
	SecretAccessKey = "cwltest-secret"
	Region          = "eu-west-1"
	Account         = "123456789012"
)

const (
	targetPrefix = "Logs_20140328."
	contentType  = "application/x-amz-json-1.1"
	// MaxPageEvents and MaxPageBytes are the service's page limits.
	MaxPageEvents = 10000
	MaxPageBytes  = 1 << 20
	// eventOverhead approximates the JSON around one event in a page.
	eventOverhead = 110
)

// Options configure a Server; zero values take the defaults named.
type Options struct {
	AccessKeyID, SecretAccessKey string // AccessKeyID, SecretAccessKey
	Region, Account              string // Region, Account
	// PageEvents caps the events of one FilterLogEvents page below the
	// request's limit (default MaxPageEvents); PageBytes caps its size
	// (default MaxPageBytes).
	PageEvents, PageBytes int
	// EmptyFirstPage makes the first page of every FilterLogEvents query
	// empty but with a nextToken, as the service may answer.
	EmptyFirstPage bool
	// Now is the server's clock (default time.Now), for PutLogEvents'
	// too-old and too-new checks and creation times.
	Now func() time.Time
}

// Event is a log event to put.
type Event struct {
	Timestamp int64 // ms since the epoch
	Message   string
}

// Fault is an error answer injected for the next Count requests of an
// operation.
type Fault struct {
	Status  int
	Code    string
	Message string
	Count   int
}

// Throttle is n ThrottlingExceptions, as the service answers over its
// transactions-per-second quota.
func Throttle(n int) Fault {
	return Fault{Status: 400, Code: "ThrottlingException", Message: "Rate exceeded", Count: n}
}

// Unavailable is n HTTP 500 ServiceUnavailableExceptions.
func Unavailable(n int) Fault {
	return Fault{Status: 500, Code: "ServiceUnavailableException", Message: "The server failed to fulfill the request. Please try again.", Count: n}
}

// Server is a CloudWatch Logs test server.
type Server struct {
	*httptest.Server
	o Options

	mu     sync.Mutex
	groups map[string]*group
	seq    int64 // events put so far: ids and the ingestion order
	faults map[string][]Fault
	calls  map[string]int
	hook   func(op string, n int)
}

type group struct {
	name    string
	created int64
	streams map[string]*stream
	all     []*event // every event of the group in FilterLogEvents order
}

type stream struct {
	name        string
	created     int64
	first, last int64 // event timestamps
	lastIngest  int64
	bytes       int64
}

type event struct {
	ID        string `json:"eventId"`
	Ingestion int64  `json:"ingestionTime"`
	Stream    string `json:"logStreamName"`
	Message   string `json:"message"`
	Timestamp int64  `json:"timestamp"`
	seq       int64
}

// key orders events as FilterLogEvents returns them.
type key struct{ ts, ingest, seq int64 }

func (e *event) key() key { return key{e.Timestamp, e.Ingestion, e.seq} }

func (a key) less(b key) bool {
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.ingest != b.ingest {
		return a.ingest < b.ingest
	}
	return a.seq < b.seq
}

// New starts a server; Close it when done.
func New(o Options) *Server {
	if o.AccessKeyID == "" {
		o.AccessKeyID, o.SecretAccessKey = AccessKeyID, SecretAccessKey
	}
	if o.Region == "" {
		o.Region = Region
	}
	if o.Account == "" {
		o.Account = Account
	}
	if o.PageEvents <= 0 || o.PageEvents > MaxPageEvents {
		o.PageEvents = MaxPageEvents
	}
	if o.PageBytes <= 0 || o.PageBytes > MaxPageBytes {
		o.PageBytes = MaxPageBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, groups: map[string]*group{}, faults: map[string][]Fault{}, calls: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// CreateGroup creates a log group (no error if it exists).
func (s *Server) CreateGroup(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.group(name, true)
}

// DeleteGroup deletes a log group and its events.
func (s *Server) DeleteGroup(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, name)
}

// Put adds events to a stream of a group, creating both as needed, as one
// PutLogEvents request would (without its ordering and age checks), and
// returns their event ids.
func (s *Server) Put(groupName, streamName string, evs ...Event) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.group(groupName, true)
	st := g.stream(streamName, s.o.Now().UnixMilli(), true)
	return s.put(g, st, evs)
}

// Inject queues a fault for the next f.Count requests of op (e.g.
// "FilterLogEvents").
func (s *Server) Inject(op string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = append(s.faults[op], f)
}

// Calls is how many signed requests of op the server received (faults
// included).
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// OnRequest sets f (nil: none), called with the operation and its running
// count for every signed request, before it is answered.
func (s *Server) OnRequest(f func(op string, n int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = f
}

// Events returns the ids of a group's events in FilterLogEvents order.
func (s *Server) Events(groupName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[groupName]
	if g == nil {
		return nil
	}
	ids := make([]string, len(g.all))
	for i, e := range g.all {
		ids[i] = e.ID
	}
	return ids
}

func (s *Server) group(name string, create bool) *group {
	g := s.groups[name]
	if g == nil && create {
		g = &group{name: name, created: s.o.Now().UnixMilli(), streams: map[string]*stream{}}
		s.groups[name] = g
	}
	return g
}

func (g *group) stream(name string, now int64, create bool) *stream {
	st := g.streams[name]
	if st == nil && create {
		st = &stream{name: name, created: now}
		g.streams[name] = st
	}
	return st
}

// put stores evs as one PutLogEvents request: one ingestion time, ids in
// order.
func (s *Server) put(g *group, st *stream, evs []Event) []string {
	ingest := s.o.Now().UnixMilli()
	ids := make([]string, len(evs))
	for i, in := range evs {
		s.seq++
		e := &event{
			// Real ids are 56 decimal digits.
			ID:        fmt.Sprintf("%020d%036d", in.Timestamp, s.seq),
			Ingestion: ingest,
			Stream:    st.name,
			Message:   in.Message,
			Timestamp: in.Timestamp,
			seq:       s.seq,
		}
		ids[i] = e.ID
		k := e.key()
		j := sort.Search(len(g.all), func(j int) bool { return k.less(g.all[j].key()) })
		g.all = append(g.all, nil)
		copy(g.all[j+1:], g.all[j:])
		g.all[j] = e
		if st.first == 0 || in.Timestamp < st.first {
			st.first = in.Timestamp
		}
		st.last = max(st.last, in.Timestamp)
		st.lastIngest = ingest
		st.bytes += int64(len(in.Message))
	}
	return ids
}

// apiError is an error answer in the JSON 1.1 shape.
type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func invalid(format string, a ...any) *apiError {
	return &apiError{400, "InvalidParameterException", fmt.Sprintf(format, a...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, &apiError{400, "SerializationException", err.Error()})
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeError(w, &apiError{404, "UnknownOperationException", "unsupported method or path"})
		return
	}
	if err := s.verify(r, body); err != nil {
		writeError(w, err)
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, targetPrefix)
	if !ok || r.Header.Get("Content-Type") != contentType {
		writeError(w, &apiError{400, "UnknownOperationException", "unknown target " + target})
		return
	}
	s.mu.Lock()
	s.calls[op]++
	n := s.calls[op]
	hook := s.hook
	var fault *Fault
	if q := s.faults[op]; len(q) > 0 {
		f := q[0]
		fault = &f
		if q[0].Count--; q[0].Count <= 0 {
			s.faults[op] = q[1:]
		}
	}
	s.mu.Unlock()
	if hook != nil {
		hook(op, n)
	}
	if fault != nil {
		writeError(w, &apiError{fault.Status, fault.Code, fault.Message})
		return
	}
	var out any
	switch op {
	case "CreateLogGroup":
		out, err = s.createLogGroup(body)
	case "CreateLogStream":
		out, err = s.createLogStream(body)
	case "PutLogEvents":
		out, err = s.putLogEvents(body)
	case "DescribeLogGroups":
		out, err = s.describeLogGroups(body)
	case "DescribeLogStreams":
		out, err = s.describeLogStreams(body)
	case "FilterLogEvents":
		out, err = s.filterLogEvents(body)
	default:
		err = &apiError{400, "UnknownOperationException", "cwltest does not implement " + op}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		writeError(w, &apiError{500, "InternalFailure", err.Error()})
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-Requestid", fmt.Sprintf("cwltest-%d", n))
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{500, "InternalFailure", err.Error()}
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(ae.status)
	b, _ := json.Marshal(map[string]string{"__type": ae.code, "message": ae.message})
	_, _ = w.Write(b)
}

// verify checks the request's SigV4 signature by signing a copy holding
// only the headers it says it signed.
func (s *Server) verify(r *http.Request, body []byte) error {
	deny := func(msg string) error { return &apiError{400, "UnrecognizedClientException", msg} }
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return &apiError{400, "MissingAuthenticationTokenException", "Request is missing Authentication Token"}
	}
	parts := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		parts[k] = v
	}
	cred := strings.Split(parts["Credential"], "/")
	if len(cred) != 5 || cred[0] != s.o.AccessKeyID || cred[2] != s.o.Region || cred[3] != "logs" || cred[4] != "aws4_request" {
		return deny("The security token included in the request is invalid.")
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, cred[1]) {
		return &apiError{400, "IncompleteSignatureException", "bad X-Amz-Date"}
	}
	if d := s.o.Now().Sub(t); d > 15*time.Minute || d < -15*time.Minute {
		return &apiError{400, "InvalidSignatureException", "Signature expired"}
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payload {
		return &apiError{400, "InvalidSignatureException", "payload hash mismatch"}
	}
	c, err := http.NewRequestWithContext(context.Background(), r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	c.Host = r.Host
	c.ContentLength = 0
	for _, h := range strings.Split(parts["SignedHeaders"], ";") {
		switch h {
		case "host":
			continue
		case "content-length":
			// The signer signs the length it is given, not the header.
			c.ContentLength = int64(len(body))
			continue
		}
		c.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s.o.AccessKeyID, SecretAccessKey: s.o.SecretAccessKey},
		c, payload, "logs", s.o.Region, t)
	if err != nil {
		return err
	}
	if c.Header.Get("Authorization") != auth {
		return &apiError{403, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided."}
	}
	return nil
}

func decodeInput(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return &apiError{400, "SerializationException", err.Error()}
	}
	return nil
}

func (s *Server) arn(groupName string) string {
	return "arn:aws:logs:" + s.o.Region + ":" + s.o.Account + ":log-group:" + groupName
}

// groupOf resolves logGroupName or logGroupIdentifier (a name or ARN).
func (s *Server) groupOf(name, ident *string) (*group, error) {
	if (name == nil) == (ident == nil) {
		return nil, invalid("Exactly one of logGroupName and logGroupIdentifier must be specified.")
	}
	n := aws.ToString(name)
	if ident != nil {
		n = strings.TrimSuffix(strings.TrimPrefix(*ident, s.arn("")), ":*")
	}
	g := s.groups[n]
	if g == nil {
		return nil, &apiError{400, "ResourceNotFoundException", "The specified log group does not exist."}
	}
	return g, nil
}

func (s *Server) createLogGroup(body []byte) (any, error) {
	var in struct {
		LogGroupName  string            `json:"logGroupName"`
		KmsKeyID      string            `json:"kmsKeyId"`
		LogGroupClass string            `json:"logGroupClass"`
		Tags          map[string]string `json:"tags"`
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.LogGroupName == "" {
		return nil, invalid("logGroupName is required")
	}
	if s.groups[in.LogGroupName] != nil {
		return nil, &apiError{400, "ResourceAlreadyExistsException", "The specified log group already exists"}
	}
	s.group(in.LogGroupName, true)
	return struct{}{}, nil
}

func (s *Server) createLogStream(body []byte) (any, error) {
	var in struct {
		LogGroupName  string `json:"logGroupName"`
		LogStreamName string `json:"logStreamName"`
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupOf(&in.LogGroupName, nil)
	if err != nil {
		return nil, err
	}
	if g.streams[in.LogStreamName] != nil {
		return nil, &apiError{400, "ResourceAlreadyExistsException", "The specified log stream already exists"}
	}
	g.stream(in.LogStreamName, s.o.Now().UnixMilli(), true)
	return struct{}{}, nil
}

func (s *Server) putLogEvents(body []byte) (any, error) {
	var in struct {
		LogGroupName  string  `json:"logGroupName"`
		LogStreamName string  `json:"logStreamName"`
		LogEvents     []Event `json:"logEvents"`
		SequenceToken *string `json:"sequenceToken"`
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	if len(in.LogEvents) == 0 || len(in.LogEvents) > 10000 {
		return nil, invalid("logEvents must hold 1 to 10000 events")
	}
	var size int
	for i, e := range in.LogEvents {
		size += len(e.Message) + 26
		if i > 0 && e.Timestamp < in.LogEvents[i-1].Timestamp {
			return nil, invalid("Log events in a single PutLogEvents request must be in chronological order.")
		}
	}
	if size > 1048576 {
		return nil, invalid("Upload too large: %d bytes exceeds limit of 1048576", size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupOf(&in.LogGroupName, nil)
	if err != nil {
		return nil, err
	}
	st := g.stream(in.LogStreamName, 0, false)
	if st == nil {
		return nil, &apiError{400, "ResourceNotFoundException", "The specified log stream does not exist."}
	}
	// Events older than 14 days or more than 2 hours ahead are rejected.
	now := s.o.Now()
	tooOld, tooNew := now.Add(-14*24*time.Hour).UnixMilli(), now.Add(2*time.Hour).UnixMilli()
	lo, hi := 0, len(in.LogEvents)
	for lo < hi && in.LogEvents[lo].Timestamp < tooOld {
		lo++
	}
	for hi > lo && in.LogEvents[hi-1].Timestamp > tooNew {
		hi--
	}
	s.put(g, st, in.LogEvents[lo:hi])
	type rejected struct {
		TooOldLogEventEndIndex   *int `json:"tooOldLogEventEndIndex,omitempty"`
		TooNewLogEventStartIndex *int `json:"tooNewLogEventStartIndex,omitempty"`
	}
	out := struct {
		NextSequenceToken string    `json:"nextSequenceToken"`
		Rejected          *rejected `json:"rejectedLogEventsInfo,omitempty"`
	}{NextSequenceToken: fmt.Sprintf("%056d", s.seq)}
	if lo > 0 || hi < len(in.LogEvents) {
		out.Rejected = &rejected{}
		if lo > 0 {
			out.Rejected.TooOldLogEventEndIndex = &lo
		}
		if hi < len(in.LogEvents) {
			out.Rejected.TooNewLogEventStartIndex = &hi
		}
	}
	return out, nil
}

// pageToken is the opaque nextToken: the query it belongs to and where
// the next page starts.
type pageToken struct {
	Query string `json:"q"`
	After string `json:"a"` // a name or an event key
	Empty bool   `json:"e,omitempty"`
}

func encodeToken(t pageToken) *string {
	b, _ := json.Marshal(t)
	s := base64.RawURLEncoding.EncodeToString(b)
	return &s
}

func decodeToken(s *string, query string) (pageToken, error) {
	var t pageToken
	if s == nil {
		return t, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.Query != query {
		return t, invalid("The specified nextToken is invalid.")
	}
	return t, nil
}

// queryID identifies a request's parameters other than its token and
// limit, so that a token is only valid for the query that made it.
func queryID(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func checkLimit(l *int32, hi int32) (int, error) {
	if l == nil {
		return int(hi), nil
	}
	if *l < 1 || *l > hi {
		return 0, invalid("1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and %d", *l, hi)
	}
	return int(*l), nil
}

func (s *Server) describeLogGroups(body []byte) (any, error) {
	var in struct {
		AccountIdentifiers    []string `json:"accountIdentifiers"`
		IncludeLinkedAccounts *bool    `json:"includeLinkedAccounts"`
		Limit                 *int32   `json:"limit"`
		LogGroupClass         *string  `json:"logGroupClass"`
		LogGroupIdentifiers   []string `json:"logGroupIdentifiers"`
		LogGroupNamePattern   *string  `json:"logGroupNamePattern"`
		LogGroupNamePrefix    *string  `json:"logGroupNamePrefix"`
		NextToken             *string  `json:"nextToken"`
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	limit, err := checkLimit(in.Limit, 50)
	if err != nil {
		return nil, err
	}
	if in.LogGroupNamePattern != nil && in.LogGroupNamePrefix != nil {
		return nil, invalid("LogGroupNamePrefix and LogGroupNamePattern are mutually exclusive parameters.")
	}
	q := queryID([]any{in.LogGroupNamePrefix, in.LogGroupNamePattern})
	tok, err := decodeToken(in.NextToken, q)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.groups {
		if in.LogGroupNamePrefix != nil && !strings.HasPrefix(n, *in.LogGroupNamePrefix) {
			continue
		}
		if in.LogGroupNamePattern != nil && !strings.Contains(strings.ToLower(n), strings.ToLower(*in.LogGroupNamePattern)) {
			continue
		}
		if in.NextToken != nil && n <= tok.After {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	type logGroup struct {
		Arn               string `json:"arn"`
		CreationTime      int64  `json:"creationTime"`
		LogGroupArn       string `json:"logGroupArn"`
		LogGroupClass     string `json:"logGroupClass"`
		LogGroupName      string `json:"logGroupName"`
		MetricFilterCount int    `json:"metricFilterCount"`
		StoredBytes       int64  `json:"storedBytes"`
	}
	out := struct {
		LogGroups []logGroup `json:"logGroups"`
		NextToken *string    `json:"nextToken,omitempty"`
	}{LogGroups: []logGroup{}}
	for i, n := range names {
		if i == limit {
			out.NextToken = encodeToken(pageToken{Query: q, After: names[i-1]})
			break
		}
		g := s.groups[n]
		var stored int64
		for _, st := range g.streams {
			stored += st.bytes
		}
		out.LogGroups = append(out.LogGroups, logGroup{
			Arn: s.arn(n) + ":*", CreationTime: g.created, LogGroupArn: s.arn(n), LogGroupClass: "STANDARD",
			LogGroupName: n, StoredBytes: stored,
		})
	}
	return out, nil
}

func (s *Server) describeLogStreams(body []byte) (any, error) {
	var in struct {
		Descending          *bool   `json:"descending"`
		Limit               *int32  `json:"limit"`
		LogGroupIdentifier  *string `json:"logGroupIdentifier"`
		LogGroupName        *string `json:"logGroupName"`
		LogStreamNamePrefix *string `json:"logStreamNamePrefix"`
		NextToken           *string `json:"nextToken"`
		OrderBy             *string `json:"orderBy"`
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	limit, err := checkLimit(in.Limit, 50)
	if err != nil {
		return nil, err
	}
	orderBy := aws.ToString(in.OrderBy)
	switch orderBy {
	case "", "LogStreamName":
		orderBy = "LogStreamName"
	case "LastEventTime":
		if in.LogStreamNamePrefix != nil {
			return nil, invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
		}
	default:
		return nil, invalid("orderBy must be LogStreamName or LastEventTime")
	}
	q := queryID([]any{in.LogGroupIdentifier, in.LogGroupName, in.LogStreamNamePrefix, orderBy, in.Descending})
	tok, err := decodeToken(in.NextToken, q)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupOf(in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	var sts []*stream
	for _, st := range g.streams {
		if in.LogStreamNamePrefix == nil || strings.HasPrefix(st.name, *in.LogStreamNamePrefix) {
			sts = append(sts, st)
		}
	}
	sort.Slice(sts, func(i, j int) bool {
		a, b := sts[i], sts[j]
		if orderBy == "LastEventTime" && a.last != b.last {
			return a.last < b.last
		}
		return a.name < b.name
	})
	if aws.ToBool(in.Descending) {
		for i, j := 0, len(sts)-1; i < j; i, j = i+1, j-1 {
			sts[i], sts[j] = sts[j], sts[i]
		}
	}
	start := 0
	if in.NextToken != nil {
		fmt.Sscan(tok.After, &start)
	}
	type logStream struct {
		Arn                 string `json:"arn"`
		CreationTime        int64  `json:"creationTime"`
		FirstEventTimestamp *int64 `json:"firstEventTimestamp,omitempty"`
		LastEventTimestamp  *int64 `json:"lastEventTimestamp,omitempty"`
		LastIngestionTime   *int64 `json:"lastIngestionTime,omitempty"`
		LogStreamName       string `json:"logStreamName"`
		StoredBytes         int64  `json:"storedBytes"`
	}
	out := struct {
		LogStreams []logStream `json:"logStreams"`
		NextToken  *string     `json:"nextToken,omitempty"`
	}{LogStreams: []logStream{}}
	for i := start; i < len(sts); i++ {
		if i-start == limit {
			out.NextToken = encodeToken(pageToken{Query: q, After: fmt.Sprint(i)})
			break
		}
		st := sts[i]
		ls := logStream{Arn: s.arn(g.name) + ":log-stream:" + st.name, CreationTime: st.created, LogStreamName: st.name, StoredBytes: st.bytes}
		if st.lastIngest != 0 {
			ls.FirstEventTimestamp, ls.LastEventTimestamp, ls.LastIngestionTime = &st.first, &st.last, &st.lastIngest
		}
		out.LogStreams = append(out.LogStreams, ls)
	}
	return out, nil
}

func (s *Server) filterLogEvents(body []byte) (any, error) {
	var in struct {
		EndTime             *int64   `json:"endTime"`
		FilterPattern       *string  `json:"filterPattern"`
		Interleaved         *bool    `json:"interleaved"`
		Limit               *int32   `json:"limit"`
		LogGroupIdentifier  *string  `json:"logGroupIdentifier"`
		LogGroupName        *string  `json:"logGroupName"`
		LogStreamNamePrefix *string  `json:"logStreamNamePrefix"`
		LogStreamNames      []string `json:"logStreamNames"`
		NextToken           *string  `json:"nextToken"`
		StartFromHead       *bool    `json:"startFromHead"`
		StartTime           *int64   `json:"startTime"`
		Unmask              *bool    `json:"unmask"`
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	limit, err := checkLimit(in.Limit, MaxPageEvents)
	if err != nil {
		return nil, err
	}
	if in.LogStreamNamePrefix != nil && in.LogStreamNames != nil {
		return nil, invalid("Cannot specify both logStreamNames and logStreamNamePrefix.")
	}
	if len(in.LogStreamNames) > 100 {
		return nil, invalid("logStreamNames may list at most 100 streams")
	}
	if aws.ToString(in.FilterPattern) != "" {
		return nil, invalid("cwltest does not implement filter patterns")
	}
	if in.StartTime != nil && in.EndTime != nil && *in.EndTime < *in.StartTime {
		return nil, invalid("endTime must not be before startTime")
	}
	head := in.StartFromHead == nil || *in.StartFromHead
	q := queryID([]any{in.LogGroupIdentifier, in.LogGroupName, in.LogStreamNamePrefix, in.LogStreamNames, in.StartTime, in.EndTime, head})
	tok, err := decodeToken(in.NextToken, q)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupOf(in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	if in.LogStreamNames != nil {
		for _, n := range in.LogStreamNames {
			if g.streams[n] == nil {
				return nil, &apiError{400, "ResourceNotFoundException", "The specified log stream does not exist."}
			}
		}
	}
	want := func(e *event) bool {
		if in.StartTime != nil && e.Timestamp < *in.StartTime {
			return false
		}
		if in.EndTime != nil && e.Timestamp > *in.EndTime {
			return false
		}
		if in.LogStreamNamePrefix != nil && !strings.HasPrefix(e.Stream, *in.LogStreamNamePrefix) {
			return false
		}
		return in.LogStreamNames == nil || contains(in.LogStreamNames, e.Stream)
	}
	type searched struct {
		LogStreamName      string `json:"logStreamName"`
		SearchedCompletely bool   `json:"searchedCompletely"`
	}
	out := struct {
		Events             []*event   `json:"events"`
		NextToken          *string    `json:"nextToken,omitempty"`
		SearchedLogStreams []searched `json:"searchedLogStreams"`
	}{Events: []*event{}, SearchedLogStreams: []searched{}}
	if s.o.EmptyFirstPage && in.NextToken == nil {
		out.NextToken = encodeToken(pageToken{Query: q, Empty: true})
		return out, nil
	}
	// The page goes on after the last event handed out (by key, so events
	// put meanwhile neither shift nor repeat it).
	var after *key
	if in.NextToken != nil && !tok.Empty {
		var k key
		if _, err := fmt.Sscanf(tok.After, "%d.%d.%d", &k.ts, &k.ingest, &k.seq); err != nil {
			return nil, invalid("The specified nextToken is invalid.")
		}
		after = &k
	}
	evs := g.all
	var i, step int
	if head {
		i, step = 0, 1
		if after != nil {
			i = sort.Search(len(evs), func(j int) bool { return after.less(evs[j].key()) })
		}
	} else {
		i, step = len(evs)-1, -1
		if after != nil {
			i = sort.Search(len(evs), func(j int) bool { return !evs[j].key().less(*after) }) - 1
		}
	}
	page := min(limit, s.o.PageEvents)
	size, seen := 0, map[string]bool{}
	for ; i >= 0 && i < len(evs); i += step {
		e := evs[i]
		if !want(e) {
			continue
		}
		n := len(e.Message) + len(e.Stream) + eventOverhead
		if len(out.Events) == page || (len(out.Events) > 0 && size+n > s.o.PageBytes) {
			last := out.Events[len(out.Events)-1].key()
			out.NextToken = encodeToken(pageToken{Query: q, After: fmt.Sprintf("%d.%d.%d", last.ts, last.ingest, last.seq)})
			break
		}
		size += n
		out.Events = append(out.Events, e)
		seen[e.Stream] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out.SearchedLogStreams = append(out.SearchedLogStreams, searched{n, out.NextToken == nil})
	}
	return out, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
