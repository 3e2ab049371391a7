package rule

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ecscorr/ecscorr/correlate/sigma"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Sigma rules load beside ecscorr rule files: a YAML document with
// top-level logsource and detection, or correlation, is Sigma. Each Sigma
// detection becomes one signal, evaluated by the compiled matcher on the
// raw record, and (unless only correlations use it, sigma_corr.go) one
// match rule without a key, so that every matching event raises its own
// incident whatever entities the record carries.

// SigmaSignalPrefix starts the name of the signal of a Sigma rule
// (sigma_<id>, non-identifier characters as _), so that ecscorr rules can
// use Sigma detections as signals.
const SigmaSignalPrefix = "sigma_"

type sigmaDef struct {
	f       *srcFile
	r       *sigma.Rule        // a detection, or
	c       *sigma.Correlation // a correlation
	m       *sigma.Matcher
	id      string // rule id
	sigName string // signal name
	// resolved by resolveSigma (sigma_corr.go)
	refs     []*sigmaDef // a correlation's rules
	referred bool        // some correlation refers to this rule
	generate bool        // and one of those says generate: true
	hash     string      // memoised sigmaHash
}

// isSigmaDoc reports whether a document is a Sigma rule rather than an
// ecscorr rule file.
func isSigmaDoc(root *yaml.Node) bool {
	root = deref(root)
	if root == nil || root.Kind != yaml.MappingNode {
		return false
	}
	keys := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		keys[root.Content[i].Value] = true
	}
	if keys["apiVersion"] || keys["kind"] {
		return false
	}
	// Any of Sigma's own sections makes it one, so that a rule missing the
	// other is told what it misses, not read as an ecscorr document.
	return keys["logsource"] || keys["detection"] || keys["correlation"]
}

// SigmaSignalName is the signal a Sigma rule of that ecscorr id becomes.
func SigmaSignalName(id string) string {
	return SigmaSignalPrefix + notIdentRe.ReplaceAllString(id, "_")
}

func sigmaPos(p sigma.Pos) Pos { return Pos{File: p.File, Line: p.Line, Col: p.Col} }

