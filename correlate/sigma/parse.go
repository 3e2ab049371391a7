package sigma

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Enumerations of the specification's schema.
var (
	levels   = map[string]bool{"informational": true, "low": true, "medium": true, "high": true, "critical": true}
	statuses = map[string]bool{"stable": true, "test": true, "experimental": true, "deprecated": true, "unsupported": true}
	relTypes = map[string]bool{"derived": true, "obsolete": true, "merged": true, "renamed": true, "similar": true}
	dateRe   = regexp.MustCompile(`^\d{4}-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])$`)
)

// parser collects diagnostics for one file.
type parser struct {
	file string
	ds   Diagnostics
}

func (p *parser) pos(n *yaml.Node) Pos { return Pos{File: p.file, Line: n.Line, Col: n.Column} }

func (p *parser) errf(n *yaml.Node, format string, args ...any) {
	p.ds = append(p.ds, Diagnostic{Pos: p.pos(n), Severity: SevError, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(n *yaml.Node, format string, args ...any) {
	p.ds = append(p.ds, Diagnostic{Pos: p.pos(n), Severity: SevWarning, Msg: fmt.Sprintf(format, args...)})
}

// ParseAll parses every YAML document of a file as a Sigma detection rule.
// Every rule is also compiled once, so that everything Compile would refuse
// is reported here, at its position. Rules are returned only when the file
// has no errors.
func ParseAll(name string, data []byte) ([]*Rule, Diagnostics) {
	rules, corrs, ds := parseFile(name, data)
	for _, c := range corrs {
		ds = append(ds, Diagnostic{Pos: c.CorrPos, Severity: SevError,
			Msg: "a Sigma correlation rule: ParseAll reads detection rules only (use ParseFile)"})
	}
	if ds.HasErrors() {
		return nil, ds
	}
	return rules, ds
}

// ParseFile parses every YAML document of a file: detection rules (each
// compiled once, as ParseAll does) and correlation rules (documents with
// a top-level correlation), in file order within each list. References
// between rules are not resolved (they may cross files). Nothing is
// returned when the file has errors.
func ParseFile(name string, data []byte) ([]*Rule, []*Correlation, Diagnostics) {
	rules, corrs, ds := parseFile(name, data)
	if ds.HasErrors() {
		return nil, nil, ds
	}
	return rules, corrs, ds
}

// parseFile is ParseFile returning what it read even after errors.
func parseFile(name string, data []byte) ([]*Rule, []*Correlation, Diagnostics) {
	p := &parser{file: name}
	var corrs []*Correlation
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var rules []*Rule
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.ds = append(p.ds, Diagnostic{Pos: Pos{File: name, Line: yamlErrLine(err)}, Severity: SevError,
				Msg: fmt.Sprintf("YAML: %v", err)})
			return nil, nil, p.ds
		}
		if len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			continue // empty document, e.g. a trailing ---
		}
		if root := deref(n.Content[0]); root.Kind == yaml.MappingNode && hasKey(root, "correlation") && !hasKey(root, "action") {
			corrs = append(corrs, p.correlation(root))
			continue
		}
		if r := p.document(n.Content[0]); r != nil {
			rules = append(rules, r)
		}
	}
	for _, r := range rules {
		m, cds := compileRule(r)
		if len(cds) > 0 {
			p.ds = append(p.ds, cds...)
		}
		if !cds.HasErrors() {
			r.parsed = m // Compile's answer: not compiled twice
		}
	}
	return rules, corrs, p.ds
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return true
		}
	}
	return false
}

var yamlLineRe = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	m := yamlLineRe.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	var l int
	fmt.Sscan(m[1], &l)
	return l
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// pairs returns a mapping's key/value pairs, reporting duplicate and merge
// keys (yaml.Node decoding checks neither).
func (p *parser) pairs(m *yaml.Node, what string) [][2]*yaml.Node {
	seen := map[string]bool{}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), deref(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.errf(k, "%s: keys must be plain strings", what)
			continue
		}
		if k.Tag == "!!merge" {
			p.errf(k, "%s: YAML merge keys (<<) are not supported", what)
			continue
		}
		if seen[k.Value] {
			p.errf(k, "%s: duplicate key %q", what, k.Value)
			continue
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

func (p *parser) str(n *yaml.Node, key string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errf(n, "%s must be a string", key)
		return ""
	}
	return n.Value
}

