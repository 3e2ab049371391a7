package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// config is ecscorr's configuration file (--config): where incidents go,
// and, for `run`, what is read. Every key is checked: an unknown key or a
// wrong value stops start-up with file:line:col.
type config struct {
	// For `run` (replay reads only sinks:).
	StateDir        string
	Rules           []string
	HTTP            httpConfig
	Sources         []sourceConfig
	DeadLetter      string
	LogLevel        string
	Lateness        map[pipeline.Source]time.Duration
	IdleAfter       time.Duration
	CommitInterval  time.Duration
	StateMemory     int64
	Eager           bool
	ShutdownTimeout time.Duration
	MaxApplied      int
	// Role is what this process does in a scale-out (roleAll: everything,
	// no broker); Kafka is the broker of roles ingest and correlate.
	Role  string
	Kafka kafkaConfig

	Sinks []sinkConfig
	// secrets are the values ${ENV} expansion put into the config, so
	// that nothing derived from the config logs them.
	secrets []string
	path    string
}

// Roles (docs/operations.md, scale-out).
const (
	roleAll       = "all"       // sources → engine → sinks, in one process
	roleIngest    = "ingest"    // sources → normalised events on kafka.events_topic
	roleCorrelate = "correlate" // kafka.events_topic in kafka.group → engines → sinks
)

// kafkaConfig is the scale-out broker.
type kafkaConfig struct {
	Brokers     []string `yaml:"brokers"`
	EventsTopic string   `yaml:"events_topic"`
	// ChangelogTopic, in role correlate, is the compacted topic partition
	// state moves through (empty: state is rebuilt from the events topic).
	ChangelogTopic string `yaml:"changelog_topic"`
	Group          string `yaml:"group"`
	ClientID       string `yaml:"client_id"`
	TLS            bool   `yaml:"tls"`
	// Lateness is what a correlate instance waits for the events topic's
	// partitions, read side by side, to catch up with one another: the
	// ingest instances already waited for the sources' delivery delays
	// (lateness:) before publishing, and their ticks carry their
	// watermark.
	Lateness time.Duration
	// SessionTimeout is how long the group waits for a silent instance
	// before its partitions move (kafka-go's default, 30s).
	SessionTimeout time.Duration
}

// httpConfig is the operations endpoint: /healthz, /readyz, /metrics.
type httpConfig struct {
	Listen string `yaml:"listen"`
}

// runDefaults are the documented defaults of the run keys (docs/config.md).
func runDefaults() config {
	return config{
		StateDir: "/var/lib/ecscorr",
		Rules:    []string{"builtin"},
		HTTP:     httpConfig{Listen: "127.0.0.1:9090"},
		LogLevel: "info",
		// Real delivery delays: CloudTrail reaches EventBridge within
		// about 5 minutes and S3 within about 15, GuardDuty findings
		// within minutes, Container Insights within a minute or two,
		// Falco within a second.
		Lateness: map[pipeline.Source]time.Duration{
			pipeline.SourceCloudTrail:        15 * time.Minute,
			pipeline.SourceGuardDuty:         5 * time.Minute,
			pipeline.SourceContainerInsights: 2 * time.Minute,
			pipeline.SourceFalco:             10 * time.Second,
			pipeline.SourceECS:               time.Minute,
		},
		Role:            roleAll,
		Kafka:           kafkaConfig{EventsTopic: "ecscorr-events", Group: "ecscorr", Lateness: 10 * time.Second},
		IdleAfter:       time.Minute,
		CommitInterval:  time.Second,
		StateMemory:     256 << 20,
		Eager:           true,
		ShutdownTimeout: 25 * time.Second,
	}
}

