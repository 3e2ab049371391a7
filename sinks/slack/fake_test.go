package slack

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// fakeSlack answers like Slack: an incoming webhook (plain-text "ok", or
// an error string with its status code) and the Web API's
// chat.postMessage and chat.update (HTTP 200 with ok false for errors),
// 429 with Retry-After when throttling, and invalid_blocks for any payload
// over a Block Kit limit.
type fakeSlack struct {
	t     *testing.T
	srv   *httptest.Server
	hook  string // the webhook path (its last part is the secret)
	token string

	mu          sync.Mutex
	down        int               // answer every request with this status (5xx) while set
	throttle    int               // answer this many next requests with 429
	refuse      map[string]string // incident id → error string to refuse its messages with
	requests    int
	msgs        []gotMsg // accepted, in order
	tops        map[string]*gotMsg
	ts          int
	badText     int  // accepted messages without a text fallback
	failUpdates int  // answer this many next chat.update calls with 502
	hangup      bool // close connections without an answer
	failures    int  // requests answered with an outage (5xx, 429, hang-up)
}

type gotMsg struct {
	Kind     string // webhook, post, reply, update
	Incident string
	TS       string
	ThreadTS string
	Channel  string
	Broad    bool
	Text     string
	Blocks   []wireBlock
}

type wireText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type wireBlock struct {
	Type     string     `json:"type"`
	BlockID  string     `json:"block_id"`
	Text     *wireText  `json:"text"`
	Fields   []wireText `json:"fields"`
	Elements []wireText `json:"elements"`
}

type wireMsg struct {
	Channel        string      `json:"channel"`
	TS             string      `json:"ts"`
	ThreadTS       string      `json:"thread_ts"`
	ReplyBroadcast bool        `json:"reply_broadcast"`
	Text           string      `json:"text"`
	Blocks         []wireBlock `json:"blocks"`
}

const hookSecret = "XXsecretWEBHOOKpartXXXXXX"

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{t: t, hook: "/services/T00000000/B00000000/" + hookSecret, token: "xoxb-1111-2222-SECRETtokenPART", refuse: map[string]string{}, tops: map[string]*gotMsg{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+f.hook, f.webhook)
	mux.HandleFunc("POST /api/chat.postMessage", func(w http.ResponseWriter, r *http.Request) { f.api(w, r, "post") })
	mux.HandleFunc("POST /api/chat.update", func(w http.ResponseWriter, r *http.Request) { f.api(w, r, "update") })
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSlack) webhookURL() string { return f.srv.URL + f.hook }

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

var webhookStatus = map[string]int{
	"invalid_payload": 400, "invalid_blocks": 400, "action_prohibited": 403, "invalid_token": 403,
	"channel_not_found": 404, "channel_is_archived": 410, "rollup_error": 500,
}

func (f *fakeSlack) webhook(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if f.hangup {
		f.failures++
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	plain := func(status int, body string) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	if f.throttle > 0 {
		f.failures++
		f.throttle--
		w.Header().Set("Retry-After", "7")
		plain(429, "rate_limited")
		return
	}
	if f.down != 0 {
		f.failures++
		plain(f.down, "service_unavailable")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		plain(400, "invalid_payload")
		return
	}
	var m wireMsg
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		plain(400, "invalid_payload")
		return
	}
	if e := checkBlocks(&m); e != "" {
		plain(400, e)
		return
	}
	id := incidentOf(&m)
	if e := f.refuse[id]; e != "" {
		plain(webhookStatus[e], e)
		return
	}
	if m.Text == "" {
		f.badText++
	}
	kind := "webhook"
	f.msgs = append(f.msgs, gotMsg{Kind: kind, Incident: id, Text: m.Text, Blocks: m.Blocks})
	plain(200, "ok")
}

func (f *fakeSlack) api(w http.ResponseWriter, r *http.Request, method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if f.hangup {
		f.failures++
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	answer := func(status int, v map[string]any) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(e string) { answer(200, map[string]any{"ok": false, "error": e}) }
	if f.throttle > 0 {
		f.failures++
		f.throttle--
		w.Header().Set("Retry-After", "7")
		answer(429, map[string]any{"ok": false, "error": "ratelimited"})
		return
	}
	if f.down != 0 {
		f.failures++
		w.WriteHeader(f.down)
		io.WriteString(w, "<html>upstream unavailable</html>")
		return
	}
	if method == "update" && f.failUpdates > 0 {
		f.failUpdates--
		w.WriteHeader(502)
		return
	}
	switch auth := r.Header.Get("Authorization"); {
	case auth == "":
		fail("not_authed")
		return
	case auth != "Bearer "+f.token:
		fail("invalid_auth")
		return
	}
	var m wireMsg
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		fail("invalid_json")
		return
	}
	switch {
	case m.Channel == "":
		fail("channel_not_found")
		return
	case m.Channel == "C_ARCHIVED":
		fail("is_archived")
		return
	}
	if e := checkBlocks(&m); e != "" {
		fail(e)
		return
	}
	id := incidentOf(&m)
	if e := f.refuse[id]; e != "" {
		fail(e)
		return
	}
	if m.Text == "" {
		f.badText++
	}
	g := gotMsg{Incident: id, Channel: "C0CHANNEL", ThreadTS: m.ThreadTS, Broad: m.ReplyBroadcast, Text: m.Text, Blocks: m.Blocks}
	switch {
	case method == "update":
		top := f.tops[m.TS]
		if top == nil {
			fail("message_not_found")
			return
		}
		g.Kind, g.TS = "update", m.TS
		top.Blocks, top.Text = m.Blocks, m.Text
	case m.ThreadTS != "":
		if f.tops[m.ThreadTS] == nil {
			fail("thread_not_found")
			return
		}
		f.ts++
		g.Kind, g.TS = "reply", fmt.Sprintf("1767323045.%06d", f.ts)
	default:
		f.ts++
		g.Kind, g.TS = "post", fmt.Sprintf("1767323045.%06d", f.ts)
		top := g
		f.tops[g.TS] = &top
	}
	f.msgs = append(f.msgs, g)
	answer(200, map[string]any{"ok": true, "channel": "C0CHANNEL", "ts": g.TS})
}

// got returns the accepted messages and the number of requests.
func (f *fakeSlack) got() ([]gotMsg, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]gotMsg(nil), f.msgs...), f.requests
}

func (f *fakeSlack) set(fn func(f *fakeSlack)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// failed reports whether at least n requests met the outage.
func (f *fakeSlack) failed(n int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failures >= n
}
