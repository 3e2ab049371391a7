package rule

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// srcFile is one loaded file: its name for positions and its lines for
// mapping expression offsets back to the file.
type srcFile struct {
	name    string
	lines   []string
	builtin bool // a file of the built-in pack (NamedSource.Builtin)
}

func (l *loader) pos(f *srcFile, n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: f.name, Line: 1, Col: 1}
	}
	return Pos{File: f.name, Line: n.Line, Col: n.Column}
}

func (l *loader) diag(sev string, p Pos, format string, args ...any) {
	l.diags = append(l.diags, Diagnostic{Pos: p, Severity: sev, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) errf(f *srcFile, n *yaml.Node, format string, args ...any) {
	l.diag(SevError, l.pos(f, n), format, args...)
}

func (l *loader) warnf(f *srcFile, n *yaml.Node, format string, args ...any) {
	l.diag(SevWarning, l.pos(f, n), format, args...)
}

// maxExpanded bounds the nodes a document may expand to through aliases:
// the loader walks expanded trees (hashes, exception values), so a
// billion-laughs document must be refused before that.
const maxExpanded = 100_000

// aliasCheck counts the nodes of n with aliases expanded (saturating past
// maxExpanded) and as written, and finds an alias inside its own anchor.
func aliasCheck(n *yaml.Node) (expanded, written int, loop *yaml.Node) {
	memo := map[*yaml.Node]int{}
	const busy = -1
	var size func(n *yaml.Node) int
	size = func(n *yaml.Node) int {
		if n.Kind == yaml.AliasNode {
			if n.Alias == nil {
				return 1
			}
			if memo[n.Alias] == busy {
				loop = n
				return 1
			}
			return size(n.Alias)
		}
		if v, ok := memo[n]; ok && v != busy {
			return v
		}
		memo[n] = busy
		total := 1
		for _, c := range n.Content {
			total = min(total+size(c), maxExpanded+1)
			if loop != nil {
				break
			}
		}
		memo[n] = total
		return total
	}
	var count func(n *yaml.Node)
	count = func(n *yaml.Node) {
		written++
		for _, c := range n.Content {
			count(c)
		}
	}
	expanded = size(n)
	count(n)
	return expanded, written, loop
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a scalar"
	}
	return "an unexpected node"
}

// mapping checks that n is a map with only known keys (no duplicates) and
// returns key → value node plus the keys in file order. The key nodes are in
// keyNodes for positions.
type mapNode struct {
	n     *yaml.Node
	vals  map[string]*yaml.Node
	keys  map[string]*yaml.Node
	order []string
}

func (m *mapNode) has(k string) bool { _, ok := m.vals[k]; return ok }

func (m *mapNode) get(k string) *yaml.Node { return m.vals[k] }

func (l *loader) mapping(f *srcFile, n *yaml.Node, what string, known ...string) (*mapNode, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		if n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return &mapNode{n: n, vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}, true
		}
		got := "nothing"
		if n != nil {
			got = kindName(n)
		}
		l.errf(f, n, "%s must be a map, got %s", what, got)
		return nil, false
	}
	m := &mapNode{n: n, vals: make(map[string]*yaml.Node), keys: make(map[string]*yaml.Node)}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.errf(f, k, "%s: keys must be scalars", what)
			continue
		}
		if prev, dup := m.keys[k.Value]; dup {
			l.errf(f, k, "duplicate key %q in %s (first at line %d)", k.Value, what, prev.Line)
			continue
		}
		if known != nil && !slices.Contains(known, k.Value) {
			l.errf(f, k, "unknown key %q in %s (want one of: %s)", k.Value, what, strings.Join(known, ", "))
			continue
		}
		m.keys[k.Value] = k
		m.vals[k.Value] = v
		m.order = append(m.order, k.Value)
	}
	return m, true
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func (l *loader) str(f *srcFile, n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		got := "nothing"
		if n != nil {
			got = kindName(n)
		}
		l.errf(f, n, "%s must be a string, got %s", what, got)
		return "", false
	}
	return n.Value, true
}

