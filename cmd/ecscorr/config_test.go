package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/sinks/slack"
)

// Every mistake in a config is reported at once, each at its line:col,
// and stops the run before it reads anything.
func TestConfigErrorsHavePositions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ecscorr.yaml")
	bad := "sinks:\n" +
		"  - type: jsonl\n" +
		"    pat: x\n" +
		"  - type: slak\n" +
		"  - type: jsonl\n" +
		"    path: y\n" +
		"    min_severity: urgent\n" +
		"    rate: -1\n" +
		"    backoff: 30\n" +
		"sink: []\n"
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "replay", "--config", p, "../../testdata/demo")
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		p + ":3:5: error: unknown key \"pat\" for a jsonl sink",
		p + ":2:5: error: a jsonl sink needs path:",
		p + ":4:11: error: unknown sink type \"slak\"",
		p + ":7:19: error: min_severity: unknown severity \"urgent\"",
		p + ":8:11: error: rate must not be negative",
		p + ":9:14: error: backoff: invalid duration \"30\": a unit is required",
		p + ":10:1: error: unknown key \"sink\" (known: state_dir, rules, http, sources, sinks,",
		"refusing to start",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("missing %q in:\n%s", want, errOut)
		}
	}
}

// A stream sink from the config gets each change of the incidents its
// policy takes, appended, while the report still gets all of them.
func TestReplayFeedsConfiguredSinks(t *testing.T) {
	dir := t.TempDir()
	stream := filepath.Join(dir, "stream.jsonl")
	cfg := filepath.Join(dir, "ecscorr.yaml")
	os.WriteFile(cfg, []byte("sinks:\n  - type: jsonl\n    name: archive\n    path: "+stream+"\n    min_severity: critical\n    all_routes: true\n  - type: jsonl\n    name: routed\n    path: "+stream+".routed\n"), 0o644)
	code, out, errOut := runCmd(t, "replay", "--config", cfg, "../../testdata/demo")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if n := len(parseIncidents(t, out)); n != 15 {
		t.Fatalf("report has %d incidents, want 15", n)
	}
	b, _ := os.ReadFile(stream)
	got := parseIncidents(t, string(b))
	if len(got) != 4 {
		t.Fatalf("archive sink got %d critical incidents, want 4:\n%s", len(got), b)
	}
	for _, inc := range got {
		if inc.Severity.String() != "critical" {
			t.Errorf("%s is %s", inc.ID, inc.Severity)
		}
	}
	// The pack routes every rule to slack and securityhub: a sink named
	// otherwise, without all_routes, gets none of them.
	if b, _ := os.ReadFile(stream + ".routed"); len(b) != 0 {
		t.Errorf("routed sink got incidents routed elsewhere:\n%s", b)
	}
	if !strings.Contains(errOut, "sink archive: ") || !strings.Contains(errOut, " 0 waiting") {
		t.Errorf("summary lacks the sink line:\n%s", errOut)
	}
}

// rate: 0 is unlimited, as the docs say; absent, the sink's default.
func TestSinkRate(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		line string
		want float64
	}{
		{"", 1}, // Slack's default: about one message a second
		{"    rate: 0\n", 0},
		{"    rate: 5\n", 5},
	} {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte("sinks:\n  - type: slack\n    webhook_url: https://hooks.slack.com/services/T0/B0/x\n"+c.line), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, diags := loadConfig(p)
		if cfg == nil || diags.HasErrors() {
			t.Fatalf("%q: %v", c.line, diags)
		}
		if got := cfg.Sinks[0].policy(slack.DefaultPolicy()).Rate; got != c.want {
			t.Errorf("%q: rate %v, want %v", c.line, got, c.want)
		}
	}
}
