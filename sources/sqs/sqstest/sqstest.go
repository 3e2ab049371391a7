// Package sqstest is an Amazon SQS test server speaking the AWS JSON 1.0
// protocol as aws-sdk-go-v2's service/sqs (v1.53) uses it: POST / with
// X-Amz-Target: AmazonSQS.<Operation>, Content-Type
// application/x-amz-json-1.0, a SigV4 Authorization header (checked for
// presence and shape, not verified), and errors as SQS answers them: the
// status and query code of the service model, a body
// {"__type":"com.amazonaws.sqs#<Code>","message":...} and an
// x-amzn-query-error: <QueryCode>;Sender header.
//
// Semantics kept: visibility timeouts (the queue's or the request's), a
// new receipt handle per receive (an older handle of a message received
// again is ReceiptHandleIsInvalid), MD5OfBody, long polling that wakes on
// a send or a message becoming visible, ApproximateReceiveCount and the
// other system attributes, a redrive policy (maxReceiveCount, then the
// message moves to the dead-letter queue on its next receive), batch
// limits and per-entry failures, and injectable faults (throttling, 500s,
// a wrong MD5) by operation.
package sqstest

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Account and Region appear in queue URLs and ARNs.
const (
	Account = "123456789012"
	Region  = "us-east-1"
)

// QueueOptions configure a queue.
type QueueOptions struct {
	// VisibilityTimeout is the queue's default; 0 means 30 s (SQS's
	// default). SQS counts whole seconds; so does this server.
	VisibilityTimeout time.Duration
	// MaxReceiveCount and DeadLetterQueue are the redrive policy: a
	// message received MaxReceiveCount times moves to the queue named
	// DeadLetterQueue on its next receive.
	MaxReceiveCount int
	DeadLetterQueue string
}

// Fault is an error answered instead of an operation's result.
type Fault struct {
	Status    int
	Code      string // the __type shape name
	Namespace string // default com.amazonaws.sqs
	QueryCode string // x-amzn-query-error code; "" sends none
	Message   string
}

// RequestThrottled is SQS's throttling error (status and query code from
// the service model).
var RequestThrottled = Fault{Status: 403, Code: "RequestThrottled", QueryCode: "RequestThrottled", Message: "Request is throttled."}

// ThrottlingException is the front end's throttling error.
var ThrottlingException = Fault{Status: 400, Code: "ThrottlingException", Namespace: "com.amazon.coral.availability", QueryCode: "ThrottlingException", Message: "Rate exceeded"}

// InternalError is a 500.
var InternalError = Fault{Status: 500, Code: "InternalError", Namespace: "com.amazon.coral.service", QueryCode: "InternalError", Message: "We encountered an internal error. Please try again."}

// Server is the test server; its URL is the endpoint (BaseEndpoint or
// AWS_ENDPOINT_URL_SQS).
type Server struct {
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	queues   map[string]*queue
	changed  chan struct{} // closed and replaced when a receive may succeed
	faults   map[string][]Fault
	badMD5   int
	requests map[string]int
	unsigned int
	polling  int
	seq      uint64
}

type queue struct {
	name, url  string
	visibility time.Duration
	maxReceive int
	dlq        string
	msgs       []*message // arrival order; deleted ones are dropped lazily
	byID       map[string]*message
	head       int // msgs[:head] are deleted
	created    time.Time
	deletedN   int
}

type message struct {
	id, body, md5 string
	sent          time.Time
	firstReceive  time.Time
	visibleAt     time.Time
	receives      int
	handle        string
	deleted       bool
}

// New starts a server; Close it when done.
func New() *Server {
	s := &Server{queues: map[string]*queue{}, changed: make(chan struct{}), faults: map[string][]Fault{}, requests: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// CreateQueue creates a queue (idempotent) and returns its URL.
func (s *Server) CreateQueue(name string, o QueueOptions) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.queues[name]; ok {
		return q.url
	}
	vis := o.VisibilityTimeout
	if vis <= 0 {
		vis = 30 * time.Second
	}
	q := &queue{name: name, url: s.URL + "/" + Account + "/" + name, visibility: vis.Truncate(time.Second),
		maxReceive: o.MaxReceiveCount, dlq: o.DeadLetterQueue, byID: map[string]*message{}, created: time.Now()}
	s.queues[name] = q
	return q.url
}

// Send puts a message on a queue as SendMessage does, and returns its id.
func (s *Server) Send(name, body string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	if q == nil {
		panic("sqstest: no queue " + name)
	}
	return s.send(q, body, 0).id
}

// Inject queues faults for op ("ReceiveMessage", ...): its next calls are
// answered with them, one call each.
func (s *Server) Inject(op string, f ...Fault) {
	s.mu.Lock()
	s.faults[op] = append(s.faults[op], f...)
	s.mu.Unlock()
}

// CorruptMD5 makes the next n received messages carry a wrong MD5OfBody.
func (s *Server) CorruptMD5(n int) {
	s.mu.Lock()
	s.badMD5 += n
	s.mu.Unlock()
}

// Requests counts the calls of op received (faulted ones included).
func (s *Server) Requests(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[op]
}

// Polling counts ReceiveMessage calls being answered (long polls
// waiting).
func (s *Server) Polling() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polling
}