func (l *loader) boolean(f *srcFile, n *yaml.Node, what string) (bool, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		l.errf(f, n, "%s must be true or false", what)
		return false, false
	}
	b, err := strconv.ParseBool(n.Value)
	if err != nil {
		// YAML 1.1 spellings are not accepted by yaml.v3 as !!bool anyway.
		l.errf(f, n, "%s must be true or false", what)
		return false, false
	}
	return b, true
}

func (l *loader) integer(f *srcFile, n *yaml.Node, what string, min int) (int, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		l.errf(f, n, "%s must be an integer", what)
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		l.errf(f, n, "%s must be an integer: %v", what, err)
		return 0, false
	}
	if v < min {
		l.errf(f, n, "%s must be ≥ %d, got %d", what, min, v)
		return 0, false
	}
	return v, true
}

func (l *loader) number(f *srcFile, n *yaml.Node, what string) (float64, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		l.errf(f, n, "%s must be a number", what)
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
	if err != nil {
		l.errf(f, n, "%s must be a number: %v", what, err)
		return 0, false
	}
	return v, true
}

// strList accepts a list of strings, or (when single) one string.
func (l *loader) strList(f *srcFile, n *yaml.Node, what string, single bool) ([]string, []*yaml.Node, bool) {
	n = deref(n)
	if n != nil && n.Kind == yaml.ScalarNode && single && n.Tag != "!!null" {
		return []string{n.Value}, []*yaml.Node{n}, true
	}
	if n == nil || n.Kind != yaml.SequenceNode {
		l.errf(f, n, "%s must be a list of strings", what)
		return nil, nil, false
	}
	out := make([]string, 0, len(n.Content))
	nodes := make([]*yaml.Node, 0, len(n.Content))
	ok := true
	for _, c := range n.Content {
		s, good := l.str(f, c, what+" item")
		if !good {
			ok = false
			continue
		}
		out = append(out, s)
		nodes = append(nodes, deref(c))
	}
	return out, nodes, ok
}

func (l *loader) seq(f *srcFile, n *yaml.Node, what string) ([]*yaml.Node, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		got := "nothing"
		if n != nil {
			got = kindName(n)
		}
		l.errf(f, n, "%s must be a list, got %s", what, got)
		return nil, false
	}
	return n.Content, true
}

// ParseDuration parses the one duration grammar of rule files and rule
// tests: terms of a number and a unit, e.g. 90s, 1h30m, 1.5h, 7d, 2w1d.
// Units are ns, us (µs), ms, s, m, h, d (24h) and w (7d); fractions are
// allowed, signs are not. A bare number is an error (is 30 seconds or
// minutes?), except 0.
func ParseDuration(s string) (time.Duration, error) {
	const want = "want e.g. 90s, 10m, 1h30m, 7d, 2w"
	in := s
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return 0, fmt.Errorf("empty duration (%s)", want)
	case "0":
		return 0, nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("invalid duration %q: a unit is required (e.g. %ss or %sm)", in, s, s)
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (s[i] == '.' || '0' <= s[i] && s[i] <= '9') {
			i++
		}
		j := i
		for j < len(s) && !(s[j] == '.' || '0' <= s[j] && s[j] <= '9') {
			j++
		}
		num, unit := s[:i], s[i:j]
		if num == "" || unit == "" {
			return 0, fmt.Errorf("invalid duration %q (%s)", in, want)
		}
		var d time.Duration
		switch unit {
		case "d", "w":
			f, err := strconv.ParseFloat(num, 64)
			per := 24 * time.Hour
			if unit == "w" {
				per *= 7
			}
			if err != nil || f*float64(per) >= float64(1<<63) {
				return 0, fmt.Errorf("invalid duration %q (%s)", in, want)
			}
			d = time.Duration(f * float64(per))
		default:
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, fmt.Errorf("invalid duration %q (%s)", in, want)
			}
		}
		if total+d < total {
			return 0, fmt.Errorf("invalid duration %q: too long", in)
		}
		total += d
		s = s[j:]
	}
	return total, nil
}

