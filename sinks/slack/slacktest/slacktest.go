// Package slacktest is an httptest server that answers like Slack, for
// tests of the Slack sink and of whatever runs it (the ecscorr binary): an
// incoming webhook (a plain-text "ok", or an error string with its status
// code) and the Web API's chat.postMessage and chat.update (HTTP 200 with
// ok false for errors), 429 with Retry-After when throttling, and
// invalid_blocks for any payload over a Block Kit limit.
//
// Every accepted message is recorded with the incident it is about (read
// from its block ids, as the sink writes them). A Server is safe for
// concurrent use.
package slacktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ecscorr/ecscorr/sinks/internal/sinktest"
)

// WebhookSecret is the secret last part of the webhook's path: a test may
// check that no log line or error holds it.
const WebhookSecret = "XXsecretWEBHOOKpartXXXXXX"

// Token is the bot token the Web API accepts.
const Token = "xoxb-1111-2222-SECRETtokenPART"

// Channel is the channel id answers name; ArchivedChannel is refused
// with is_archived.
const (
	Channel         = "C0CHANNEL"
	ArchivedChannel = "C_ARCHIVED"
)

// Message kinds.
const (
	KindWebhook = "webhook" // through the incoming webhook
	KindPost    = "post"    // chat.postMessage to the channel
	KindReply   = "reply"   // chat.postMessage in a thread
	KindUpdate  = "update"  // chat.update of a posted message
)

// Text is a Block Kit text object.
type Text struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Block is the part of a Block Kit block the server checks and records.
type Block struct {
	Type     string `json:"type"`
	BlockID  string `json:"block_id"`
	Text     *Text  `json:"text"`
	Fields   []Text `json:"fields"`
	Elements []Text `json:"elements"`
}

// Message is one message the server accepted.
type Message struct {
	Kind     string // KindWebhook, KindPost, KindReply or KindUpdate
	Incident string // from the block ids ("inc:<id>" or "upd:<id>"); "" if none
	TS       string // the message's ts (Web API); of the edited message for an update
	ThreadTS string // the thread replied in
	Channel  string
	Broad    bool // a reply also broadcast to the channel
	Text     string
	Blocks   []Block
}

// IsAlert reports whether m is an incident's top-level alert: a message
// posted to the channel, or a webhook message that opens with a header
// block. Follow-ups (a webhook "Update" section, a thread reply) and edits
// are not alerts.
func (m *Message) IsAlert() bool {
	return m.Kind == KindPost || (m.Kind == KindWebhook && len(m.Blocks) > 0 && m.Blocks[0].Type == "header")
}

type wireMsg struct {
	Channel        string  `json:"channel"`
	TS             string  `json:"ts"`
	ThreadTS       string  `json:"thread_ts"`
	ReplyBroadcast bool    `json:"reply_broadcast"`
	Text           string  `json:"text"`
	Blocks         []Block `json:"blocks"`
}

const hookPath = "/services/T00000000/B00000000/" + WebhookSecret

// Server is the fake Slack.
type Server struct {
	srv *httptest.Server

	mu          sync.Mutex
	before      time.Duration     // wait before a request is taken
	after       time.Duration     // wait after it was taken, before the answer
	stallTake   int               // hold this request (1-based) untaken until its client is gone
	stallAnswer int               // hold the answer to this request until its client is gone
	down        int               // answer every request with this status while set
	throttle    int               // answer this many next requests with 429
	refuse      map[string]string // incident id → error string to refuse its messages with
	requests    int
	msgs        []Message // accepted, in order
	tops        map[string]*Message
	ts          int
	noText      int  // accepted messages without a text fallback
	failUpdates int  // answer this many next chat.update calls with 502
	hangup      bool // close connections without an answer
	failures    int  // requests answered with an outage (5xx, 429, hang-up)
}

// New starts a server, closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{refuse: map[string]string{}, tops: map[string]*Message{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+hookPath, func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, s.webhook) })
	mux.HandleFunc("POST /api/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, func(r *http.Request) reply { return s.api(r, KindPost) })
	})
	mux.HandleFunc("POST /api/chat.update", func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, func(r *http.Request) reply { return s.api(r, KindUpdate) })
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// WebhookURL is the incoming webhook's URL (a secret, as Slack's are).
func (s *Server) WebhookURL() string { return s.srv.URL + hookPath }

// APIURL is the Web API's base URL (the sink's BaseURL).
func (s *Server) APIURL() string { return s.srv.URL + "/api" }