// sinkConfig is one entry of `sinks:`. The delivery keys apply to every
// stream sink; the rest depend on the type.
type sinkConfig struct {
	Type string `yaml:"type"`
	Name string `yaml:"name"` // default: the type; unique
	// Delivery policy (pipeline.DeliveryPolicy).
	MinSeverity string   `yaml:"min_severity"`
	MaxAttempts int      `yaml:"max_attempts"`
	Backoff     duration `yaml:"backoff"`
	MaxBackoff  duration `yaml:"max_backoff"`
	Rate        *float64 `yaml:"rate"` // deliveries per second; 0 unlimited (nil: the sink's default)
	BatchSize   int      `yaml:"batch_size"`
	AllRoutes   bool     `yaml:"all_routes"` // take every incident, whatever the rule's route

	// jsonl
	Path string `yaml:"path"`

	// slack: an incoming webhook (URL in an environment variable or a
	// file) or a bot token (likewise) posting to a channel.
	WebhookURL     string   `yaml:"webhook_url"` // the URL itself, usually ${ENV}
	Token          string   `yaml:"token"`
	WebhookURLEnv  string   `yaml:"webhook_url_env"`
	WebhookURLFile string   `yaml:"webhook_url_file"`
	TokenEnv       string   `yaml:"token_env"`
	TokenFile      string   `yaml:"token_file"`
	Channel        string   `yaml:"channel"`
	BaseURL        string   `yaml:"base_url"`
	UpdateEvery    duration `yaml:"update_every"`
	Timeout        duration `yaml:"timeout"`
	MaxEvidence    int      `yaml:"max_evidence"`

	// securityhub
	Region             string            `yaml:"region"`
	AccountRoles       map[string]string `yaml:"account_roles"`
	ExternalID         string            `yaml:"external_id"`
	SourceURL          string            `yaml:"source_url"`
	GuardDutyDetectors map[string]string `yaml:"guardduty_detectors"`

	// eventbridge (region as above)
	Bus    string `yaml:"bus"`
	Source string `yaml:"source"`

	// kafka
	Brokers         []string `yaml:"brokers"`
	Topic           string   `yaml:"topic"`
	MaxMessageBytes int      `yaml:"max_message_bytes"`
	ClientID        string   `yaml:"client_id"`
	TLS             bool     `yaml:"tls"`

	pos  rule.Pos
	keys map[string]rule.Pos // keys given, where
}

// duration is a config duration in the rule grammar (30s, 5m, 1h, 2d).
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := rule.ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

// sinkTypes are the sink types and the keys each takes besides the
// delivery keys.
var sinkTypes = map[string][]string{
	"jsonl":       {"path"},
	"slack":       {"webhook_url", "token", "webhook_url_env", "webhook_url_file", "token_env", "token_file", "channel", "base_url", "update_every", "timeout", "max_evidence"},
	"securityhub": {"region", "account_roles", "external_id", "source_url", "guardduty_detectors"},
	"eventbridge": {"bus", "source", "region"},
	"kafka":       {"brokers", "topic", "max_message_bytes", "client_id", "timeout", "tls"},
}

var deliveryKeys = []string{"type", "name", "min_severity", "max_attempts", "backoff", "max_backoff", "rate", "batch_size", "all_routes"}