func (l *loader) duration(f *srcFile, n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := l.str(f, n, what)
	if !ok {
		return 0, false
	}
	d, err := ParseDuration(s)
	if err != nil {
		l.errf(f, n, "%s: %v", what, err)
		return 0, false
	}
	return d, true
}

// window is a duration bounded by the retention limit.
func (l *loader) window(f *srcFile, n *yaml.Node, what string) (time.Duration, bool) {
	d, ok := l.duration(f, n, what)
	if ok && d > l.opts.MaxRetention {
		l.errf(f, n, "%s %s exceeds the retention limit %s", what, fmtDur(d), fmtDur(l.opts.MaxRetention))
		return d, false
	}
	return d, ok
}

// fmtDur prints a duration with days when whole, e.g. 7d, 36h → 1d12h.
func fmtDur(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	day := 24 * time.Hour
	if d >= day {
		days := d / day
		rest := d % day
		if rest == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%s", days, strings.TrimSuffix(strings.TrimSuffix(rest.String(), "0s"), "0m"))
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// scalarValue converts a YAML scalar to a Go value for lists and exception
// values (ints stay int, floats float64, bools bool, null nil).
func scalarValue(n *yaml.Node) (any, error) {
	n = deref(n)
	switch n.Kind {
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		if t, ok := v.(time.Time); ok { // keep dates as written
			_ = t
			return n.Value, nil
		}
		return v, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := scalarValue(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a scalar or a list, got %s", kindName(n))
}

// exprPos maps a rune offset inside the string value of n to a file
// position: exact for one-line and block scalars, best effort otherwise.
func (l *loader) exprPos(f *srcFile, n *yaml.Node, off int) Pos {
	p := l.pos(f, n)
	if n == nil || off < 0 {
		return p
	}
	type seg struct{ start, line, col int }
	var segs []seg
	lineText := func(i int) (string, bool) { // 1-based
		if i < 1 || i > len(f.lines) {
			return "", false
		}
		return f.lines[i-1], true
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		indent := -1
		start := 0
		for ln := n.Line + 1; ; ln++ {
			t, ok := lineText(ln)
			if !ok {
				break
			}
			trim := strings.TrimLeft(t, " ")
			if trim == "" && (indent < 0 || len(t) <= indent) {
				if indent >= 0 {
					start++ // blank line: a newline in the value (approximate for folded)
				}
				continue
			}
			ind := len(t) - len(trim)
			if indent < 0 {
				indent = ind
			}
			if ind < indent {
				break
			}
			segs = append(segs, seg{start: start, line: ln, col: indent + 1})
			start += utf8.RuneCountInString(t[indent:]) + 1
		}
	default:
		col := n.Column
		if n.Style == yaml.DoubleQuotedStyle || n.Style == yaml.SingleQuotedStyle {
			col++
		}
		t, ok := lineText(n.Line)
		if !ok {
			return p
		}
		segs = append(segs, seg{start: 0, line: n.Line, col: col})
		// Rune length of the value's part on the first line.
		first := []rune(t)
		if col-1 <= len(first) {
			start := utf8.RuneCountInString(strings.TrimRight(string(first[col-1:]), " "))
			for ln := n.Line + 1; start <= off; ln++ {
				t, ok := lineText(ln)
				if !ok {
					break
				}
				trim := strings.TrimLeft(t, " \t")
				if trim == "" {
					continue
				}
				start++ // the folded line break is one space
				segs = append(segs, seg{start: start, line: ln, col: len(t) - len(trim) + 1})
				start += utf8.RuneCountInString(strings.TrimRight(trim, " "))
			}
		}
	}
	if len(segs) == 0 {
		return p
	}
	s := segs[0]
	for _, c := range segs {
		if c.start <= off {
			s = c
		}
	}
	col := s.col + off - s.start
	if t, ok := lineText(s.line); ok {
		col = min(col, utf8.RuneCountInString(t)+1) // never past the line (folding is approximate)
	}
	return Pos{File: f.name, Line: s.line, Col: col}
}
