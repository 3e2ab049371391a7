package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// issueExample is the config of issue 9, exactly as written.
const issueExample = `state_dir: /var/lib/ecscorr            # Badger: engine state, outbox, source positions
rules: [builtin, /etc/ecscorr/rules]   # "builtin" is the embedded pack
http:
  listen: 127.0.0.1:9090               # /healthz, /readyz, /metrics
sources:
  - type: sqs
    queue_url: ${QUEUE_URL}
  - type: falco_http
    listen: 127.0.0.1:2801
sinks:
  - type: slack
    webhook_url: ${SLACK_WEBHOOK_URL}
    min_severity: high
  - type: securityhub
    region: eu-west-1
  - type: jsonl
    path: /var/log/ecscorr/incidents.jsonl
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ecscorr.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIssueExampleConfigLoads(t *testing.T) {
	t.Setenv("QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/111122223333/ecscorr-events")
	t.Setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX")
	c, diags := loadConfig(writeConfig(t, issueExample))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if c.StateDir != "/var/lib/ecscorr" || strings.Join(c.Rules, ",") != "builtin,/etc/ecscorr/rules" || c.HTTP.Listen != "127.0.0.1:9090" {
		t.Errorf("top level: %q %q %q", c.StateDir, c.Rules, c.HTTP.Listen)
	}
	if len(c.Sources) != 2 || c.Sources[0].QueueURL != "https://sqs.eu-west-1.amazonaws.com/111122223333/ecscorr-events" ||
		c.Sources[0].Name != "sqs:ecscorr-events" || c.Sources[1].Name != "falco_http:127.0.0.1:2801" {
		t.Errorf("sources: %+v", c.Sources)
	}
	if len(c.Sinks) != 3 || c.Sinks[0].WebhookURL != "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX" ||
		c.Sinks[0].MinSeverity != "high" || c.Sinks[1].Region != "eu-west-1" || c.Sinks[2].Path != "/var/log/ecscorr/incidents.jsonl" {
		t.Errorf("sinks: %+v", c.Sinks)
	}
	// Defaults that are documented in docs/config.md.
	if c.Lateness[pipeline.SourceCloudTrail] != 15*time.Minute || c.Lateness[pipeline.SourceFalco] != 10*time.Second ||
		c.CommitInterval != time.Second || !c.Eager || c.ShutdownTimeout != 25*time.Second || c.StateMemory != 256<<20 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigEnvExpansion(t *testing.T) {
	t.Setenv("ECSCORR_T_DIR", "/srv/state")
	t.Setenv("ECSCORR_T_EMPTY", "")
	os.Unsetenv("ECSCORR_T_UNSET")
	c, diags := loadConfig(writeConfig(t, "state_dir: ${ECSCORR_T_DIR}/x\n"+
		"dead_letter: ${ECSCORR_T_UNSET:-/tmp/dl.jsonl}\n"+
		"log_level: ${ECSCORR_T_EMPTY:-debug}\n"+
		"sinks:\n  - type: jsonl\n    path: /tmp/$$HOME.jsonl\n"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if c.StateDir != "/srv/state/x" || c.DeadLetter != "/tmp/dl.jsonl" || c.LogLevel != "debug" || c.Sinks[0].Path != "/tmp/$HOME.jsonl" {
		t.Errorf("got %q %q %q %q", c.StateDir, c.DeadLetter, c.LogLevel, c.Sinks[0].Path)
	}
}

// Every config mistake of run's keys is reported at once at its line:col.
func TestRunConfigErrorsHavePositions(t *testing.T) {
	os.Unsetenv("ECSCORR_T_UNSET")
	p := writeConfig(t, "state_dir: /tmp/x\n"+
		"http:\n  listen: nowhere\n  port: 1\n"+
		"lateness:\n  cloudtral: 5m\n  falco: 5\n"+
		"sources:\n"+
		"  - type: sqs\n    queue_url: ${ECSCORR_T_UNSET}\n"+
		"  - type: falco_http\n    listen: 127.0.0.1:2801\n    secret: x\n"+
		"  - type: kafka\n    brokers: [b:9092]\n    topics: [t]\n    format: avro\n    groupid: x\n"+
		"  - type: sqlite\n"+
		"log_level: loud\n")
	code, out, errOut := runCmd(t, "config", "check", p)
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q\n%s", code, out, errOut)
	}
	for _, want := range []string{
		p + ":3:11: error: listen: address nowhere: missing port in address",
		p + ":4:3: error: unknown key \"port\" under http",
		p + ":6:3: error: lateness: unknown source \"cloudtral\"",
		p + ":7:10: error: lateness.falco: invalid duration \"5\"",
		p + ":10:16: error: ${ECSCORR_T_UNSET} is not set",
		p + ":11:5: error: secret_header and secret go together",
		p + ":14:5: error: format is raw (records in any supported format) or events",
		p + ":18:5: error: unknown key \"groupid\" for a kafka source",
		p + ":19:11: error: unknown source type \"sqlite\"",
		p + ":20:12: error: log_level: \"loud\" is not one of debug, info, warn, error",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("missing %q in:\n%s", want, errOut)
		}
	}
	// run refuses to start on the same file.
	code, _, errOut = runCmd(t, "run", "--config", p)
	if code != 1 || !strings.Contains(errOut, "refusing to start") {
		t.Errorf("run: exit %d\n%s", code, errOut)
	}
}

func TestConfigCheckRulesErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("kind: RuleFile\nrules:\n  - id: x\n    kind: match\n    severity: nope\n"), 0o644)
	p := writeConfig(t, "rules: [builtin, "+dir+"]\nsources:\n  - type: falco_http\n    listen: 127.0.0.1:0\n")
	code, _, errOut := runCmd(t, "config", "check", p)
	if code != 1 || !strings.Contains(errOut, filepath.Join(dir, "bad.yaml")+":") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	p = writeConfig(t, "rules: [builtin]\nsources:\n  - type: falco_http\n    listen: 127.0.0.1:0\n")
	code, out, errOut := runCmd(t, "config", "check", p)
	if code != 0 || !strings.Contains(out, ": ok (1 sources, 0 sinks") {
		t.Fatalf("exit %d %q\n%s", code, out, errOut)
	}
}

// Secrets from ${ENV} and Slack webhook URLs or tokens never reach a log
// line, in the message, an attribute, an error or a group.
func TestLogRedactsSecrets(t *testing.T) {
	var buf bytes.Buffer
	const hook = "https://hooks.slack.com/services/T01/B02/abcdefSECRET"
	log := slog.New(newRedactor(newHandler(&buf, "json", slog.LevelInfo), []string{"s3cr3t-shared-value", "eu"}))
	log.Info("posting to "+hook, "token", "xoxb-1234-5678-abcdef", "err", errorString("Post \""+hook+"\": dial tcp: refused"),
		slog.Group("g", "secret", "s3cr3t-shared-value"), "region", "eu-west-1")
	log.With("header", "s3cr3t-shared-value").Warn("x")
	out := buf.String()
	for _, leak := range []string{"abcdefSECRET", "xoxb-1234", "s3cr3t"} {
		if strings.Contains(out, leak) {
			t.Errorf("log leaks %q:\n%s", leak, out)
		}
	}
	if strings.Count(out, "[REDACTED]") != 5 || !strings.Contains(out, `"region":"eu-west-1"`) {
		t.Errorf("redaction: %s", out)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// --config env:NAME reads the config from an environment variable, with
// positions that name it.
func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv("ECSCORR_T_CONFIG", "sources:\n  - type: falco_http\n    listen: 127.0.0.1:2801\n    bogus: 1\n")
	code, _, errOut := runCmd(t, "config", "check", "env:ECSCORR_T_CONFIG")
	if code != 1 || !strings.Contains(errOut, `env:ECSCORR_T_CONFIG:4:5: error: unknown key "bogus"`) {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	t.Setenv("ECSCORR_T_CONFIG", "sources:\n  - type: falco_http\n    listen: 127.0.0.1:2801\n")
	if code, out, errOut := runCmd(t, "config", "check", "env:ECSCORR_T_CONFIG"); code != 0 || !strings.Contains(out, "ok (1 sources") {
		t.Fatalf("exit %d %q\n%s", code, out, errOut)
	}
	os.Unsetenv("ECSCORR_T_MISSING")
	if code, _, errOut := runCmd(t, "config", "check", "env:ECSCORR_T_MISSING"); code != 1 || !strings.Contains(errOut, "ECSCORR_T_MISSING holding the config is not set") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
}

// The container health check: 0 on a 200, 1 otherwise.
func TestHealthcheckCommand(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
	defer ok.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "stopped", http.StatusServiceUnavailable) }))
	defer down.Close()
	if code, out, _ := runCmd(t, "healthcheck", "--url", ok.URL); code != 0 || out != "ok\n" {
		t.Errorf("healthy: %d %q", code, out)
	}
	if code, _, errOut := runCmd(t, "healthcheck", "--url", down.URL); code != 1 || !strings.Contains(errOut, "503") {
		t.Errorf("stopped: %d %s", code, errOut)
	}
	if code, _, _ := runCmd(t, "healthcheck", "--url", "http://"+freeAddr(t)+"/healthz"); code != 1 {
		t.Errorf("nothing listening: %d", code)
	}
}

// roleExample is the scale-out config of issue 13, exactly as written.
const roleExample = `role: correlate              # or ingest, or all
kafka:
  brokers: [127.0.0.1:9092]
  events_topic: ecscorr-events
  group: ecscorr
