package main

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

func newHandler(w io.Writer, format string, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}

// secretPatterns are shapes of secrets that may turn up in an error from a
// library (a URL in a transport error): Slack webhooks and tokens.
var secretPatterns = regexp.MustCompile(`https://hooks\.slack\.com/[^\s"']+|xox[abposr]-[A-Za-z0-9-]+`)

// redactor is a slog.Handler that never lets a configured secret (a value
// ${ENV} put into the config) or a Slack webhook URL or token through, in
// the message or any attribute.
type redactor struct {
	h       slog.Handler
	secrets []string
}

func newRedactor(h slog.Handler, secrets []string) slog.Handler {
	var keep []string
	for _, s := range secrets {
		// Short values (a region, a port) are not secrets worth
		// mangling every log line for.
		if len(s) >= 8 {
			keep = append(keep, s)
		}
	}
	return &redactor{h: h, secrets: keep}
}

func (r *redactor) redact(s string) string {
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	if strings.Contains(s, "hooks.slack.com") || strings.Contains(s, "xox") {
		s = secretPatterns.ReplaceAllString(s, "[REDACTED]")
	}
	return s
}

func (r *redactor) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.redact(v.String()))
	case slog.KindGroup:
		as := v.Group()
		out := make([]any, len(as))
		for i, g := range as {
			out[i] = r.attr(g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, r.redact(err.Error()))
		}
		return slog.String(a.Key, r.redact(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (r *redactor) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r *redactor) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, r.redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(r.attr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r *redactor) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = r.attr(a)
	}
	return &redactor{h: r.h.WithAttrs(red), secrets: r.secrets}
}

func (r *redactor) WithGroup(name string) slog.Handler {
	return &redactor{h: r.h.WithGroup(name), secrets: r.secrets}
}