// SetDelay makes every request wait before until it is taken (recorded,
// if accepted), and its answer wait after once it was; a wait ends early
// when the client goes away, and a request whose client went away before
// it was taken is dropped. A client stopped in the first wait has posted
// nothing; stopped in the second, it has posted but does not know it.
func (s *Server) SetDelay(before, after time.Duration) {
	s.with(func() { s.before, s.after = before, after })
}

// SetDown answers every request with status (a 5xx) until called with 0.
func (s *Server) SetDown(status int) { s.with(func() { s.down = status }) }

// Stall holds the take-th request received (counting from 1, as
// Requests does) before it is taken, and the answer to the answer-th
// request after it was taken, each until its client goes away; 0 holds
// none. A test kills the client in the hold: at a known point between a
// send and its acknowledgement.
func (s *Server) Stall(take, answer int) {
	s.with(func() { s.stallTake, s.stallAnswer = take, answer })
}

// SetHangup makes the server close every connection without an answer
// while on.
func (s *Server) SetHangup(on bool) { s.with(func() { s.hangup = on }) }

// Throttle answers the next n requests with 429 and Retry-After: 7.
func (s *Server) Throttle(n int) { s.with(func() { s.throttle = n }) }

// FailUpdates answers the next n chat.update calls with a bare 502.
func (s *Server) FailUpdates(n int) { s.with(func() { s.failUpdates = n }) }

// Refuse refuses every message about incident with the Slack error e
// (invalid_blocks, channel_not_found, rollup_error, ...); "" stops.
func (s *Server) Refuse(incident, e string) {
	s.with(func() {
		if e == "" {
			delete(s.refuse, incident)
		} else {
			s.refuse[incident] = e
		}
	})
}

// Messages returns the accepted messages, in the order they were taken.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Requests is the number of requests received, accepted or not (counted
// before the delay of SetDelay).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Failures is the number of requests answered with an outage (5xx, 429,
// a hang-up).
func (s *Server) Failures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures
}

// WithoutText is the number of accepted messages without a text fallback.
func (s *Server) WithoutText() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noText
}

// Shown returns the top-level message posted with ts as it now reads,
// after every chat.update of it.
func (s *Server) Shown(ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.tops[ts]
	if m == nil {
		return Message{}, false
	}
	return *m, true
}

// WebhookStatus is the status code the webhook answers the error e with.
func WebhookStatus(e string) int {
	if st, ok := webhookStatus[e]; ok {
		return st
	}
	return http.StatusBadRequest
}

var webhookStatus = map[string]int{
	"invalid_payload": 400, "invalid_blocks": 400, "action_prohibited": 403, "invalid_token": 403,
	"channel_not_found": 404, "channel_is_archived": 410, "rollup_error": 500,
}

func (s *Server) with(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

// reply is an answer decided under the lock and written after the delay.
type reply struct {
	hangup bool
	status int
	header map[string]string
	body   string
}

// serve takes a request with handle, between the delays.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, handle func(*http.Request) reply) {
	s.mu.Lock()
	s.requests++
	before, after := s.before, s.after
	if s.requests == s.stallTake {
		before = sinktest.Forever
	}
	if s.requests == s.stallAnswer {
		after = sinktest.Forever
	}
	s.mu.Unlock()
	// Read first: only then does the server notice a client that goes
	// away (the request's context ends).
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !sinktest.Pause(r.Context(), before) {
		return // the client is gone
	}
	rp := handle(r)
	if !sinktest.Pause(r.Context(), after) {
		return
	}
	if rp.hangup {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	for k, v := range rp.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rp.status)
	io.WriteString(w, rp.body)
}

func plain(status int, body string) reply {
	return reply{status: status, header: map[string]string{"Content-Type": "text/html"}, body: body}
}

func jsonReply(status int, v map[string]any) reply {
	b, _ := json.Marshal(v)
	return reply{status: status, header: map[string]string{"Content-Type": "application/json; charset=utf-8"}, body: string(b) + "\n"}
}

