package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	json "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/pipeline"
)

// DefaultMaxRecordBytes is the default cap on one record.
const DefaultMaxRecordBytes = 16 << 20

// SampleLen caps the record sample of a RecordError.
const SampleLen = 512

// RecordError describes a skipped record (or, from a file reader, a
// damaged file).
type RecordError struct {
	Pos    pipeline.Position
	Source pipeline.Source // "" if unknown
	Reason string
	// Class is the Skip* class of the reason ("" if none applies).
	Class  string
	Sample []byte // first ≤ SampleLen bytes of the record
}

func (e RecordError) Error() string { return e.Pos.String() + ": " + e.Reason }

// Skip reason classes of records, the keys of the skipped counts.
const (
	SkipBadJSON        = "bad_json"          // not JSON, or JSON cut short
	SkipInvalid        = "invalid_record"    // wrong types, missing required fields, bad times
	SkipTimeOutOfRange = "time_out_of_range" // event time before minEventTime or over a day after the run's start
	SkipTooLarge       = "too_large"         // longer than MaxRecordBytes
	SkipUnsupported    = "unsupported_type"  // valid but of a kind we do not read
	SkipUnrecognised   = "unrecognised"      // JSON of no known shape
	SkipControlMessage = "control_message"   // CloudWatch Logs CONTROL_MESSAGE
)

// maxDepth bounds wrapper recursion (a log event holding an EventBridge
// event holding...); real data nests at most three deep.
const maxDepth = 6

// doc is the union of the top-level members every supported shape needs,
// so that a record is decoded once whatever it is. goccy matches keys
// case-insensitively, which also accepts PascalCase GuardDuty output.
// Members that differ in type between formats are kept raw.
type doc struct {
	// EventBridge envelope.
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"` // also Falco's source
	Account    string          `json:"account"`
	Detail     json.RawMessage `json:"detail"`
	Time       json.RawMessage `json:"time"` // also Falco's time

	// Containers of records.
	Records  json.RawMessage `json:"Records"`
	Findings json.RawMessage `json:"findings"`
	Events   json.RawMessage `json:"events"`

	// CloudWatch Logs subscription payloads.
	MessageType string          `json:"messageType"`
	Owner       string          `json:"owner"`
	LogGroup    string          `json:"logGroup"`
	LogStream   string          `json:"logStream"`
	LogEvents   json.RawMessage `json:"logEvents"`
	Awslogs     json.RawMessage `json:"awslogs"`

	// CloudTrail record.
	ctFields

	// GuardDuty finding (ID, Type, AccountID and Region are shared with
	// EventBridge and Container Insights).
	SchemaVersion string          `json:"schemaVersion"`
	ID            json.RawMessage `json:"id"`
	Type          json.RawMessage `json:"type"`
	AccountID     string          `json:"accountId"`
	Region        string          `json:"region"`
	CreatedAt     json.RawMessage `json:"createdAt"`
	UpdatedAt     json.RawMessage `json:"updatedAt"`
	Severity      json.RawMessage `json:"severity"`
	Resource      json.RawMessage `json:"resource"`
	Service       json.RawMessage `json:"service"`
	ProductArn    json.RawMessage `json:"ProductArn"` // Security Hub ASFF

	// Falco alert.
	Rule         string          `json:"rule"`
	Priority     string          `json:"priority"`
	Output       string          `json:"output"`
	Hostname     string          `json:"hostname"`
	UUID         string          `json:"uuid"`
	OutputFields *falcoFields    `json:"output_fields"`
	Tags         json.RawMessage `json:"tags"`

	// Container Insights performance event (EMF).
	Timestamp              json.RawMessage `json:"Timestamp"`
	TaskID                 string          `json:"TaskId"`
	ClusterName            string          `json:"ClusterName"`
	ServiceName            string          `json:"ServiceName"`
	ContainerName          string          `json:"ContainerName"`
	ContainerInstanceID    string          `json:"ContainerInstanceId"`
	TaskDefinitionFamily   string          `json:"TaskDefinitionFamily"`
	TaskDefinitionRevision json.RawMessage `json:"TaskDefinitionRevision"`
}