`

func TestRoleConfig(t *testing.T) {
	c, diags := loadConfig(writeConfig(t, roleExample))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if c.Role != roleCorrelate || strings.Join(c.Kafka.Brokers, ",") != "127.0.0.1:9092" || c.Kafka.EventsTopic != "ecscorr-events" || c.Kafka.Group != "ecscorr" {
		t.Errorf("role %q kafka %+v", c.Role, c.Kafka)
	}
	if cl, diags := loadConfig(writeConfig(t, roleExample+"  changelog_topic: ecscorr-changelog\n")); diags.HasErrors() || cl.Kafka.ChangelogTopic != "ecscorr-changelog" {
		t.Errorf("changelog_topic: %q (%v)", cl.Kafka.ChangelogTopic, diags)
	}
	d, diags := loadConfig(writeConfig(t, "state_dir: /tmp/x\n"))
	if diags.HasErrors() || d.Role != roleAll {
		t.Errorf("default role %q (%v)", d.Role, diags)
	}

	for _, c := range []struct{ text, want string }{
		{"role: scale\n", ":1:7: error: role: \"scale\" is not one of all, ingest, correlate"},
		{"role: ingest\nkafka:\n  brokers: [127.0.0.1:9092]\n", ":1:7: error: role ingest needs sources:"},
		{"role: correlate\n", ":1:7: error: role correlate needs kafka: with brokers:"},
		{"role: correlate\nkafka:\n  brokers: [127.0.0.1:9092]\nsources:\n  - type: falco_http\n    listen: 127.0.0.1:2801\n",
			":5:3: error: role correlate reads kafka.events_topic: sources: belong to the ingest instances"},
		{"role: ingest\nkafka:\n  brokers: [127.0.0.1:9092]\nsources:\n  - type: falco_http\n    listen: 127.0.0.1:2801\nsinks:\n  - type: jsonl\n    path: /tmp/x.jsonl\n",
			":8:3: error: role ingest publishes events and raises no incidents"},
		{"kafka:\n  brokers: [nowhere]\n  topic: x\n", ":2:12: error: kafka.brokers: \"nowhere\" is not host:port"},
		{"kafka:\n  brokers: [nowhere]\n  topic: x\n", ":3:3: error: unknown key \"topic\" under kafka (known: brokers, events_topic, changelog_topic, group, lateness, session_timeout, client_id, tls)"},
		{"role: correlate\nkafka:\n  brokers: [127.0.0.1:9092]\n  changelog_topic: \"\"\n", ":4:20: error: kafka.changelog_topic must not be empty"},
		{"role: ingest\nkafka:\n  brokers: [127.0.0.1:9092]\n  changelog_topic: cl\nsources:\n  - type: falco_http\n    listen: 127.0.0.1:2801\n",
			":4:20: error: kafka.changelog_topic is where role correlate moves partition state; role ingest has none"},
		{"kafka: [a]\n", ":1:8: error: kafka is a mapping"},
	} {
		p := writeConfig(t, c.text)
		_, diags := loadConfig(p)
		if !strings.Contains(diags.Error(), p+c.want) {
			t.Errorf("%q:\n got %v\nwant %s%s", c.text, diags, p, c.want)
		}
	}
}