// Unsigned counts requests refused for lack of a SigV4 signature.
func (s *Server) Unsigned() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unsigned
}

// Counts returns a queue's visible, in-flight and total messages, exactly
// (ApproximateNumberOfMessages and ...NotVisible, without the
// approximation).
func (s *Server) Counts(name string) (visible, inFlight int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	if q == nil {
		return 0, 0
	}
	now := time.Now()
	for _, m := range q.msgs[q.head:] {
		if m.deleted {
			continue
		}
		if m.visibleAt.After(now) {
			inFlight++
		} else {
			visible++
		}
	}
	return visible, inFlight
}

// Expire makes every in-flight message of a queue visible now, as if its
// visibility timeout had lapsed: the receipt handles handed out stay valid
// until the message is received again.
func (s *Server) Expire(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, m := range s.queues[name].msgs[s.queues[name].head:] {
		if !m.deleted && m.visibleAt.After(now) && m.receives > 0 {
			m.visibleAt = now
		}
	}
	s.notify()
}

// Message describes a message on a queue (for assertions).
type Message struct {
	ID, Body     string
	ReceiveCount int
}

// Messages lists a queue's messages not deleted, in arrival order.
func (s *Server) Messages(name string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	if q == nil {
		return nil
	}
	var out []Message
	for _, m := range q.msgs[q.head:] {
		if !m.deleted {
			out = append(out, Message{ID: m.id, Body: m.body, ReceiveCount: m.receives})
		}
	}
	return out
}

func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) newID() string {
	s.seq++
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%08x-%s", s.seq, hex.EncodeToString(b[:]))
}

func md5Hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func (s *Server) send(q *queue, body string, delay time.Duration) *message {
	now := time.Now()
	m := &message{id: s.newID(), body: body, md5: md5Hex(body), sent: now, visibleAt: now.Add(delay)}
	q.msgs = append(q.msgs, m)
	q.byID[m.id] = m
	s.notify()
	return m
}

// apiError is an error answer.
type apiError struct{ Fault }

func errf(status int, code, queryCode, format string, args ...any) *apiError {
	return &apiError{Fault{Status: status, Code: code, QueryCode: queryCode, Message: fmt.Sprintf(format, args...)}}
}