// ctFields are the CloudTrail members; CloudTrail-only input (Records
// elements, JSON lines starting with eventVersion) is decoded into this
// small struct alone, which is the hot path.
type ctFields struct {
	EventVersion       string     `json:"eventVersion"`
	EventID            string     `json:"eventID"`
	EventTime          string     `json:"eventTime"`
	EventSource        string     `json:"eventSource"`
	EventName          string     `json:"eventName"`
	AWSRegion          string     `json:"awsRegion"`
	RecipientAccountID string     `json:"recipientAccountId"`
	UserIdentity       ctIdentity `json:"userIdentity"`
	// Typed so that other services' parameters are skipped, not copied;
	// docLax takes over when they are not objects.
	RequestParameters *ctParams `json:"requestParameters"`
	ResponseElements  *ctParams `json:"responseElements"`
}

// docLax is doc for the rare CloudTrail record whose requestParameters or
// responseElements is not an object (seen in the wild as a string).
type docLax struct {
	doc
	RequestParameters json.RawMessage `json:"requestParameters"`
	ResponseElements  json.RawMessage `json:"responseElements"`
}

// unmarshalDoc decodes a document into the union.
func unmarshalDoc(data []byte, u *doc) error {
	err := json.Unmarshal(data, u)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || !(strings.HasPrefix(te.Field, "requestParameters") || strings.HasPrefix(te.Field, "responseElements")) {
		return err
	}
	var lax docLax
	if err := json.Unmarshal(data, &lax); err != nil {
		return err
	}
	*u = lax.doc
	u.RequestParameters, u.ResponseElements = params(lax.RequestParameters), params(lax.ResponseElements)
	return nil
}

// fastCloudTrail decodes data as a CloudTrail record if it is a complete
// one; otherwise it reports false and the caller takes the general path,
// which also produces the right error.
func (d *Decoder) fastCloudTrail(data []byte, pos pipeline.Position) bool {
	asked := false
	if d.filter != nil {
		var filtered bool
		filtered, asked = d.prefilterCloudTrail(data)
		if filtered {
			return true
		}
	}
	var c ctFields
	if json.Unmarshal(data, &c) != nil || c.EventTime == "" || c.EventSource == "" || c.EventName == "" {
		return false
	}
	d.kept = asked // the filter already said yes: do not ask twice
	d.cloudTrail(&c, data, pos)
	d.kept = false
	return true
}

var eventVersionPrefix = []byte(`{"eventVersion"`)

// prefilterCloudTrail reads only eventSource, eventName and eventTime (a
// scan that stops once it has them, typically a quarter into the record)
// and asks the filter; it reports whether the record was filtered out and
// whether the filter was asked at all.
// Anything unusual (escapes, a bad time, a notification record) goes to
// the full decode, which reports it properly. A record the filter rejects
// is not decoded further, so damage past those fields goes unnoticed: the
// filter says nobody will read it.
func (d *Decoder) prefilterCloudTrail(data []byte) (filtered, asked bool) {
	var src, name, ts string
	okSrc, okName, okTime := false, false, false
	plain := true
	// The strings point into data: nothing here keeps them, and the
	// filter is told they are valid only during the call.
	member := func(k []byte, v []byte) bool {
		switch string(k) {
		case "eventSource":
			src, okSrc = borrowPlain(v)
			plain = plain && okSrc
		case "eventName":
			name, okName = borrowPlain(v)
			plain = plain && okName
		case "eventTime":
			ts, okTime = borrowPlain(v)
			plain = plain && okTime
		}
		return plain && !(okSrc && okName && okTime)
	}
	if d.members != nil {
		for _, m := range d.members {
			if !member(m.Key, m.Value) {
				break
			}
		}
	} else {
		pipeline.ScanObject(data, func(k []byte, _ bool, v []byte) bool { return member(k, v) })
	}
	if !plain || !okSrc || !okName || !okTime || src == "" || name == "" || strings.HasPrefix(src, "aws:") {
		return false, false
	}
	t, err := pipeline.ParseTimeString(ts)
	if err != nil || (!d.latest.IsZero() && (t.Before(minEventTime) || t.After(d.latest))) {
		return false, false
	}
	d.typBuf = append(append(append(d.typBuf[:0], src...), ':'), name...)
	typ := unsafe.String(unsafe.SliceData(d.typBuf), len(d.typBuf))
	return !d.keep(pipeline.SourceCloudTrail, typ, t, data), true
}