func (p *parser) strList(n *yaml.Node, key string) []string {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "%s must be a list of strings", key)
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		c = deref(c)
		if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
			p.errf(c, "%s must be a list of strings", key)
			continue
		}
		out = append(out, c.Value)
	}
	return out
}

func (p *parser) document(root *yaml.Node) *Rule {
	root = deref(root)
	if root.Kind != yaml.MappingNode {
		p.errf(root, "a Sigma rule is a YAML mapping")
		return nil
	}
	keys := map[string]*yaml.Node{}
	kv := p.pairs(root, "rule")
	for _, e := range kv {
		keys[e[0].Value] = e[0]
	}
	switch {
	case keys["action"] != nil:
		p.errf(keys["action"], "multi-document rule collections (action: global/reset/repeat) were removed in Sigma 2.0; write each rule as its own document")
		return nil
	case keys["filter"] != nil && keys["detection"] == nil:
		p.errf(keys["filter"], "Sigma filters (meta-rules) are not supported")
		return nil
	}
	r := &Rule{Pos: p.pos(root), Node: root}
	for _, k := range []string{"title", "logsource", "detection"} {
		if keys[k] == nil {
			p.errf(root, "missing mandatory %q", k)
		}
	}
	// Said once: the compiler would add "no condition" without a place.
	r.Detection.reported = keys["detection"] == nil
	for _, e := range kv {
		k, v := e[0], e[1]
		if p.meta(&r.Meta, k, v) {
			continue
		}
		switch k.Value {
		case "fields":
			r.Fields = p.strList(v, "fields")
		case "scope":
			r.Scope = p.strList(v, "scope")
		case "logsource":
			r.LogSource = p.logsource(v)
		case "detection":
			r.Detection = p.detection(v)
		}
	}
	return r
}

func (p *parser) related(n *yaml.Node) []Related {
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "related must be a list of {id, type}")
		return nil
	}
	var out []Related
	for _, c := range n.Content {
		c = deref(c)
		if c.Kind != yaml.MappingNode {
			p.errf(c, "related must be a list of {id, type}")
			continue
		}
		var rel Related
		for _, e := range p.pairs(c, "related") {
			switch e[0].Value {
			case "id":
				rel.ID = p.str(e[1], "related id")
			case "type":
				rel.Type = p.str(e[1], "related type")
				if !relTypes[rel.Type] {
					p.errf(e[1], "unknown related type %q", rel.Type)
				}
			}
		}
		// The schema requires both.
		if rel.ID == "" {
			p.errf(c, "related entry needs an id")
		}
		if rel.Type == "" {
			p.errf(c, "related entry needs a type (derived, obsolete, merged, renamed, similar)")
		}
		out = append(out, rel)
	}
	return out
}

func (p *parser) logsource(n *yaml.Node) LogSource {
	ls := LogSource{Pos: p.pos(n)}
	if n.Kind != yaml.MappingNode {
		p.errf(n, "logsource must be a mapping")
		return ls
	}
	for _, e := range p.pairs(n, "logsource") {
		v := p.str(e[1], "logsource "+e[0].Value)
		switch e[0].Value {
		case "category":
			ls.Category = v
		case "product":
			ls.Product = v
		case "service":
			ls.Service = v
		case "definition":
			ls.Definition = v
		default:
			if ls.Other == nil {
				ls.Other = map[string]string{}
			}
			ls.Other[e[0].Value] = v
		}
	}
	return ls
}

func (p *parser) detection(n *yaml.Node) Detection {
	d := Detection{Pos: p.pos(n), Selections: map[string]*Selection{}}
	if n.Kind != yaml.MappingNode {
		p.errf(n, "detection must be a mapping")
		return d
	}
	for _, e := range p.pairs(n, "detection") {
		k, v := e[0], e[1]
		switch k.Value {
		case "condition":
			d.Conditions = p.conditions(v)
		case "timeframe":
			p.errf(k, "timeframe belongs to the removed aggregation syntax; write a Sigma correlation rule instead")
		default:
			if s := p.selection(k, v); s != nil {
				d.Selections[s.Name] = s
				d.Order = append(d.Order, s.Name)
			}
		}
	}
	if len(d.Conditions) == 0 {
		p.errf(n, "detection has no condition")
		d.reported = true
	}
	return d
}