var (
	sigmaMitreRe = regexp.MustCompile(`(?i)^attack\.(t[0-9]{4}(\.[0-9]{3})?)$`)
	notIdentRe   = regexp.MustCompile(`[^A-Za-z0-9_]`)
	notRuleIDRe  = regexp.MustCompile(`[^a-z0-9._-]+`)
	uuidRe       = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// readSigma reads every Sigma rule of a file (package sigma parses and
// compiles; its diagnostics keep their file:line:col): detections, and
// correlations, whose references are resolved once every file is read
// (sigma_corr.go).
func (l *loader) readSigma(f *srcFile, data []byte) {
	rules, corrs, ds := sigma.ParseFile(f.name, data)
	for _, d := range ds {
		sev := SevError
		if d.Severity == sigma.SevWarning {
			sev = SevWarning
		}
		l.diag(sev, sigmaPos(d.Pos), "sigma: %s", d.Msg)
	}
	total := len(rules) + len(corrs)
	for i, r := range rules {
		ls := r.LogSource
		if ls.Product != "aws" || ls.Service != "cloudtrail" || ls.Category != "" || len(ls.Other) > 0 {
			l.diag(SevError, sigmaPos(ls.Pos), "sigma: logsource %s: only product: aws, service: cloudtrail is mapped (to the cloudtrail source); other log sources have no mapping", describeLogSource(ls))
			continue
		}
		m, err := sigma.Compile(r)
		if err != nil { // ParseFile compiled it already; kept for safety
			l.diag(SevError, sigmaPos(r.Pos), "sigma: %v", err)
			continue
		}
		if d := l.registerSigma(f, r.Pos, r.Node, r.ID, i, total); d != nil {
			d.r, d.m = r, m
			l.sigmas = append(l.sigmas, d)
		}
	}
	for i, c := range corrs {
		if d := l.registerSigma(f, c.Pos, c.Node, c.ID, len(rules)+i, total); d != nil {
			d.c = c
			l.sigmas = append(l.sigmas, d)
		}
	}
}

// registerSigma gives a Sigma rule (detection or correlation) its ecscorr
// rule id and signal name, checked for clashes; nil after an error.
func (l *loader) registerSigma(f *srcFile, pos sigma.Pos, node *yaml.Node, id string, i, total int) *sigmaDef {
	// Clashes and refusals point at the id, when it is written.
	at := node
	if n := deref(node); n != nil && n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == "id" {
				at = deref(n.Content[j+1])
				pos = sigma.Pos{File: pos.File, Line: at.Line, Col: at.Column}
			}
		}
	}
	// A UUID is the same id in either case; ecscorr ids are lower-case.
	if lower := strings.ToLower(id); lower != id && uuidRe.MatchString(lower) {
		l.diag(SevNote, sigmaPos(pos), "sigma: id %s is a UUID; its ecscorr rule id is the lower-case %s", id, lower)
		id = lower
	}
	if id == "" {
		clean := func(s string) string {
			return strings.Trim(notRuleIDRe.ReplaceAllString(strings.ToLower(s), "-"), "-.")
		}
		name := filepath.ToSlash(f.name)
		base := strings.TrimSuffix(path.Base(name), path.Ext(name))
		n := ""
		if total > 1 {
			n = "-" + strconv.Itoa(i+1)
		}
		id = "sigma-" + clean(base) + n
		// Files of one name in two folders (a/x.yml, b/x.yml) or with both
		// extensions: the folder, then the extension, tell them apart.
		if l.ruleID[id] != nil {
			id = "sigma-" + clean(path.Base(path.Dir(name))+"-"+base) + n
		}
		if l.ruleID[id] != nil {
			id = "sigma-" + clean(path.Base(path.Dir(name))+"-"+path.Base(name)) + n
		}
		l.diag(SevNote, sigmaPos(pos), "sigma: rule without id; its ecscorr rule id is %s", id)
	}
	if !ruleIDRe.MatchString(id) {
		l.diag(SevError, sigmaPos(pos), "sigma: id %q cannot be an ecscorr rule id (want [a-z0-9][a-z0-9._-]*, e.g. a lower-case UUID)", id)
		return nil
	}
	if prev := l.ruleID[id]; prev != nil {
		l.diag(SevError, sigmaPos(pos), "sigma: duplicate rule id %q (first defined at %s)", id, l.pos(prev.f, prev.at))
		return nil
	}
	name := SigmaSignalName(id)
	if prev := l.sigs[name]; prev != nil {
		l.diag(SevError, sigmaPos(pos), "sigma: signal name %s of rule %s is taken (first defined at %s)", name, id, l.pos(prev.f, prev.node))
		return nil
	}
	// Registered for duplicate checks and ruleHash; compiled from l.sigmas.
	l.ruleID[id] = &ruleDef{f: f, node: node, at: at, id: id}
	l.sigs[name] = &sigDef{f: f, node: at, name: name}
	l.defined[f.name] += 2
	return &sigmaDef{f: f, id: id, sigName: name}
}

