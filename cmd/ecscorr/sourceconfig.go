package main

import (
	"net"
	"net/url"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ecscorr/ecscorr/correlate/rule"
)

// sourceConfig is one entry of `sources:` (ecscorr run). The keys each type
// takes are in sourceTypes; docs/config.md documents them and their
// defaults.
type sourceConfig struct {
	Type string `yaml:"type"`
	Name string `yaml:"name"` // default: type:<what it reads>; unique; positions are stored under it

	Region string `yaml:"region"` // AWS sources; default: the SDK's chain

	// sqs
	QueueURL          string   `yaml:"queue_url"`
	Wait              duration `yaml:"wait"`
	MaxMessages       int      `yaml:"max_messages"`
	VisibilityTimeout duration `yaml:"visibility_timeout"`
	Receivers         int      `yaml:"receivers"`
	NackBackoff       duration `yaml:"nack_backoff"`

	// s3
	Bucket     string   `yaml:"bucket"`
	Prefix     string   `yaml:"prefix"`
	Interval   duration `yaml:"interval"`
	StartAfter string   `yaml:"start_after"`
	MaxKeys    int      `yaml:"max_keys"`

	// cloudwatch_logs (interval as above)
	Clusters       []string `yaml:"clusters"`
	Start          string   `yaml:"start"` // a duration back from now, for the first run
	Rate           float64  `yaml:"rate"`
	Lookback       duration `yaml:"lookback"`
	RelistInterval duration `yaml:"relist_interval"`
	PageSize       int      `yaml:"page_size"`

	// falco_grpc
	Endpoints  []string `yaml:"endpoints"`
	CertFile   string   `yaml:"cert_file"`
	KeyFile    string   `yaml:"key_file"`
	CARootFile string   `yaml:"ca_root_file"`

	// falco_http
	Listen       string `yaml:"listen"`
	Path         string `yaml:"path"`
	SecretHeader string `yaml:"secret_header"`
	Secret       string `yaml:"secret"`
	MaxBody      int    `yaml:"max_body"`

	// kafka
	Brokers  []string `yaml:"brokers"`
	Topics   []string `yaml:"topics"`
	Group    string   `yaml:"group"`
	Format   string   `yaml:"format"` // raw | events
	ClientID string   `yaml:"client_id"`
	TLS      bool     `yaml:"tls"`
	MaxBatch int      `yaml:"max_batch"`

	pos rule.Pos
}

// sourceTypes are the source types and the keys each takes besides type
// and name.
var sourceTypes = map[string][]string{
	"sqs":             {"queue_url", "region", "wait", "max_messages", "visibility_timeout", "receivers", "nack_backoff"},
	"s3":              {"bucket", "prefix", "region", "interval", "start_after", "max_keys"},
	"cloudwatch_logs": {"clusters", "region", "interval", "start", "rate", "lookback", "relist_interval", "page_size"},
	"falco_grpc":      {"endpoints", "cert_file", "key_file", "ca_root_file"},
	"falco_http":      {"listen", "path", "secret_header", "secret", "max_body"},
	"kafka":           {"brokers", "topics", "group", "format", "client_id", "tls", "max_batch", "start"},
}