// loadConfig reads and checks a config file; every problem is returned
// with its position.
//
// A path env:NAME reads the config from the environment variable NAME (a
// container given its config by the platform, e.g. from SSM Parameter
// Store through ECS secrets); positions then name env:NAME.
func loadConfig(path string) (*config, rule.Diagnostics) {
	var data []byte
	if name, ok := strings.CutPrefix(path, "env:"); ok {
		v, set := os.LookupEnv(name)
		if !set || strings.TrimSpace(v) == "" {
			return nil, rule.Diagnostics{{Pos: rule.Pos{File: path}, Severity: rule.SevError, Msg: "the environment variable " + name + " holding the config is not set or empty"}}
		}
		data = []byte(v)
	} else {
		var err error
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, rule.Diagnostics{{Pos: rule.Pos{File: path}, Severity: rule.SevError, Msg: err.Error()}}
		}
	}
	c := runDefaults()
	c.path = path
	var diags rule.Diagnostics
	errAt := func(n *yaml.Node, format string, args ...any) {
		diags = append(diags, rule.Diagnostic{Pos: rule.Pos{File: path, Line: n.Line, Col: n.Column}, Severity: rule.SevError, Msg: fmt.Sprintf(format, args...)})
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		line := 0
		if _, rest, ok := strings.Cut(err.Error(), "line "); ok {
			fmt.Sscanf(rest, "%d", &line)
		}
		return nil, rule.Diagnostics{{Pos: rule.Pos{File: path, Line: line, Col: 1}, Severity: rule.SevError, Msg: err.Error()}}
	}
	if len(doc.Content) == 0 {
		return &c, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		errAt(root, "the config is a mapping (state_dir:, rules:, sources:, sinks: ...)")
		return nil, diags
	}
	c.secrets = expandEnv(root, os.LookupEnv, errAt)
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			errAt(k, "%s given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		decode := func(dst any) bool {
			if err := v.Decode(dst); err != nil {
				errAt(v, "%s: %s", k.Value, strings.TrimPrefix(err.Error(), "yaml: "))
				return false
			}
			return true
		}
		var d duration
		switch k.Value {
		case "state_dir":
			if decode(&c.StateDir) && c.StateDir == "" {
				errAt(v, "state_dir must not be empty")
			}
		case "rules":
			var rs []string
			if v.Kind == yaml.ScalarNode {
				rs = []string{v.Value}
			} else if !decode(&rs) {
				continue
			}
			if len(rs) == 0 {
				errAt(v, "rules: lists rule files or folders (builtin is the embedded pack)")
			}
			c.Rules = rs
		case "http":
			if v.Kind != yaml.MappingNode {
				errAt(v, "http is a mapping (listen: host:port)")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				hk, hv := v.Content[j], v.Content[j+1]
				switch hk.Value {
				case "listen":
					if err := hv.Decode(&c.HTTP.Listen); err != nil {
						errAt(hv, "listen: %s", strings.TrimPrefix(err.Error(), "yaml: "))
					} else if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil && c.HTTP.Listen != "" {
						errAt(hv, "listen: %v (want host:port, or \"\" for no HTTP endpoint)", err)
					}
				default:
					errAt(hk, "unknown key %q under http (known: listen)", hk.Value)
				}
			}
		case "dead_letter":
			decode(&c.DeadLetter)
		case "log_level":
			if decode(&c.LogLevel) {
				var l slog.Level
				if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
					errAt(v, "log_level: %q is not one of debug, info, warn, error", c.LogLevel)
				}
			}
		case "lateness":
			if v.Kind != yaml.MappingNode {
				errAt(v, "lateness maps a source to a duration (cloudtrail: 15m)")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				lk, lv := v.Content[j], v.Content[j+1]
				src, err := pipeline.ParseSource(lk.Value)
				if err != nil {
					errAt(lk, "lateness: %v", err)
					continue
				}
				var ld duration
				if err := lv.Decode(&ld); err != nil {
					errAt(lv, "lateness.%s: %s", lk.Value, strings.TrimPrefix(err.Error(), "yaml: "))
					continue
				}
				c.Lateness[src] = time.Duration(ld)
			}
		case "idle_after":
			if decode(&d) {
				c.IdleAfter = time.Duration(d)
			}
		case "commit_interval":
			if decode(&d) {
				if d <= 0 {
					errAt(v, "commit_interval must be positive")
				}
				c.CommitInterval = time.Duration(d)
			}
		case "shutdown_timeout":
			if decode(&d) {
				c.ShutdownTimeout = time.Duration(d)
			}
		case "state_memory":
			var b byteSize
			if err := b.Set(v.Value); err != nil || v.Kind != yaml.ScalarNode {
				errAt(v, "state_memory: want a size such as 256MiB or 0 (no bound)")
				continue
			}
			c.StateMemory = int64(b)
		case "eager":
			decode(&c.Eager)
		case "max_applied":
			if decode(&c.MaxApplied) && c.MaxApplied < 0 {
				errAt(v, "max_applied must not be negative")
			}
		case "role":
			if decode(&c.Role) && c.Role != roleAll && c.Role != roleIngest && c.Role != roleCorrelate {
				errAt(v, "role: %q is not one of all, ingest, correlate", c.Role)
			}
		case "kafka":
			if v.Kind != yaml.MappingNode {
				errAt(v, "kafka is a mapping (brokers:, events_topic:, group:)")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				kk, kv := v.Content[j], v.Content[j+1]
				var err error
				switch kk.Value {
				case "brokers":
					err = kv.Decode(&c.Kafka.Brokers)
					if err == nil {
						for _, b := range c.Kafka.Brokers {
							if _, _, herr := net.SplitHostPort(b); herr != nil {
								errAt(kv, "kafka.brokers: %q is not host:port", b)
							}
						}
					}
				case "events_topic":
					if err = kv.Decode(&c.Kafka.EventsTopic); err == nil && c.Kafka.EventsTopic == "" {
						errAt(kv, "kafka.events_topic must not be empty")
					}
				case "changelog_topic":
					if err = kv.Decode(&c.Kafka.ChangelogTopic); err == nil && c.Kafka.ChangelogTopic == "" {
						errAt(kv, "kafka.changelog_topic must not be empty (leave it out to rebuild state from the events topic)")
					}
				case "group":
					if err = kv.Decode(&c.Kafka.Group); err == nil && c.Kafka.Group == "" {
						errAt(kv, "kafka.group must not be empty")
					}
				case "client_id":
					err = kv.Decode(&c.Kafka.ClientID)
				case "tls":
					err = kv.Decode(&c.Kafka.TLS)
				case "lateness":
					var d duration
					if err = kv.Decode(&d); err == nil {
						c.Kafka.Lateness = time.Duration(d)
					}
				case "session_timeout":
					var d duration
					if err = kv.Decode(&d); err == nil {
						if d <= 0 {
							errAt(kv, "kafka.session_timeout must be positive")
						}
						c.Kafka.SessionTimeout = time.Duration(d)
					}
				default:
					errAt(kk, "unknown key %q under kafka (known: brokers, events_topic, changelog_topic, group, lateness, session_timeout, client_id, tls)", kk.Value)
				}
				if err != nil {
					errAt(kv, "kafka.%s: %s", kk.Value, strings.TrimPrefix(err.Error(), "yaml: "))
				}
			}
		case "sources":
			c.Sources = decodeList(path, v, "source", errAt, decodeSource, func(sc sourceConfig) (string, rule.Pos) { return sc.Name, sc.pos })
		case "sinks":
			c.Sinks = decodeList(path, v, "sink", errAt, decodeSink, func(sc sinkConfig) (string, rule.Pos) { return sc.Name, sc.pos })
		default:
			errAt(k, "unknown key %q (known: %s)", k.Value, strings.Join(topKeys, ", "))
		}
	}
	if c.Role != roleAll && !diags.HasErrors() {
		at := root
		if r := mapValue(root, "role"); r != nil {
			at = r
		}
		if len(c.Kafka.Brokers) == 0 {
			errAt(at, "role %s needs kafka: with brokers: (and events_topic:, group:)", c.Role)
		}
		switch {
		case c.Role == roleIngest && len(c.Sinks) > 0:
			errAt(mapValue(root, "sinks"), "role ingest publishes events and raises no incidents: sinks: belong to the correlate instances")
		case c.Role == roleCorrelate && len(c.Sources) > 0:
			errAt(mapValue(root, "sources"), "role correlate reads kafka.events_topic: sources: belong to the ingest instances")
		case c.Role == roleIngest && len(c.Sources) == 0:
			errAt(at, "role ingest needs sources:")
		}
	}
	if c.Kafka.ChangelogTopic != "" && c.Role != roleCorrelate && !diags.HasErrors() {
		at := root
		if k := mapValue(root, "kafka"); k != nil {
			if v := mapValue(k, "changelog_topic"); v != nil {
				at = v
			}
		}
		errAt(at, "kafka.changelog_topic is where role correlate moves partition state; role %s has none", c.Role)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return &c, nil
}