// checkBlocks applies Slack's Block Kit limits.
func checkBlocks(m *wireMsg) string {
	if len(m.Blocks) == 0 && m.Text == "" {
		return "no_text"
	}
	if len(m.Blocks) > 50 {
		return "invalid_blocks"
	}
	n := utf8.RuneCountInString
	for _, b := range m.Blocks {
		switch b.Type {
		case "header":
			if b.Text == nil || b.Text.Type != "plain_text" || n(b.Text.Text) > 150 || b.Text.Text == "" {
				return "invalid_blocks"
			}
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				return "invalid_blocks"
			}
			if b.Text != nil && (n(b.Text.Text) > 3000 || b.Text.Text == "") {
				return "invalid_blocks"
			}
			if len(b.Fields) > 10 {
				return "invalid_blocks"
			}
			for _, fl := range b.Fields {
				if n(fl.Text) > 2000 || fl.Text == "" {
					return "invalid_blocks"
				}
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > 10 {
				return "invalid_blocks"
			}
			for _, e := range b.Elements {
				if n(e.Text) > 2000 {
					return "invalid_blocks"
				}
			}
		default:
			return "invalid_blocks"
		}
		if len(b.BlockID) > 255 {
			return "invalid_blocks"
		}
	}
	if n(m.Text) > 40000 {
		return "msg_too_long"
	}
	return ""
}

// incidentOf reads the incident id a message is about from its block ids.
func incidentOf(m *wireMsg) string {
	for _, b := range m.Blocks {
		for _, p := range []string{"inc:", "upd:"} {
			if id, ok := strings.CutPrefix(b.BlockID, p); ok {
				return id
			}
		}
	}
	return ""
}

func (s *Server) webhook(r *http.Request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hangup {
		s.failures++
		return reply{hangup: true}
	}
	if s.throttle > 0 {
		s.failures++
		s.throttle--
		rp := plain(429, "rate_limited")
		rp.header["Retry-After"] = "7"
		return rp
	}
	if s.down != 0 {
		s.failures++
		return plain(s.down, "service_unavailable")
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return plain(400, "invalid_payload")
	}
	var m wireMsg
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		return plain(400, "invalid_payload")
	}
	if e := checkBlocks(&m); e != "" {
		return plain(400, e)
	}
	id := incidentOf(&m)
	if e := s.refuse[id]; e != "" {
		return plain(WebhookStatus(e), e)
	}
	if m.Text == "" {
		s.noText++
	}
	s.msgs = append(s.msgs, Message{Kind: KindWebhook, Incident: id, Text: m.Text, Blocks: m.Blocks})
	return plain(200, "ok")
}

func (s *Server) api(r *http.Request, method string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hangup {
		s.failures++
		return reply{hangup: true}
	}
	fail := func(e string) reply { return jsonReply(200, map[string]any{"ok": false, "error": e}) }
	if s.throttle > 0 {
		s.failures++
		s.throttle--
		rp := jsonReply(429, map[string]any{"ok": false, "error": "ratelimited"})
		rp.header["Retry-After"] = "7"
		return rp
	}
	if s.down != 0 {
		s.failures++
		return reply{status: s.down, body: "<html>upstream unavailable</html>"}
	}
	if method == KindUpdate && s.failUpdates > 0 {
		s.failUpdates--
		return reply{status: 502}
	}
	switch auth := r.Header.Get("Authorization"); {
	case auth == "":
		return fail("not_authed")
	case auth != "Bearer "+Token:
		return fail("invalid_auth")
	}
	var m wireMsg
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		return fail("invalid_json")
	}
	switch m.Channel {
	case "":
		return fail("channel_not_found")
	case ArchivedChannel:
		return fail("is_archived")
	}
	if e := checkBlocks(&m); e != "" {
		return fail(e)
	}
	id := incidentOf(&m)
	if e := s.refuse[id]; e != "" {
		return fail(e)
	}
	g := Message{Incident: id, Channel: Channel, ThreadTS: m.ThreadTS, Broad: m.ReplyBroadcast, Text: m.Text, Blocks: m.Blocks}
	switch {
	case method == KindUpdate:
		top := s.tops[m.TS]
		if top == nil {
			return fail("message_not_found")
		}
		g.Kind, g.TS = KindUpdate, m.TS
		top.Blocks, top.Text = m.Blocks, m.Text
	case m.ThreadTS != "":
		if s.tops[m.ThreadTS] == nil {
			return fail("thread_not_found")
		}
		s.ts++
		g.Kind, g.TS = KindReply, fmt.Sprintf("1767323045.%06d", s.ts)
	default:
		s.ts++
		g.Kind, g.TS = KindPost, fmt.Sprintf("1767323045.%06d", s.ts)
		top := g
		s.tops[g.TS] = &top
	}
	if m.Text == "" {
		s.noText++
	}
	s.msgs = append(s.msgs, g)
	return jsonReply(200, map[string]any{"ok": true, "channel": Channel, "ts": g.TS})
}
