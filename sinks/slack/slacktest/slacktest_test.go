package slacktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, url string, v any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, out.String()
}

// The fake refuses what Slack refuses: without that, the limit tests
// below would prove nothing.
func TestFakeSlackRefusesOverLimits(t *testing.T) {
	f := New(t)
	sec := func(n int) map[string]any {
		return map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": strings.Repeat("x", n)}}
	}
	many := func(n int, b map[string]any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = b
		}
		return out
	}
	field := map[string]any{"type": "mrkdwn", "text": "f"}
	for _, c := range []struct {
		name   string
		blocks []any
		want   int
	}{
		{"50 blocks", many(50, sec(1)), 200},
		{"51 blocks", many(51, sec(1)), 400},
		{"3000-char section", []any{sec(3000)}, 200},
		{"3001-char section", []any{sec(3001)}, 400},
		{"150-char header", []any{map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": strings.Repeat("é", 150)}}}, 200},
		{"151-char header", []any{map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": strings.Repeat("é", 151)}}}, 400},
		{"10 fields", []any{map[string]any{"type": "section", "fields": many(10, field)}}, 200},
		{"11 fields", []any{map[string]any{"type": "section", "fields": many(11, field)}}, 400},
	} {
		status, body := post(t, f.WebhookURL(), map[string]any{"text": "t", "blocks": c.blocks})
		if status != c.want || (c.want == 400 && body != "invalid_blocks") || (c.want == 200 && body != "ok") {
			t.Errorf("%s: %d %q, want %d", c.name, status, body, c.want)
		}
	}
	if msgs, n := f.Messages(), f.Requests(); len(msgs) != 4 || n != 8 {
		t.Fatalf("%d accepted of %d requests, want 4 of 8", len(msgs), n)
	}
}

// With a delay, a message is taken before the answer is written: a
// client that gives up in the wait has posted it all the same.
func TestDelayedAnswerAfterTheMessageIsTaken(t *testing.T) {
	f := New(t)
	f.SetDelay(0, time.Minute)
	body := `{"text":"t","blocks":[{"type":"header","block_id":"inc:inc-1","text":{"type":"plain_text","text":"h"}}]}`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for len(f.Messages()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.WebhookURL(), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want the cancellation", err)
	}
	msgs := f.Messages()
	if len(msgs) != 1 || msgs[0].Incident != "inc-1" || !msgs[0].IsAlert() || f.Requests() != 1 {
		t.Fatalf("%+v after %d requests", msgs, f.Requests())
	}
}

// A request whose client goes away before it was taken is dropped.
func TestClientGoneBeforeTheMessageIsTaken(t *testing.T) {
	f := New(t)
	f.SetDelay(time.Minute, 0)
	body := `{"text":"t","blocks":[{"type":"header","block_id":"inc:inc-1","text":{"type":"plain_text","text":"h"}}]}`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for f.Requests() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.WebhookURL(), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want the cancellation", err)
	}
	time.Sleep(50 * time.Millisecond)
	if msgs := f.Messages(); len(msgs) != 0 || f.Requests() != 1 {
		t.Fatalf("%+v after %d requests", msgs, f.Requests())
	}
}

// Stall holds the chosen requests until their client goes away: the
// second is never taken, the third is taken but never answered.
func TestStall(t *testing.T) {
	f := New(t)
	f.Stall(2, 3)
	send := func(id string) error {
		body := `{"text":"t","blocks":[{"type":"header","block_id":"inc:` + id + `","text":{"type":"plain_text","text":"h"}}]}`
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n := f.Requests()
		go func() {
			for f.Requests() == n {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
			cancel()
		}()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.WebhookURL(), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	for i, want := range []error{nil, context.Canceled, context.Canceled, nil} {
		if err := send(fmt.Sprint("inc-", i+1)); !errors.Is(err, want) {
			t.Fatalf("request %d: %v, want %v", i+1, err, want)
		}
	}
	var got []string
	for _, m := range f.Messages() {
		got = append(got, m.Incident)
	}
	if strings.Join(got, " ") != "inc-1 inc-3 inc-4" || f.Requests() != 4 {
		t.Fatalf("taken %v of %d requests", got, f.Requests())
	}
}