func (p *parser) conditions(n *yaml.Node) []Condition {
	one := func(c *yaml.Node) (Condition, bool) {
		if c.Kind != yaml.ScalarNode || c.Tag == "!!null" || strings.TrimSpace(c.Value) == "" {
			p.errf(c, "condition must be a non-empty string")
			return Condition{}, false
		}
		off := 0
		switch c.Style {
		case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
			off = 1
		case yaml.LiteralStyle, yaml.FoldedStyle:
			off = -1
		}
		if strings.Contains(c.Value, "\n") {
			off = -1
		}
		return Condition{Pos: p.pos(c), Text: c.Value, offCol: off}, true
	}
	if n.Kind == yaml.SequenceNode {
		var out []Condition
		for _, c := range n.Content {
			if cond, ok := one(deref(c)); ok {
				out = append(out, cond)
			}
		}
		if len(out) == 0 {
			p.errf(n, "condition list is empty")
		}
		return out
	}
	if cond, ok := one(n); ok {
		return []Condition{cond}
	}
	return nil
}

func (p *parser) selection(k, v *yaml.Node) *Selection {
	s := &Selection{Name: k.Value, Pos: p.pos(k)}
	if s.Name == "" {
		p.errf(k, "empty search identifier name")
		return nil
	}
	if strings.ContainsAny(s.Name, " \t()|*") {
		p.errf(k, "search identifier %q: names cannot hold spaces, parentheses, | or *", s.Name)
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		s.Groups = [][]*Item{p.mapItems(v)}
	case yaml.SequenceNode:
		if len(v.Content) == 0 {
			p.errf(v, "search identifier %q is an empty list", s.Name)
			return nil
		}
		var kw *Item
		for _, c := range v.Content {
			c = deref(c)
			switch c.Kind {
			case yaml.MappingNode:
				kw = nil
				s.Groups = append(s.Groups, p.mapItems(c))
			case yaml.ScalarNode:
				val, ok := p.value(c)
				if !ok {
					continue
				}
				if kw == nil { // consecutive keywords form one OR item
					kw = &Item{Pos: p.pos(c)}
					s.Groups = append(s.Groups, []*Item{kw})
				}
				kw.Values = append(kw.Values, val)
			default:
				p.errf(c, "search identifier %q: a list holds keywords or maps, not nested lists", s.Name)
			}
		}
	case yaml.ScalarNode:
		if val, ok := p.value(v); ok {
			s.Groups = [][]*Item{{{Pos: p.pos(v), Values: []Value{val}}}}
		}
	default:
		p.errf(v, "search identifier %q must be a map, a list of maps or a list of keywords", s.Name)
		return nil
	}
	return s
}

func (p *parser) mapItems(m *yaml.Node) []*Item {
	var items []*Item
	if len(m.Content) == 0 {
		p.errf(m, "empty map in detection")
	}
	for _, e := range p.pairs(m, "selection") {
		k, v := e[0], e[1]
		parts := strings.Split(k.Value, "|")
		it := &Item{Pos: p.pos(k), Field: parts[0]}
		col := k.Column + len(parts[0]) + 1
		if k.Style == yaml.SingleQuotedStyle || k.Style == yaml.DoubleQuotedStyle {
			col++
		}
		for _, m := range parts[1:] {
			it.Modifiers = append(it.Modifiers, m)
			it.ModPos = append(it.ModPos, Pos{File: p.file, Line: k.Line, Col: col})
			col += len(m) + 1
		}
		switch v.Kind {
		case yaml.SequenceNode:
			if len(v.Content) == 0 {
				p.errf(v, "field %q has an empty list of values", it.Field)
			}
			for _, c := range v.Content {
				c = deref(c)
				if c.Kind != yaml.ScalarNode {
					p.errf(c, "field %q: values must be scalars", it.Field)
					continue
				}
				val, ok := p.value(c)
				if !ok {
					continue
				}
				if val.Kind == KindNull {
					p.errf(c, "field %q: null cannot be part of a list of values (write it as its own selection)", it.Field)
					continue
				}
				it.Values = append(it.Values, val)
			}
		case yaml.ScalarNode:
			if val, ok := p.value(v); ok {
				it.Values = []Value{val}
			}
		default:
			p.errf(v, "field %q: value must be a scalar or a list of scalars", it.Field)
		}
		items = append(items, it)
	}
	return items
}