func errNoQueue() *apiError {
	return errf(400, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")
}

func errHandle(h string) *apiError {
	return errf(404, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", "The input receipt handle %q is not a valid receipt handle.", h)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "AmazonSQS.")
	if r.Method != http.MethodPost || !ok || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.0") {
		writeErr(w, errf(400, "UnknownOperationException", "", "unknown operation %q", target))
		return
	}
	s.mu.Lock()
	s.requests[op]++
	if !signed(r) {
		s.unsigned++
		s.mu.Unlock()
		writeErr(w, errf(403, "InvalidSecurity", "InvalidSecurity", "The request is not signed with SigV4."))
		return
	}
	if fs := s.faults[op]; len(fs) > 0 {
		f := fs[0]
		s.faults[op] = fs[1:]
		s.mu.Unlock()
		writeErr(w, &apiError{f})
		return
	}
	s.mu.Unlock()
	var out any
	var aerr *apiError
	dec := json.NewDecoder(r.Body)
	switch op {
	case "ReceiveMessage":
		var in receiveIn
		if aerr = decode(dec, &in); aerr == nil {
			out, aerr = s.receive(r, &in)
		}
	case "DeleteMessage":
		var in entry
		if aerr = decode(dec, &in); aerr == nil {
			out, aerr = s.deleteOne(&in)
		}
	case "DeleteMessageBatch":
		var in batchIn
		if aerr = decode(dec, &in); aerr == nil {
			out, aerr = s.batch(&in, false)
		}
	case "ChangeMessageVisibility":
		var in entry
		if aerr = decode(dec, &in); aerr == nil {
			out, aerr = s.changeOne(&in)
		}
	case "ChangeMessageVisibilityBatch":
		var in batchIn
		if aerr = decode(dec, &in); aerr == nil {
			out, aerr = s.batch(&in, true)
		}
	case "GetQueueAttributes":
		var in attrsIn
		if aerr = decode(dec, &in); aerr == nil {
			out, aerr = s.attributes(&in)
		}
	case "GetQueueUrl":
		var in struct{ QueueName string }
		if aerr = decode(dec, &in); aerr == nil {
			s.mu.Lock()
			q := s.queues[in.QueueName]
			s.mu.Unlock()
			if q == nil {
				aerr = errNoQueue()
			} else {
				out = map[string]string{"QueueUrl": q.url}
			}
		}
	case "SendMessage":
		var in struct {
			QueueUrl, MessageBody string
			DelaySeconds          int
		}
		if aerr = decode(dec, &in); aerr == nil {
			s.mu.Lock()
			q := s.queueByURL(in.QueueUrl)
			if q == nil {
				aerr = errNoQueue()
			} else if in.MessageBody == "" {
				aerr = errf(400, "InvalidParameterValue", "InvalidParameterValue", "The request must contain the parameter MessageBody.")
			} else {
				m := s.send(q, in.MessageBody, time.Duration(in.DelaySeconds)*time.Second)
				out = map[string]string{"MessageId": m.id, "MD5OfMessageBody": m.md5}
			}
			s.mu.Unlock()
		}
	default:
		aerr = errf(400, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", "sqstest does not implement %s.", op)
	}
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-RequestId", requestID())
	_, _ = w.Write(b)
}

// signed checks the shape of a SigV4 Authorization header.
func signed(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	return strings.HasPrefix(a, "AWS4-HMAC-SHA256 ") && strings.Contains(a, "Credential=") &&
		strings.Contains(a, "SignedHeaders=") && strings.Contains(a, "Signature=") && r.Header.Get("X-Amz-Date") != ""
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func decode(dec *json.Decoder, v any) *apiError {
	if err := dec.Decode(v); err != nil {
		return errf(400, "SerializationException", "", "%v", err)
	}
	return nil
}

func writeErr(w http.ResponseWriter, e *apiError) {
	ns := e.Namespace
	if ns == "" {
		ns = "com.amazonaws.sqs"
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-RequestId", requestID())
	if e.QueryCode != "" {
		fault := "Sender"
		if e.Status >= 500 {
			fault = "Receiver"
		}
		w.Header().Set("x-amzn-query-error", e.QueryCode+";"+fault)
	}
	w.WriteHeader(e.Status)
	b, _ := json.Marshal(map[string]string{"__type": ns + "#" + e.Code, "message": e.Message})
	_, _ = w.Write(b)
}

func (s *Server) queueByURL(u string) *queue {
	i := strings.LastIndexByte(u, '/')
	if i < 0 {
		return nil
	}
	q := s.queues[u[i+1:]]
	if q == nil || q.url != u && !strings.HasSuffix(u, "/"+Account+"/"+q.name) {
		return nil
	}
	return q
}

type receiveIn struct {
	QueueUrl                    string
	MaxNumberOfMessages         int
	WaitTimeSeconds             int
	VisibilityTimeout           *int
	AttributeNames              []string
	MessageSystemAttributeNames []string
}

type outMessage struct {
	MessageId     string
	ReceiptHandle string
	MD5OfBody     string
	Body          string
	Attributes    map[string]string `json:",omitempty"`
}

func (s *Server) receive(r *http.Request, in *receiveIn) (any, *apiError) {
	max := in.MaxNumberOfMessages
	if max == 0 {
		max = 1
	}
	if max < 1 || max > 10 {
		return nil, errf(400, "InvalidParameterValue", "InvalidParameterValue", "Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", max)
	}
	if in.WaitTimeSeconds < 0 || in.WaitTimeSeconds > 20 {
		return nil, errf(400, "InvalidParameterValue", "InvalidParameterValue", "Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", in.WaitTimeSeconds)
	}
	attrs := append(slices.Clone(in.AttributeNames), in.MessageSystemAttributeNames...)
	s.mu.Lock()
	s.polling++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.polling--
		s.mu.Unlock()
	}()
	deadline := time.Now().Add(time.Duration(in.WaitTimeSeconds) * time.Second)
	for {
		if r.Context().Err() != nil {
			return map[string]any{"Messages": []outMessage{}}, nil
		}
		s.mu.Lock()
		q := s.queueByURL(in.QueueUrl)
		if q == nil {
			s.mu.Unlock()
			return nil, errNoQueue()
		}
		vis := q.visibility
		if in.VisibilityTimeout != nil {
			vis = time.Duration(*in.VisibilityTimeout) * time.Second
		}
		now := time.Now()
		msgs, next := s.take(q, max, vis, now, attrs)
		ch := s.changed
		s.mu.Unlock()
		if len(msgs) > 0 || !now.Before(deadline) {
			return map[string]any{"Messages": msgs}, nil
		}
		wait := time.Until(deadline)
		if !next.IsZero() && next.Sub(now) < wait {
			wait = next.Sub(now)
		}
		t := time.NewTimer(wait)
		select {
		case <-ch:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return map[string]any{"Messages": []outMessage{}}, nil
		}
		t.Stop()
	}
}

// take receives up to max visible messages; next is when the earliest
// invisible message becomes visible (zero if none).
func (s *Server) take(q *queue, max int, vis time.Duration, now time.Time, attrs []string) (out []outMessage, next time.Time) {
	out = []outMessage{}
	// Drop the deleted prefix; compact when it is most of the slice, so
	// that a receive costs the in-flight messages it skips, not the queue.
	for q.head < len(q.msgs) && q.msgs[q.head].deleted {
		q.msgs[q.head] = nil
		q.head++
	}
	if q.head > 1024 && q.head > len(q.msgs)/2 {
		q.msgs = append(q.msgs[:0:0], q.msgs[q.head:]...)
		q.head = 0
	}
	moved := false
	for _, m := range q.msgs[q.head:] {
		if len(out) >= max {
			break
		}
		if m.deleted {
			continue
		}
		if m.visibleAt.After(now) {
			if next.IsZero() || m.visibleAt.Before(next) {
				next = m.visibleAt
			}
			continue
		}
		if q.maxReceive > 0 && m.receives >= q.maxReceive && q.dlq != "" {
			if d := s.queues[q.dlq]; d != nil {
				m.deleted = true
				delete(q.byID, m.id)
				nm := &message{id: m.id, body: m.body, md5: m.md5, sent: m.sent, visibleAt: now}
				d.msgs = append(d.msgs, nm)
				d.byID[nm.id] = nm
				moved = true
				continue
			}
		}
		m.receives++
		if m.firstReceive.IsZero() {
			m.firstReceive = now
		}
		m.visibleAt = now.Add(vis)
		var b [12]byte
		_, _ = rand.Read(b[:])
		m.handle = base64.StdEncoding.EncodeToString([]byte(q.name + "\x00" + m.id + "\x00" + strconv.Itoa(m.receives) + "\x00" + hex.EncodeToString(b[:])))
		om := outMessage{MessageId: m.id, ReceiptHandle: m.handle, MD5OfBody: m.md5, Body: m.body, Attributes: sysAttrs(m, attrs)}
		if s.badMD5 > 0 {
			s.badMD5--
			om.MD5OfBody = md5Hex(m.body + "corrupted")
		}
		out = append(out, om)
		if next.IsZero() || m.visibleAt.Before(next) {
			next = m.visibleAt
		}
	}
	if moved {
		s.notify()
	}
	return out, next
}

func sysAttrs(m *message, names []string) map[string]string {
	all := map[string]string{
		"ApproximateReceiveCount":          strconv.Itoa(m.receives),
		"SentTimestamp":                    strconv.FormatInt(m.sent.UnixMilli(), 10),
		"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
		"SenderId":                         "AIDAEXAMPLE" + Account,
	}
	out := map[string]string{}
	for _, n := range names {
		if n == "All" {
			return all
		}
		if v, ok := all[n]; ok {
			out[n] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

type entry struct {
	QueueUrl          string `json:",omitempty"`
	Id                string `json:",omitempty"`
	ReceiptHandle     string
	VisibilityTimeout int
}

type batchIn struct {
	QueueUrl string
	Entries  []entry
}

// lookup finds the message a receipt handle names: nil, nil for a
// well-formed handle of a message already deleted (deleting again
// succeeds, as in SQS).
func lookup(q *queue, h string) (*message, *apiError) {
	raw, err := base64.StdEncoding.DecodeString(h)
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 4 || parts[0] != q.name {
		return nil, errHandle(h)
	}
	m := q.byID[parts[1]]
	if m == nil {
		return nil, nil
	}
	if m.handle != h {
		return nil, errHandle(h) // received again since: only the newest handle is valid
	}
	return m, nil
}

func (s *Server) deleteMsg(q *queue, h string) *apiError {
	m, err := lookup(q, h)
	if err != nil || m == nil {
		return err
	}
	m.deleted = true
	delete(q.byID, m.id)
	q.deletedN++
	return nil
}

func (s *Server) changeMsg(q *queue, h string, secs int) *apiError {
	if secs < 0 || secs > 43200 {
		return errf(400, "InvalidParameterValue", "InvalidParameterValue", "Value %d for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 and <= 43200, if provided.", secs)
	}
	m, err := lookup(q, h)
	if err != nil {
		return err
	}
	now := time.Now()
	if m == nil || !m.visibleAt.After(now) {
		return errf(400, "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", "The message referred to isn't in flight.")
	}
	m.visibleAt = now.Add(time.Duration(secs) * time.Second)
	if secs == 0 {
		s.notify()
	}
	return nil
}

func (s *Server) deleteOne(in *entry) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queueByURL(in.QueueUrl)
	if q == nil {
		return nil, errNoQueue()
	}
	if err := s.deleteMsg(q, in.ReceiptHandle); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) changeOne(in *entry) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queueByURL(in.QueueUrl)
	if q == nil {
		return nil, errNoQueue()
	}
	if err := s.changeMsg(q, in.ReceiptHandle, in.VisibilityTimeout); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type failed struct {
	Id          string
	SenderFault bool
	Code        string
	Message     string
}

func (s *Server) batch(in *batchIn, change bool) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queueByURL(in.QueueUrl)
	if q == nil {
		return nil, errNoQueue()
	}
	switch {
	case len(in.Entries) == 0:
		return nil, errf(400, "EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one entry in the request.")
	case len(in.Entries) > 10:
		return nil, errf(400, "TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "Maximum number of entries per request are 10. You have sent %d.", len(in.Entries))
	}
	ids := map[string]bool{}
	for _, e := range in.Entries {
		if ids[e.Id] {
			return nil, errf(400, "BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "Id %s repeated.", e.Id)
		}
		ids[e.Id] = true
	}
	ok := []map[string]string{}
	bad := []failed{}
	for _, e := range in.Entries {
		var err *apiError
		if change {
			err = s.changeMsg(q, e.ReceiptHandle, e.VisibilityTimeout)
		} else {
			err = s.deleteMsg(q, e.ReceiptHandle)
		}
		if err != nil {
			// Batch entries carry the query code, as SQS's do.
			bad = append(bad, failed{Id: e.Id, SenderFault: true, Code: strings.TrimPrefix(err.QueryCode, "AWS.SimpleQueueService."), Message: err.Message})
			continue
		}
		ok = append(ok, map[string]string{"Id": e.Id})
	}
	return map[string]any{"Successful": ok, "Failed": bad}, nil
}

type attrsIn struct {
	QueueUrl       string
	AttributeNames []string
}

func (s *Server) attributes(in *attrsIn) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queueByURL(in.QueueUrl)
	if q == nil {
		return nil, errNoQueue()
	}
	now := time.Now()
	var vis, inflight, delayed int
	for _, m := range q.msgs[q.head:] {
		switch {
		case m.deleted:
		case m.visibleAt.After(now) && m.receives == 0:
			delayed++
		case m.visibleAt.After(now):
			inflight++
		default:
			vis++
		}
	}
	all := map[string]string{
		"ApproximateNumberOfMessages":           strconv.Itoa(vis),
		"ApproximateNumberOfMessagesNotVisible": strconv.Itoa(inflight),
		"ApproximateNumberOfMessagesDelayed":    strconv.Itoa(delayed),
		"VisibilityTimeout":                     strconv.Itoa(int(q.visibility / time.Second)),
		"QueueArn":                              "arn:aws:sqs:" + Region + ":" + Account + ":" + q.name,
		"CreatedTimestamp":                      strconv.FormatInt(q.created.Unix(), 10),
		"ReceiveMessageWaitTimeSeconds":         "0",
		"MessageRetentionPeriod":                "345600",
		"MaximumMessageSize":                    "262144",
		"DelaySeconds":                          "0",
	}
	if q.maxReceive > 0 && q.dlq != "" {
		all["RedrivePolicy"] = fmt.Sprintf(`{"deadLetterTargetArn":"arn:aws:sqs:%s:%s:%s","maxReceiveCount":%d}`, Region, Account, q.dlq, q.maxReceive)
	}
	out := map[string]string{}
	for _, n := range in.AttributeNames {
		if n == "All" {
			out = all
			break
		}
		if v, ok := all[n]; ok {
			out[n] = v
		} else {
			return nil, errf(400, "InvalidAttributeName", "InvalidAttributeName", "Unknown Attribute %s.", n)
		}
	}
	return map[string]any{"Attributes": out}, nil
}