func describeLogSource(ls sigma.LogSource) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+": "+v)
		}
	}
	add("product", ls.Product)
	add("service", ls.Service)
	add("category", ls.Category)
	keys := make([]string, 0, len(ls.Other))
	for k := range ls.Other {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		add(k, ls.Other[k])
	}
	if len(parts) == 0 {
		return "{}"
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// signal is the Sigma rule's signal. It has no exact Types (Sigma compares
// case-insensitively, event types are exact strings); when the detection
// requires eventSource (and eventName) literals, they index it
// case-insensitively (FoldedTypes, FoldedSources), so an event meets only
// the Sigma rules that can match it. It reads the raw keys its matcher
// names.
func (d *sigmaDef) signal() *Signal {
	sig := &Signal{
		Name:          d.sigName,
		Source:        pipeline.SourceCloudTrail,
		NeedsRaw:      true,
		Match:         d.m.Match,
		MatchFields:   d.m.Fields(),
		MatchFullScan: d.m.FullScan(),
		MatchPaths:    d.m.KeyPaths(),
		Pos:           sigmaPos(d.r.Pos),
	}
	if d.m.HasScreen() {
		sig.Sigma = d.m
	}
	c := d.m.Constraints()
	srcs, ok := c["eventSource"]
	if !ok {
		names, ok := c["eventName"]
		switch {
		case !ok: // offered every CloudTrail event
		case len(names) == 0:
			sig.Never = true
		default:
			sig.FoldedNames = slices.Clone(names)
		}
		return sig
	}
	if len(srcs) == 0 {
		sig.Never = true // a contradiction: no event can match
		return sig
	}
	if names, ok := c["eventName"]; ok {
		sig.FoldedTypes = []string{}
		for _, s := range srcs {
			for _, n := range names {
				sig.FoldedTypes = append(sig.FoldedTypes, s+":"+n)
			}
		}
		if len(names) == 0 {
			sig.Never = true
		}
		return sig
	}
	sig.FoldedSources = slices.Clone(srcs)
	return sig
}

// sigmaRule is the Sigma rule's match rule: no key (every hit is its own
// incident), no dedup window.
func (l *loader) sigmaRule(d *sigmaDef) *Rule {
	out := sigmaBase(d)
	out.Kind = KindMatch
	sig := l.set.SignalsByName[d.sigName]
	out.Match = &Step{As: "match", Signals: []*Signal{sig}}
	return out
}

// sigmaBase is the rule of a Sigma detection or correlation without its
// detect part: metadata, severity from level, MITRE ids from attack tags,
// the literal title and the hash.
func sigmaBase(d *sigmaDef) *Rule {
	var title, desc, status, level, author string
	var tags, refs, fps []string
	var pos sigma.Pos
	if r := d.r; r != nil {
		title, desc, status, level, author, tags, refs, fps, pos = r.Title, r.Description, r.Status, r.Level, r.Author, r.Tags, r.References, r.FalsePositives, r.Pos
	} else {
		c := d.c
		title, desc, status, level, author, tags, refs, fps, pos = c.Title, c.Description, c.Status, c.Level, c.Author, c.Tags, c.References, c.FalsePositives, c.Pos
	}
	out := &Rule{
		ID:             d.id,
		Description:    desc,
		Status:         "experimental",
		Severity:       pipeline.SeverityMedium,
		Tags:           slices.Clone(tags),
		Origin:         "sigma",
		Author:         author,
		References:     slices.Clone(refs),
		FalsePositives: slices.Clone(fps),
		MaxKeys:        DefaultMaxKeys,
		MaxEvents:      DefaultMaxEvents,
		Pos:            sigmaPos(pos),
	}
	if slices.Contains(statuses, status) {
		out.Status = status
	}
	if level != "" {
		if sev, err := pipeline.ParseSeverity(level); err == nil {
			out.Severity = sev
		}
	}
	for _, t := range tags {
		if m := sigmaMitreRe.FindStringSubmatch(t); m != nil {
			if id := strings.ToUpper(m[1]); !slices.Contains(out.Mitre, id) {
				out.Mitre = append(out.Mitre, id)
			}
		}
	}
	// The title is literal text: escape template actions.
	if title == "" {
		title = d.id
	}
	out.TitleSrc = strings.ReplaceAll(title, "{{", `{{"{{"}}`)
	out.Title, _ = NewTemplate("title", out.TitleSrc)
	// What a responder reads beside the title (Slack, Security Hub's
	// Description): the rule's description and known false positives.
	// (References say where a detection comes from, not how to respond:
	// they stay on the rule, not in the runbook link.)
	if sum := sigmaSummary(desc, fps); sum != "" {
		out.Summary, _ = NewTemplate("summary", strings.ReplaceAll(sum, "{{", `{{"{{"}}`))
	}
	out.Hash = d.sigmaHash()
	return out
}

// sigmaSummary is a Sigma rule's description, and its false positives when
// it names some (not "Unknown").
func sigmaSummary(desc string, fps []string) string {
	desc = strings.TrimSpace(desc)
	var known []string
	for _, fp := range fps {
		if fp = strings.TrimSpace(fp); fp != "" && !strings.EqualFold(fp, "unknown") && !strings.EqualFold(fp, "none") {
			known = append(known, fp)
		}
	}
	if len(known) == 0 {
		return desc
	}
	fp := "Known false positives: " + strings.Join(known, "; ")
	if desc == "" {
		return fp
	}
	return desc + "\n" + fp
}

// sigmaHash identifies what a Sigma rule detects: a detection's logsource
// and detection sections; a correlation's section and, recursively, the
// rules it refers to (state of a correlation is dropped when one of them
// changes).
func (d *sigmaDef) sigmaHash() string {
	if d.hash != "" {
		return d.hash
	}
	var b strings.Builder
	if d.r != nil {
		b.WriteString("sigma;logsource=")
		canonical(&b, mapValue(d.r.Node, "logsource"))
		b.WriteString(";detection=")
		canonical(&b, mapValue(d.r.Node, "detection"))
	} else {
		b.WriteString("sigma-correlation;correlation=")
		canonical(&b, mapValue(d.c.Node, "correlation"))
		for _, ref := range d.refs {
			b.WriteString(";rule=" + ref.sigmaHash())
		}
	}
	h := sha256.Sum256([]byte(b.String()))
	d.hash = hex.EncodeToString(h[:])[:16]
	return d.hash
}

// mapValue returns the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