// borrowPlain is pipeline.UnquotePlain without the copy: the string points
// into v.
func borrowPlain(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	in := v[1 : len(v)-1]
	const lo8, hi8 = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(in); i += 8 {
		// A control byte or a backslash in the word (exact as a yes/no).
		x := binary.LittleEndian.Uint64(in[i:])
		b := x ^ lo8*'\\'
		if ((x-lo8*0x20)&^x|(b-lo8)&^b)&hi8 != 0 {
			return "", false
		}
	}
	for _, c := range in[i:] {
		if c == '\\' || c < 0x20 {
			return "", false
		}
	}
	return unsafe.String(unsafe.SliceData(in), len(in)), true
}

// WrapContext is what a wrapper (CloudWatch Logs payload) knows about the
// records inside it.
type WrapContext struct {
	owner, region, cluster string
}

// Decoder turns documents into events and counts what it does; one per
// stream (a file, a queue partition), not shared between goroutines.
type Decoder struct {
	emit    func(*pipeline.Event) error
	bad     func(RecordError)
	max     int
	read    map[pipeline.Source]int64
	skipped map[string]int64
	// emitErr is the first error returned by emit; it stops the read.
	emitErr error
	last    pipeline.Source
	lastN   int64
	// filter and filtered: see DecoderOptions.Filter.
	filter pipeline.RecordFilter
	// verdict is the filter's answer on the current record (Record resets it).
	verdict pipeline.Verdict
	// members indexes the record Record is decoding (RecordIndexed); nil
	// otherwise.
	members  []pipeline.Member
	filtered map[pipeline.Source]int64
	// outside counts the filtered records rejected for their time alone
	// (Verdict.Outside).
	outside int64
	// onFiltered is told of filtered records every filteredReport of
	// them (Flush reports the rest): a live count that costs the filter no
	// shared counter.
	onFiltered func(n int64)
	unreported int64
	// first and newest bound the event times of the valid records.
	first, newest time.Time
	kept          bool // the current record already passed the filter
	typBuf        []byte
	// latest is the newest plausible event time; zero disables the
	// range check.
	latest time.Time
	// formats is the registry, in detection order.
	formats []*Format
}

// DecoderOptions configure a Decoder.
type DecoderOptions struct {
	// Emit receives every event; an error stops decoding (see Err).
	Emit func(*pipeline.Event) error
	// Bad receives every record skipped, with its position and reason;
	// nil only counts them.
	Bad func(RecordError)
	// MaxRecordBytes caps one record; 0 means DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Filter, when set, is asked about each valid CloudTrail record once
	// its type and time are known and before the rest of the work;
	// records it rejects are counted as read and filtered, not emitted.
	// typ and raw (the record's JSON) are valid only during the call:
	// copy what you keep.
	// Its verdict on a kept record goes with the event (Event.Judged), and
	// a NoRaw verdict spares copying the record.
	Filter pipeline.RecordFilter
	// OnFiltered, when set, is told of the records the filter rejected,
	// a batch at a time as they add up and the rest at Flush: a progress
	// count that needs nothing shared per record.
	OnFiltered func(n int64)
	// Latest is the newest plausible event time (the run's start plus
	// MaxClockSkew): later records, and records before 2004, are skipped
	// as SkipTimeOutOfRange. Zero disables the check.
	Latest time.Time
}

// NewDecoder returns a Decoder with opts.
func NewDecoder(opts DecoderOptions) *Decoder {
	d := newDecoder(opts.Emit, opts.Bad, opts.MaxRecordBytes)
	d.filter, d.latest, d.onFiltered = opts.Filter, opts.Latest, opts.OnFiltered
	return d
}

// SetLatest moves the newest plausible event time (DecoderOptions.Latest):
// a long-running input calls it with time.Now().Add(MaxClockSkew) as time
// goes on.
func (d *Decoder) SetLatest(t time.Time) { d.latest = t }

// Decode decodes one document of any supported shape (see the package
// doc); Record in pos is the index of an element of a container.
func (d *Decoder) Decode(data []byte, pos pipeline.Position) {
	d.verdict = pipeline.Verdict{}
	d.decode(data, pos, nil, 0)
}