func decodeSource(path string, n *yaml.Node, errAt func(*yaml.Node, string, ...any)) (sourceConfig, bool) {
	sc := sourceConfig{pos: rule.Pos{File: path, Line: n.Line, Col: n.Column}}
	if n.Kind != yaml.MappingNode {
		errAt(n, "a source is a mapping with a type:")
		return sc, false
	}
	typeNode := valueNode(n, "type")
	if typeNode == n {
		errAt(n, "source without a type: (one of %s)", strings.Join(sortedKeys(sourceTypes), ", "))
		return sc, false
	}
	extra, known := sourceTypes[typeNode.Value]
	if !known {
		errAt(typeNode, "unknown source type %q (one of %s)", typeNode.Value, strings.Join(sortedKeys(sourceTypes), ", "))
		return sc, false
	}
	keys := append([]string{"type", "name"}, extra...)
	allowed := map[string]bool{}
	for _, k := range keys {
		allowed[k] = true
	}
	fields := yamlFieldsOf(&sc)
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !allowed[k.Value] {
			errAt(k, "unknown key %q for a %s source (known: %s)", k.Value, typeNode.Value, strings.Join(keys, ", "))
			ok = false
			continue
		}
		if err := v.Decode(fields[k.Value]); err != nil {
			errAt(v, "%s: %s", k.Value, strings.TrimPrefix(err.Error(), "yaml: "))
			ok = false
		}
	}
	need := func(cond bool, format string, args ...any) {
		if !cond {
			errAt(n, format, args...)
			ok = false
		}
	}
	for _, k := range []string{"max_messages", "receivers", "max_body", "max_batch", "page_size", "max_keys"} {
		if v := valueNode(n, k); v != n && strings.HasPrefix(v.Value, "-") {
			errAt(v, "%s must not be negative", k)
			ok = false
		}
	}
	switch sc.Type {
	case "sqs":
		u, err := url.Parse(sc.QueueURL)
		need(sc.QueueURL != "" && err == nil && u.Host != "", "an sqs source needs queue_url: (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE)")
		if sc.MaxMessages > 10 {
			errAt(valueNode(n, "max_messages"), "max_messages is at most 10 (SQS's limit)")
			ok = false
		}
		if sc.Name == "" && err == nil {
			sc.Name = "sqs:" + u.Path[strings.LastIndexByte(u.Path, '/')+1:]
		}
	case "s3":
		need(sc.Bucket != "", "an s3 source needs bucket:")
		if sc.Name == "" {
			sc.Name = "s3:" + sc.Bucket + "/" + sc.Prefix
		}
	case "cloudwatch_logs":
		if sc.Name == "" {
			sc.Name = "cloudwatch_logs"
			if len(sc.Clusters) > 0 {
				sc.Name += ":" + strings.Join(sc.Clusters, ",")
			}
		}
		if sc.Start != "" {
			if _, err := rule.ParseDuration(sc.Start); err != nil {
				errAt(valueNode(n, "start"), "start: %v (a duration back from now, e.g. 15m)", err)
				ok = false
			}
		}
	case "falco_grpc":
		need(len(sc.Endpoints) > 0, "a falco_grpc source needs endpoints: (unix:///run/falco/falco.sock or host:port)")
		tcp := false
		for _, e := range sc.Endpoints {
			if !strings.HasPrefix(e, "unix://") {
				tcp = true
			}
		}
		need(!tcp || (sc.CertFile != "" && sc.KeyFile != "" && sc.CARootFile != ""), "a falco_grpc TCP endpoint needs mutual TLS: cert_file, key_file and ca_root_file")
		if sc.Name == "" {
			sc.Name = "falco_grpc"
		}
	case "falco_http":
		_, _, err := net.SplitHostPort(sc.Listen)
		need(sc.Listen != "" && err == nil, "a falco_http source needs listen: host:port")
		need((sc.SecretHeader == "") == (sc.Secret == ""), "secret_header and secret go together")
		if sc.Name == "" {
			sc.Name = "falco_http:" + sc.Listen
		}
	case "kafka":
		need(len(sc.Brokers) > 0 && len(sc.Topics) > 0, "a kafka source needs brokers: and topics:")
		need(sc.Format == "" || sc.Format == "raw" || sc.Format == "events", "format is raw (records in any supported format) or events (normalised events)")
		need(sc.Start == "" || sc.Start == "earliest" || sc.Start == "latest", "start is earliest or latest")
		if sc.Group == "" {
			sc.Group = "ecscorr"
		}
		if sc.Name == "" {
			sc.Name = "kafka:" + strings.Join(sc.Topics, ",")
		}
	}
	return sc, ok
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