// mapValue is the value node of key in a mapping node, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// decodeList decodes a list of sources or sinks, each with a unique name.
func decodeList[T any](path string, v *yaml.Node, what string, errAt func(*yaml.Node, string, ...any),
	decode func(string, *yaml.Node, func(*yaml.Node, string, ...any)) (T, bool), name func(T) (string, rule.Pos)) []T {
	if v.Kind != yaml.SequenceNode {
		errAt(v, "%ss is a list of %ss", what, what)
		return nil
	}
	var out []T
	names := map[string]rule.Pos{}
	for _, n := range v.Content {
		item, ok := decode(path, n, errAt)
		if !ok {
			continue
		}
		nm, pos := name(item)
		if p, dup := names[nm]; dup {
			errAt(n, "a second %s named %q (the first is at %s); give one a name:", what, nm, p)
			continue
		}
		names[nm] = pos
		out = append(out, item)
	}
	return out
}

var topKeys = []string{"state_dir", "rules", "http", "sources", "sinks", "dead_letter", "log_level", "lateness", "idle_after", "commit_interval", "state_memory", "eager", "max_applied", "shutdown_timeout", "role", "kafka"}

// expandEnv replaces ${NAME} (and ${NAME:-default}) in every scalar of the
// tree with the environment's value, in place, so that positions stay
// those of the file; $$ is a literal $. An unset variable without a
// default is an error at its scalar. It returns the non-empty values it
// substituted: they may be secrets.
func expandEnv(n *yaml.Node, lookup func(string) (string, bool), errAt func(*yaml.Node, string, ...any)) []string {
	var secrets []string
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "$") {
			var b strings.Builder
			v := n.Value
			for {
				i := strings.IndexByte(v, '$')
				if i < 0 {
					b.WriteString(v)
					break
				}
				b.WriteString(v[:i])
				v = v[i:]
				switch {
				case strings.HasPrefix(v, "$$"):
					b.WriteByte('$')
					v = v[2:]
				case strings.HasPrefix(v, "${"):
					end := strings.IndexByte(v, '}')
					if end < 0 {
						errAt(n, "unclosed ${ in %q", n.Value)
						return
					}
					name, def, hasDef := strings.Cut(v[2:end], ":-")
					if !validEnvName(name) {
						errAt(n, "${%s}: not a variable name", name)
						return
					}
					val, ok := lookup(name)
					if !ok || (val == "" && hasDef) {
						if !hasDef {
							errAt(n, "${%s} is not set (write ${%s:-default} to give a default)", name, name)
							return
						}
						val = def
					}
					if val != "" {
						secrets = append(secrets, val)
					}
					b.WriteString(val)
					v = v[end+1:]
				default:
					b.WriteByte('$')
					v = v[1:]
				}
			}
			// An expanded value is a string whatever it looks like
			// unless the scalar was only a variable.
			n.Value = b.String()
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return secrets
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func decodeSink(path string, n *yaml.Node, errAt func(*yaml.Node, string, ...any)) (sinkConfig, bool) {
	sc := sinkConfig{pos: rule.Pos{File: path, Line: n.Line, Col: n.Column}, keys: map[string]rule.Pos{}}
	if n.Kind != yaml.MappingNode {
		errAt(n, "a sink is a mapping with a type:")
		return sc, false
	}
	var typeNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			typeNode = n.Content[i+1]
		}
	}
	if typeNode == nil {
		errAt(n, "sink without a type: (one of %s)", strings.Join(typeNames(), ", "))
		return sc, false
	}
	extra, known := sinkTypes[typeNode.Value]
	if !known {
		errAt(typeNode, "unknown sink type %q (one of %s)", typeNode.Value, strings.Join(typeNames(), ", "))
		return sc, false
	}
	allowed := map[string]bool{}
	for _, k := range append(append([]string{}, deliveryKeys...), extra...) {
		allowed[k] = true
	}
	fields := yamlFieldsOf(&sc)
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !allowed[k.Value] {
			errAt(k, "unknown key %q for a %s sink (known: %s)", k.Value, typeNode.Value, strings.Join(append(append([]string{}, deliveryKeys...), extra...), ", "))
			ok = false
			continue
		}
		if err := v.Decode(fields[k.Value]); err != nil {
			errAt(v, "%s: %s", k.Value, strings.TrimPrefix(err.Error(), "yaml: "))
			ok = false
			continue
		}
		sc.keys[k.Value] = rule.Pos{File: path, Line: k.Line, Col: k.Column}
	}
	if sc.Name == "" {
		sc.Name = sc.Type
	}
	if sc.MinSeverity != "" {
		if _, err := pipeline.ParseSeverity(sc.MinSeverity); err != nil {
			errAt(valueNode(n, "min_severity"), "min_severity: %v", err)
			ok = false
		}
	}
	for _, k := range []string{"max_attempts", "batch_size"} {
		if v := reflect.ValueOf(fields[k]).Elem().Int(); v < 0 {
			errAt(valueNode(n, k), "%s must not be negative", k)
			ok = false
		}
	}
	if sc.Rate != nil && *sc.Rate < 0 {
		errAt(valueNode(n, "rate"), "rate must not be negative")
		ok = false
	}
	switch sc.Type {
	case "jsonl":
		if sc.Path == "" {
			errAt(n, "a jsonl sink needs path: (a file, or - for stdout)")
			ok = false
		}
	case "kafka":
		if len(sc.Brokers) == 0 || sc.Topic == "" {
			errAt(n, "a kafka sink needs brokers: and topic:")
			ok = false
		}
	case "slack":
		hook := sc.WebhookURL != "" || sc.WebhookURLEnv != "" || sc.WebhookURLFile != ""
		bot := sc.Token != "" || sc.TokenEnv != "" || sc.TokenFile != ""
		switch {
		case hook == bot:
			errAt(n, "a slack sink needs either webhook_url (or webhook_url_env/webhook_url_file) or token (or token_env/token_file, with channel)")
			ok = false
		case bot && sc.Channel == "":
			errAt(n, "a slack bot token needs channel: (the channel id)")
			ok = false
		}
	}
	return sc, ok
}