// Record decodes one record known to be an element of a container of
// src's records (a CloudTrail Records array takes a fast path).
func (d *Decoder) Record(data []byte, pos pipeline.Position, src pipeline.Source) {
	d.verdict = pipeline.Verdict{}
	if len(data) > d.max {
		d.reject(pos, src, SkipTooLarge, fmt.Sprintf("record exceeds %d bytes; skipped", d.max), data)
		return
	}
	if src != pipeline.SourceCloudTrail || !d.fastCloudTrail(data, pos) {
		d.members = nil // a wrapper's records are other bytes
		d.decode(data, pos, nil, 0)
	}
	d.members = nil
}

// RecordIndexed is Record for a record the reader indexed while finding
// its end (pipeline.IndexObject): the prefilter and the Filter read its
// members instead of scanning it again. members must index data.
func (d *Decoder) RecordIndexed(data []byte, members []pipeline.Member, pos pipeline.Position, src pipeline.Source) {
	d.members = members
	d.Record(data, pos, src)
}

// Reject counts a record skipped for reason (of a Skip* class) and
// reports it to Bad.
func (d *Decoder) Reject(pos pipeline.Position, src pipeline.Source, class, reason string, sample []byte) {
	d.reject(pos, src, class, reason, sample)
}

// Err is the first error Emit returned.
func (d *Decoder) Err() error { return d.emitErr }

// MaxRecordBytes is the cap on one record.
func (d *Decoder) MaxRecordBytes() int { return d.max }

// Counts returns the valid records per source (emitted or filtered), the
// filtered ones and the skipped ones per class, so far. The maps are the
// decoder's own; nil when empty.
func (d *Decoder) Counts() (read, filtered map[pipeline.Source]int64, skipped map[string]int64) {
	d.flushRead()
	return d.read, d.filtered, d.skipped
}

// Outside is how many of the filtered records the filter rejected for
// their time alone (Verdict.Outside).
func (d *Decoder) Outside() int64 { return d.outside }

// Span returns the earliest and the latest event time of the valid
// records (emitted or filtered); zero times when there were none.
func (d *Decoder) Span() (first, last time.Time) { return d.first, d.newest }

// Flush reports the filtered records not yet told to OnFiltered.
func (d *Decoder) Flush() {
	if d.onFiltered != nil && d.unreported > 0 {
		d.onFiltered(d.unreported)
		d.unreported = 0
	}
}

// filteredReport is how many filtered records OnFiltered hears of at once.
const filteredReport = 4096