func (p *parser) value(n *yaml.Node) (Value, bool) {
	v := Value{Pos: p.pos(n), Text: n.Value}
	switch n.Tag {
	case "!!str", "!!timestamp":
		v.Kind = KindString
	case "!!null":
		v.Kind = KindNull
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			p.errf(n, "bad boolean %q: %v", n.Value, err)
			return v, false
		}
		v.Kind, v.Bool, v.Text = KindBool, b, fmt.Sprint(b)
	case "!!int", "!!float":
		var x any
		if err := n.Decode(&x); err != nil {
			p.errf(n, "bad number %q: %v", n.Value, err)
			return v, false
		}
		v.Kind = KindNumber
		switch x := x.(type) {
		case int:
			v.Num, v.Text = float64(x), fmt.Sprint(x)
		case int64:
			v.Num, v.Text = float64(x), fmt.Sprint(x)
		case uint64:
			v.Num, v.Text = float64(x), fmt.Sprint(x)
		case float64:
			v.Num = x
		default:
			p.errf(n, "bad number %q", n.Value)
			return v, false
		}
	default:
		p.errf(n, "unsupported YAML value type %s", n.Tag)
		return v, false
	}
	return v, true
}

// meta reads a key both detection and correlation rules have; it reports
// whether k was one.
func (p *parser) meta(m *Meta, k, v *yaml.Node) bool {
	switch k.Value {
	case "title":
		m.Title = p.str(v, "title")
		if len(m.Title) > 256 {
			p.errf(v, "title is longer than 256 characters")
		}
	case "id":
		m.ID = p.str(v, "id")
	case "name":
		m.Name = p.str(v, "name")
	case "taxonomy":
		m.Taxonomy = p.str(v, "taxonomy")
		if m.Taxonomy != "" && m.Taxonomy != "sigma" {
			p.warnf(v, "taxonomy %q: field names are used as written, no mapping is applied", m.Taxonomy)
		}
	case "status":
		m.Status = p.str(v, "status")
		if m.Status != "" && !statuses[m.Status] {
			p.errf(v, "unknown status %q (stable, test, experimental, deprecated, unsupported)", m.Status)
		}
	case "description":
		m.Description = p.str(v, "description")
	case "license":
		m.License = p.str(v, "license")
	case "author":
		m.Author = p.str(v, "author")
	case "references":
		m.References = p.strList(v, "references")
	case "date", "modified":
		s := p.str(v, k.Value)
		if s != "" && !dateRe.MatchString(s) {
			p.warnf(v, "%s %q is not YYYY-MM-DD", k.Value, s)
		}
		if k.Value == "date" {
			m.Date = s
		} else {
			m.Modified = s
		}
	case "falsepositives":
		if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			m.FalsePositives = []string{v.Value} // common in older rules
		} else {
			m.FalsePositives = p.strList(v, "falsepositives")
		}
	case "level":
		m.Level = p.str(v, "level")
		if m.Level != "" && !levels[m.Level] {
			p.errf(v, "unknown level %q (informational, low, medium, high, critical)", m.Level)
		}
	case "tags":
		m.Tags = p.strList(v, "tags")
		// Unique in the schema: a repeat is said and dropped.
		seen := map[string]bool{}
		for i, t := range m.Tags {
			if seen[t] {
				p.warnf(deref(v.Content[i]), "tag %q is listed twice", t)
			}
			seen[t] = true
		}
		m.Tags = uniqueInOrder(m.Tags)
	case "related":
		m.Related = p.related(v)
	default:
		return false
	}
	return true
}

// uniqueInOrder drops repeats, keeping first occurrences in order.
func uniqueInOrder(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