func valueNode(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return m
}

// yamlFieldsOf maps the yaml names of a config struct's fields to pointers to them.
func yamlFieldsOf(ptr any) map[string]any {
	out := map[string]any{}
	v := reflect.ValueOf(ptr).Elem()
	t := v.Type()
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("yaml"); tag != "" {
			out[tag] = v.Field(i).Addr().Interface()
		}
	}
	return out
}

func typeNames() []string {
	names := make([]string, 0, len(sinkTypes))
	for n := range sinkTypes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// policy is the sink's delivery policy over the type's defaults.
func (sc *sinkConfig) policy(def pipeline.DeliveryPolicy) pipeline.DeliveryPolicy {
	p := def
	p.Type, p.AllRoutes = sc.Type, sc.AllRoutes
	if sc.MinSeverity != "" {
		p.MinSeverity, _ = pipeline.ParseSeverity(sc.MinSeverity)
	}
	if sc.MaxAttempts > 0 {
		p.MaxAttempts = sc.MaxAttempts
	}
	if sc.Backoff > 0 {
		p.BackoffBase = time.Duration(sc.Backoff)
	}
	if sc.MaxBackoff > 0 {
		p.BackoffMax = time.Duration(sc.MaxBackoff)
	}
	if sc.Rate != nil {
		p.Rate = *sc.Rate // 0: unlimited, as documented
	}
	if sc.BatchSize > 0 {
		p.BatchSize = sc.BatchSize
	}
	return p
}
