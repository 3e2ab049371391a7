package ruletest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ecscorr/ecscorr/pipeline/format"
)

// vars substitutes ${NAME} in strings.
type vars map[string]string

var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func (v vars) expand(s string) (string, error) {
	var missing string
	out := varRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		val, ok := v[name]
		if !ok {
			missing = name
			return m
		}
		return val
	})
	if missing != "" {
		return "", fmt.Errorf("undefined variable ${%s}", missing)
	}
	return out, nil
}

// expandAny substitutes variables in every string of a decoded YAML/JSON value.
func (v vars) expandAny(x any) (any, error) {
	switch t := x.(type) {
	case string:
		return v.expand(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			n, err := v.expandAny(e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			n, err := v.expandAny(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	return x, nil
}

// record is one raw input record before decoding.
type record struct {
	raw []byte
	// at is the time the test gave the record (zero: the record's own).
	at     time.Time
	file   string
	source string // `source:` of the input item, checked after decoding
	line   int    // line in the test file of the input item
	idx    int    // index of the record within the item
}

// deleteMarker as a `set` value removes the field.
const deleteMarker = "~delete"

// buildRecords expands one input item into raw records ready for decoding.
func buildRecords(in *InputEvent, fixturesDir string, start time.Time, v vars) ([]record, error) {
	var objs []map[string]any
	var name string
	if in.File != "" {
		name = filepath.Join(fixturesDir, in.File)
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		objs, err = splitRecords(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	} else {
		name = "inline"
		e, err := v.expandAny(normalizeYAML(in.Event))
		if err != nil {
			return nil, err
		}
		objs = []map[string]any{e.(map[string]any)}
	}
	sets, err := parseSets(&in.Set)
	if err != nil {
		return nil, err
	}
	repeat := max(in.Repeat, 1)
	var out []record
	for n := range repeat {
		for i, src := range objs {
			obj := deepCopy(src).(map[string]any)
			rv := maps.Clone(v)
			rv["RECORD"], rv["REPEAT"] = strconv.Itoa(i), strconv.Itoa(n)
			for _, s := range sets {
				val, err := rv.expandAny(s.value)
				if err != nil {
					return nil, fmt.Errorf("set %q: %w", strings.Join(s.path, "."), err)
				}
				if err := setPath(obj, s.path, val); err != nil {
					return nil, fmt.Errorf("set %q: %w", strings.Join(s.path, "."), err)
				}
			}
			var at time.Time
			if in.At != nil {
				at = start.Add(time.Duration(*in.At) + time.Duration(n)*time.Duration(in.Every))
				if err := format.SetTime(obj, at); err != nil {
					return nil, fmt.Errorf("at: %w", err)
				}
			}
			if n > 0 {
				format.SuffixID(obj, fmt.Sprintf("-r%d", n))
			}
			raw, err := marshalJSON(obj)
			if err != nil {
				return nil, err
			}
			out = append(out, record{raw: raw, at: at, file: name, source: in.Source, line: in.line, idx: i})
		}
	}
	return out, nil
}

func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// splitRecords accepts one JSON object, a JSON array of objects, a
// container of records alone ({"Records": [...]}, {"findings": [...]}), or
// JSON Lines.
func splitRecords(data []byte) ([]map[string]any, error) {
	trim := bytes.TrimSpace(data)
	if len(trim) == 0 {
		return nil, fmt.Errorf("empty file")
	}
	var whole any
	dec := json.NewDecoder(bytes.NewReader(trim))
	dec.UseNumber()
	if err := dec.Decode(&whole); err == nil && !dec.More() {
		switch t := whole.(type) {
		case map[string]any:
			// A container of records alone (a CloudTrail S3 object, a
			// findings list) is its records, so that at and set apply to
			// each; the format registry says which members hold records.
			if len(t) == 1 {
				for k, v := range t {
					if c, ok := format.ContainerMember(k, nil); ok && !c.LogEvents() {
						if recs, ok := v.([]any); ok {
							return objects(recs)
						}
					}
				}
			}
			return []map[string]any{t}, nil
		case []any:
			return objects(t)
		}
		return nil, fmt.Errorf("want a JSON object, an array of objects or JSON Lines")
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(trim))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		l := bytes.TrimSpace(sc.Bytes())
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(l))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

func objects(xs []any) ([]map[string]any, error) {
	out := make([]map[string]any, 0, len(xs))
	for i, x := range xs {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %d is not a JSON object", i)
		}
		out = append(out, m)
	}
	return out, nil
}

// normalizeYAML turns what yaml.v3 decodes into JSON-compatible values
// (map[any]any cannot occur with v3, but non-string keys can).
func normalizeYAML(x any) any {
	switch t := x.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, v := range t {
			out[k] = normalizeYAML(v)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, v := range t {
			out[fmt.Sprint(k)] = normalizeYAML(v)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, v := range t {
			out[i] = normalizeYAML(v)
		}
		return out
	case time.Time:
		// YAML timestamps stay strings in the raw record.
		return t.Format(time.RFC3339Nano)
	}
	return x
}

func deepCopy(x any) any {
	switch t := x.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, v := range t {
			out[k] = deepCopy(v)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, v := range t {
			out[i] = deepCopy(v)
		}
		return out
	}
	return x
}

type setOp struct {
	path  []string
	value any
}

// parseSets reads the `set:` mapping in file order; variables are expanded
// per record.
func parseSets(n *yaml.Node) ([]setOp, error) {
	if n.Kind == 0 {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: set: want a mapping of dotted paths to values", n.Line)
	}
	var out []setOp
	for i := 0; i+1 < len(n.Content); i += 2 {
		var val any
		if err := n.Content[i+1].Decode(&val); err != nil {
			return nil, err
		}
		val = normalizeYAML(val)
		path, err := splitPath(n.Content[i].Value)
		if err != nil {
			return nil, err
		}
		out = append(out, setOp{path: path, value: val})
	}
	return out, nil
}

// splitPath splits a dotted path; a backslash escapes the next character.
func splitPath(p string) ([]string, error) {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '\\':
			if i+1 == len(p) {
				return nil, fmt.Errorf("path %q ends with a backslash", p)
			}
			i++
			cur.WriteByte(p[i])
		case '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	parts = append(parts, cur.String())
	for _, s := range parts {
		if s == "" {
			return nil, fmt.Errorf("path %q has an empty segment", p)
		}
	}
	return parts, nil
}

// setPath writes value at path, creating objects on the way; numeric
// segments index arrays.
func setPath(obj map[string]any, path []string, value any) error {
	var cur any = obj
	for i, seg := range path {
		last := i == len(path)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if value == deleteMarker {
					delete(c, seg)
				} else {
					c[seg] = value
				}
				return nil
			}
			next, ok := c[seg]
			if !ok || next == nil {
				next = map[string]any{}
				c[seg] = next
			}
			cur = next
		case []any:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(c) {
				return fmt.Errorf("segment %q: not an index of an array of %d", seg, len(c))
			}
			if last {
				c[idx] = value
				return nil
			}
			cur = c[idx]
		default:
			return fmt.Errorf("segment %q: parent is a %T, not an object", seg, cur)
		}
	}
	return nil
}