// minEventTime is the earliest plausible event time: no AWS log format
// read here predates it, and anything before it is a damaged record.
var minEventTime = time.Date(2004, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxClockSkew is how far past the run's start an event time may lie.
const MaxClockSkew = 24 * time.Hour

// inRange reports whether t is a plausible event time, rejecting the
// record (with the bound it violates) if not. Times outside the range
// would be corrupted or refused further on (state, JSON output).
func (d *Decoder) inRange(t time.Time, pos pipeline.Position, src pipeline.Source, data []byte) bool {
	if d.latest.IsZero() {
		return true
	}
	switch {
	case t.Before(minEventTime):
		d.reject(pos, src, SkipTimeOutOfRange, fmt.Sprintf("event time %s is before %s, the earliest plausible event time; skipped",
			fmtTime(t), minEventTime.Format(time.RFC3339)), data)
		return false
	case t.After(d.latest):
		d.reject(pos, src, SkipTimeOutOfRange, fmt.Sprintf("event time %s is after %s, %s past the start of this run; skipped",
			fmtTime(t), d.latest.Format(time.RFC3339), MaxClockSkew), data)
		return false
	}
	return true
}

// fmtTime formats any time, even one RFC 3339 cannot hold.
func fmtTime(t time.Time) string {
	if y := t.Year(); y < 0 || y > 9999 {
		return t.String()
	}
	return t.Format(time.RFC3339Nano)
}

func newDecoder(emit func(*pipeline.Event) error, bad func(RecordError), max int) *Decoder {
	if max <= 0 {
		max = DefaultMaxRecordBytes
	}
	return &Decoder{emit: emit, bad: bad, max: max, formats: formats()}
}

// Decode decodes one JSON document of any supported shape (a record, an
// envelope, a container of records, a JSON array of any of them) and calls
// emit for every event and bad for every record skipped with a reason. It
// returns only an error from emit.
func Decode(data []byte, pos pipeline.Position, emit func(*pipeline.Event) error, bad func(RecordError)) error {
	d := newDecoder(emit, bad, 0)
	d.decode(data, pos, nil, 0)
	return d.emitErr
}

func (d *Decoder) skip(class string) {
	if d.skipped == nil {
		d.skipped = make(map[string]int64)
	}
	d.skipped[class]++
}

// reject reports a skipped record.
func (d *Decoder) reject(pos pipeline.Position, src pipeline.Source, class, reason string, sample []byte) {
	d.skip(class)
	if d.bad == nil {
		return
	}
	if len(sample) > SampleLen {
		sample = sample[:SampleLen]
	}
	d.bad(RecordError{Pos: pos, Source: src, Reason: reason, Class: class, Sample: bytes.Clone(sample)})
}

func (d *Decoder) send(ev *pipeline.Event) {
	if d.emitErr != nil || !d.inRange(ev.Time, ev.Pos, ev.Source, ev.Raw) {
		return
	}
	pipeline.CompleteEntity(&ev.Entity)
	if err := d.emit(ev); err != nil {
		d.emitErr = err
		return
	}
	d.count(ev.Source, ev.Time)
}

// count adds a valid record of src, timed t, to the read counters.
func (d *Decoder) count(src pipeline.Source, t time.Time) {
	if d.first.IsZero() || t.Before(d.first) {
		d.first = t
	}
	if t.After(d.newest) {
		d.newest = t
	}
	if d.last == src {
		d.lastN++
		return
	}
	d.flushRead()
	d.last, d.lastN = src, 1
}

// keep asks the filter about a valid record; a rejected one is counted as
// read and filtered.
func (d *Decoder) keep(src pipeline.Source, typ string, t time.Time, raw []byte) bool {
	if d.kept || d.filter == nil {
		return true
	}
	if d.verdict = d.filter(src, typ, t, pipeline.RawRecord{Data: raw, Members: d.members}); d.verdict.Keep {
		return true
	}
	d.count(src, t)
	if d.filtered == nil {
		d.filtered = make(map[pipeline.Source]int64)
	}
	d.filtered[src]++
	if d.verdict.Outside {
		d.outside++
	}
	if d.onFiltered != nil {
		if d.unreported++; d.unreported == filteredReport {
			d.onFiltered(d.unreported)
			d.unreported = 0
		}
	}
	return false
}

// flushRead moves the run-length count of the current source into read;
// counting runs keeps a map update off the per-event path.
func (d *Decoder) flushRead() {
	if d.lastN == 0 {
		return
	}
	if d.read == nil {
		d.read = make(map[pipeline.Source]int64)
	}
	d.read[d.last] += d.lastN
	d.lastN = 0
}

// decode dispatches one document to its format (see formats for the
// detection order).
func (d *Decoder) decode(data []byte, pos pipeline.Position, wc *WrapContext, depth int) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		d.reject(pos, "", SkipBadJSON, "empty record", nil)
		return
	}
	if depth > maxDepth {
		d.reject(pos, "", SkipUnsupported, "records nested too deeply", data)
		return
	}
	if len(data) > d.max {
		d.reject(pos, "", SkipTooLarge, fmt.Sprintf("record exceeds %d bytes", d.max), data)
		return
	}
	switch data[0] {
	case '[':
		d.decodeArray(data, pos, "", wc, depth)
		return
	case '{':
		if bytes.HasPrefix(data, eventVersionPrefix) && d.fastCloudTrail(data, pos) {
			return
		}
	default:
		d.reject(pos, "", SkipBadJSON, "not a JSON object or array", data)
		return
	}
	var u doc
	if err := unmarshalDoc(data, &u); err != nil {
		d.reject(pos, GuessSource(data), classOf(err), "invalid JSON: "+errText(err), data)
		return
	}
	f := detect(&u, d.formats)
	if f == nil {
		d.reject(pos, "", SkipUnrecognised, "unrecognised record: no known format matches", data)
		return
	}
	f.decode(d, &u, data, pos, wc, depth)
}

// decodeArray decodes each element of a JSON array as its own record;
// Record in the position is the element index.
func (d *Decoder) decodeArray(data []byte, pos pipeline.Position, src pipeline.Source, wc *WrapContext, depth int) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '[' {
		what := "records"
		if src == pipeline.SourceGuardDuty {
			what = "findings"
		} else if src == pipeline.SourceCloudTrail {
			what = "Records"
		}
		d.reject(pos, src, SkipInvalid, what+" is not an array", data)
		return
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		d.reject(pos, src, classOf(err), "invalid JSON array: "+errText(err), data)
		return
	}
	for i, e := range elems {
		if d.emitErr != nil {
			return
		}
		p := pos
		p.Record = i
		d.decode(e, p, wc, depth+1)
	}
}

