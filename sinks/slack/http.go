package slack

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// webhookPermanent are the webhook answers retrying cannot fix: a refused
// payload, or a webhook that is gone. Every other 4xx but 429 is treated
// the same way; 5xx and transport errors are retried.
var webhookPermanent = map[string]bool{
	"invalid_payload": true, "invalid_blocks": true, "invalid_blocks_format": true, "channel_not_found": true,
	"channel_is_archived": true, "action_prohibited": true, "invalid_token": true, "no_service": true,
	"no_service_id": true, "no_team": true, "team_disabled": true, "no_active_hooks": true, "user_not_found": true,
	"no_text": true, "too_many_attachments": true, "posting_to_general_channel_denied": true,
}

// apiRetryable are the Web API errors worth another attempt; the rest
// (invalid_auth, channel_not_found, is_archived, invalid_blocks,
// msg_too_long, missing_scope, …) are permanent.
var apiRetryable = map[string]bool{
	"ratelimited": true, "rate_limited": true, "internal_error": true, "fatal_error": true,
	"service_unavailable": true, "request_timeout": true, "team_added_to_org": true,
}

// postWebhook sends m to the webhook; Slack answers a plain-text "ok" or
// an error string with its status code.
func (s *Sink) postWebhook(ctx context.Context, m *message) error {
	status, hdr, body, err := s.post(ctx, s.webhook.v, "", m)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	msg := strings.TrimSpace(string(body))
	switch {
	case status == http.StatusOK && msg == "ok":
		return nil
	case status == http.StatusTooManyRequests:
		return &pipeline.RetryAfterError{After: retryAfter(hdr), Err: fmt.Errorf("webhook: HTTP 429 %s", short(msg))}
	case status >= 500 || status == http.StatusOK:
		return fmt.Errorf("webhook: HTTP %d %s", status, short(msg))
	case webhookPermanent[msg] || status >= 400:
		return pipeline.Permanent(fmt.Errorf("webhook: HTTP %d %s", status, short(msg)))
	}
	return fmt.Errorf("webhook: HTTP %d %s", status, short(msg))
}

// apiAnswer is the part of a Web API answer the sink reads.
type apiAnswer struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
	TS      string `json:"ts"`
	Channel string `json:"channel"`
}

// call invokes a Web API method with m as its JSON body. Slack answers
// HTTP 200 with ok false for errors, and 429 with Retry-After when
// throttled.
func (s *Sink) call(ctx context.Context, method string, m *message) (apiAnswer, error) {
	var a apiAnswer
	status, hdr, body, err := s.post(ctx, s.baseURL+"/"+method, s.token.v, m)
	if err != nil {
		return a, fmt.Errorf("%s: %w", method, err)
	}
	jerr := json.Unmarshal(body, &a)
	switch {
	case status == http.StatusTooManyRequests:
		return a, &pipeline.RetryAfterError{After: retryAfter(hdr), Err: fmt.Errorf("%s: HTTP 429 %s", method, cmp.Or(a.Error, "ratelimited"))}
	case status >= 500:
		return a, fmt.Errorf("%s: HTTP %d %s", method, status, cmp.Or(a.Error, short(string(body))))
	case status != http.StatusOK:
		return a, pipeline.Permanent(fmt.Errorf("%s: HTTP %d %s", method, status, cmp.Or(a.Error, short(string(body)))))
	case jerr != nil:
		return a, fmt.Errorf("%s: answer is not JSON: %s", method, short(string(body)))
	case a.OK:
		return a, nil
	case apiRetryable[a.Error]:
		return a, fmt.Errorf("%s: %s", method, a.Error)
	}
	return a, pipeline.Permanent(fmt.Errorf("%s: %s", method, cmp.Or(a.Error, "ok false without an error")))
}

// post sends m as JSON to target. Errors never contain target (a webhook
// URL is a secret) nor the token.
func (s *Sink) post(ctx context.Context, target, token string, m *message) (int, http.Header, []byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return 0, nil, nil, pipeline.Permanent(fmt.Errorf("encoding the message: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, pipeline.Permanent(errors.New("building the request failed"))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, nil, scrub(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading the answer: %w", scrub(err))
	}
	return resp.StatusCode, resp.Header, b, nil
}

// scrub drops the URL a transport error quotes.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// retryAfter reads Retry-After (seconds or an HTTP date); 1s without one.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return time.Second
}

// short bounds what an answer puts into an error.
func short(s string) string {
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}
