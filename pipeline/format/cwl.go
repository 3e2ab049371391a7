package format

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"

	json "github.com/goccy/go-json"
	kgzip "github.com/klauspost/compress/gzip"

	"github.com/ecscorr/ecscorr/pipeline"
)

// LogEvent is one event of a subscription payload (id, timestamp, message)
// or of filter-log-events output (also logStreamName, eventId).
type LogEvent struct {
	Message       json.RawMessage `json:"message"`
	LogStreamName string          `json:"logStreamName"`
}

// ParseLogEvent decodes one element of a streamed logEvents or events
// array (its message is copied), rejecting it if it is not a log event.
func (d *Decoder) ParseLogEvent(v []byte, pos pipeline.Position) (LogEvent, bool) {
	var le LogEvent
	if err := json.Unmarshal(v, &le); err != nil {
		d.reject(pos, "", classOf(err), "CloudWatch Logs event: "+errText(err), v)
		return LogEvent{}, false
	}
	le.Message = bytes.Clone(le.Message)
	return le, true
}

// subscription decodes a CloudWatch Logs subscription payload.
func (d *Decoder) subscription(u *doc, data []byte, pos pipeline.Position, depth int) {
	wc, ok := d.SubscriptionContext(u.MessageType, u.Owner, u.LogGroup, u.LogStream, data, pos)
	if ok {
		d.logEvents(u.LogEvents, wc, pos, depth)
	}
}

// SubscriptionContext is what a CloudWatch Logs subscription payload's
// members say about its log events; it reports false (having counted
// why) when the payload holds no records. data is the payload's sample.
func (d *Decoder) SubscriptionContext(messageType, owner, logGroup, logStream string, data []byte, pos pipeline.Position) (*WrapContext, bool) {
	switch messageType {
	case "CONTROL_MESSAGE":
		// Sent once to check the destination is reachable; not a record.
		d.skip(SkipControlMessage)
		return nil, false
	case "DATA_MESSAGE", "":
	default:
		d.reject(pos, "", SkipUnsupported, "unsupported CloudWatch Logs messageType "+messageType, data)
		return nil, false
	}
	wc := &WrapContext{owner: owner, region: regionIn(logStream), cluster: clusterFromLogGroup(logGroup)}
	if wc.region == "" {
		wc.region = regionIn(logGroup)
	}
	return wc, true
}

// filterLogEvents decodes `aws logs filter-log-events` output.
func (d *Decoder) filterLogEvents(u *doc, pos pipeline.Position, depth int) {
	d.logEvents(u.Events, &WrapContext{}, pos, depth)
}

func (d *Decoder) logEvents(raw []byte, wc *WrapContext, pos pipeline.Position, depth int) {
	var evs []LogEvent
	if err := json.Unmarshal(raw, &evs); err != nil {
		d.reject(pos, "", classOf(err), "CloudWatch Logs events: "+errText(err), raw)
		return
	}
	d.logEventBatch(evs, func(i int) pipeline.Position { p := pos; p.Record = i; return p }, wc, depth)
}

// LogEventBatch decodes the messages of one batch of log events (a
// payload, or as much of a streamed one as fits in memory) with the
// context of their wrapper (nil: none); posOf gives the position of
// event i.
func (d *Decoder) LogEventBatch(evs []LogEvent, posOf func(int) pipeline.Position, wc *WrapContext) {
	if wc == nil {
		wc = &WrapContext{}
	}
	d.logEventBatch(evs, posOf, wc, 0)
}

func (d *Decoder) logEventBatch(evs []LogEvent, posOf func(int) pipeline.Position, wc *WrapContext, depth int) {
	if wc.region == "" || wc.owner == "" {
		// One log group lives in one account and region: Container
		// Insights Task events in the same batch say which.
		cc := *wc
		for i := range evs {
			if cc.region == "" {
				cc.region = regionAt(memberString(evs[i].Message, `\"Region\":\"`))
			}
			if cc.owner == "" {
				cc.owner = accountID(memberString(evs[i].Message, `\"AccountID\":\"`))
			}
		}
		wc = &cc
	}
	for i := range evs {
		if d.emitErr != nil {
			return
		}
		p := posOf(i)
		msg := str(evs[i].Message)
		if msg == "" {
			d.reject(p, "", SkipInvalid, "log event without a string message", evs[i].Message)
			continue
		}
		c := wc
		if c.region == "" && evs[i].LogStreamName != "" {
			if r := regionIn(evs[i].LogStreamName); r != "" {
				cc := *wc
				cc.region = r
				c = &cc
			}
		}
		d.decode([]byte(msg), p, c, depth+1)
	}
}

// memberString finds key (as escaped inside a JSON string) in raw and
// returns the text up to the next escaped quote.
func memberString(raw []byte, key string) string {
	i := bytes.Index(raw, []byte(key))
	if i < 0 {
		return ""
	}
	rest := raw[i+len(key):]
	j := bytes.Index(rest, []byte(`\"`))
	if j < 0 || j > 64 {
		return ""
	}
	return string(rest[:j])
}

// accountID returns s if it is a 12-digit account id.
func accountID(s string) string {
	if len(s) != 12 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return ""
		}
	}
	return s
}

// lambdaLogs decodes Lambda's {"awslogs":{"data":"<base64 gzip>"}}.
func (d *Decoder) lambdaLogs(raw []byte, pos pipeline.Position, depth int) {
	var a struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal(raw, &a); err != nil || a.Data == "" {
		d.reject(pos, "", SkipInvalid, "awslogs without a data string", raw)
		return
	}
	zipped, err := base64.StdEncoding.DecodeString(a.Data)
	if err != nil {
		d.reject(pos, "", SkipInvalid, "awslogs data is not base64: "+err.Error(), raw)
		return
	}
	payload, err := gunzipCapped(zipped, d.max)
	if err != nil {
		d.reject(pos, "", SkipInvalid, "awslogs data: "+err.Error(), raw)
		return
	}
	d.decode(payload, pos, nil, depth+1)
}

// gunzipCapped inflates a gzip blob (or returns plain data as is), refusing
// more than max bytes of output.
func gunzipCapped(b []byte, max int) ([]byte, error) {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b, nil
	}
	zr, err := kgzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if len(out) > max {
		return nil, fmt.Errorf("record exceeds %d bytes once decompressed", max)
	}
	return out, nil
}