// eventBridge handles an EventBridge envelope by its detail-type.
func (d *Decoder) eventBridge(u *doc, data []byte, pos pipeline.Position, wc *WrapContext, depth int) {
	dt := u.DetailType
	switch {
	case dt == "GuardDuty Finding":
		d.decodeTyped(u.Detail, pos, pipeline.SourceGuardDuty, depth)
	case strings.HasSuffix(dt, "via CloudTrail") && dt != "AWS Insight via CloudTrail":
		d.decodeTyped(u.Detail, pos, pipeline.SourceCloudTrail, depth)
	case u.Source == "aws.ecs" || strings.HasPrefix(dt, "ECS "):
		d.ecs(u, data, pos)
	default:
		d.reject(pos, "", SkipUnsupported, "unsupported event type "+dt, data)
	}
}

// decodeTyped decodes the detail of an envelope, which must be a record of
// the given source.
func (d *Decoder) decodeTyped(detail []byte, pos pipeline.Position, src pipeline.Source, depth int) {
	detail = bytes.TrimSpace(detail)
	if len(detail) == 0 || detail[0] != '{' {
		d.reject(pos, src, SkipInvalid, "EventBridge detail is not an object", detail)
		return
	}
	var u doc
	if err := unmarshalDoc(detail, &u); err != nil {
		d.reject(pos, src, classOf(err), "invalid JSON in detail: "+errText(err), detail)
		return
	}
	switch src {
	case pipeline.SourceGuardDuty:
		d.guardDuty(&u, detail, pos)
	case pipeline.SourceCloudTrail:
		d.cloudTrail(&u.ctFields, detail, pos)
	}
}

// --- helpers ---

// str returns the string held by a raw JSON value, or "" if it is not a
// string.
func str(raw []byte) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// scalar returns a string or number raw value as text ("" for others).
func scalar(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == '"' {
		return str(raw)
	}
	if c := raw[0]; c == '-' || (c >= '0' && c <= '9') {
		return string(raw)
	}
	return ""
}

// rawTime parses a raw JSON time: a string (ISO or numeric) or a number.
func rawTime(raw []byte) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, errors.New("missing")
	}
	if raw[0] == '"' {
		s := str(raw)
		return pipeline.ParseTimeString(s)
	}
	if c := raw[0]; c == '-' || (c >= '0' && c <= '9') {
		return pipeline.ParseTimeString(string(raw))
	}
	return time.Time{}, fmt.Errorf("not a time: %s", clip(raw, 40))
}

func rawBool(raw []byte) bool {
	s := string(bytes.TrimSpace(raw))
	return s == "true" || s == `"true"`
}

func rawFloat(raw []byte) (float64, bool) {
	s := scalar(raw)
	if s == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// hashID is a stable content ID: the first 128 bits of a SHA-256 in hex.
func hashID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// classOf tells bad JSON from JSON of the wrong types.
func classOf(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return SkipInvalid
	}
	return SkipBadJSON
}

func errText(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// GuessSource names the likely source of a record that failed to decode,
// from cheap substring checks, for dead-letter routing.
func GuessSource(b []byte) pipeline.Source {
	head := b
	if len(head) > 4096 {
		head = head[:4096]
	}
	switch {
	case bytes.Contains(head, []byte(`"eventSource"`)) || bytes.Contains(head, []byte(`"Records"`)):
		return pipeline.SourceCloudTrail
	case bytes.Contains(head, []byte(`"schemaVersion"`)) || bytes.Contains(head, []byte(`GuardDuty`)):
		return pipeline.SourceGuardDuty
	case bytes.Contains(head, []byte(`"output_fields"`)):
		return pipeline.SourceFalco
	case bytes.Contains(head, []byte(`"TaskId"`)) || bytes.Contains(head, []byte(`"ClusterName"`)):
		return pipeline.SourceContainerInsights
	}
	return ""
}

// rawCopy keeps the record bytes for Event.Raw (never aliasing a buffer).
func rawCopy(b []byte) json.RawMessage {
	return bytes.Clone(bytes.TrimSpace(b))
}
