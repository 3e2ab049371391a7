// Package sigma parses Sigma detection rules (specification v2.1.0) and
// compiles them into matchers over decoded JSON records; it also parses
// and checks Sigma correlation rules (corr.go), which the rule loader
// resolves and compiles, and exports the matcher's field resolver (Field).
//
// It has no dependency on the engine: Parse/ParseAll turn YAML into a Rule
// (keeping yaml positions), Compile turns a Rule into a Matcher made of small
// closures (pre-lowercased literals, precompiled regexes). Anything the
// package cannot evaluate exactly is refused at load with file:line:col.
package sigma

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Severities of a Diagnostic.
const (
	SevError   = "error"
	SevWarning = "warning"
)

// Pos is a position in a rule file (1-based line and column).
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Diagnostic is one problem found while loading a rule.
type Diagnostic struct {
	Pos      Pos
	Severity string // SevError or SevWarning
	Msg      string
}

func (d Diagnostic) String() string {
	return fmt.Sprintf("%s: %s: %s", d.Pos, d.Severity, d.Msg)
}

// Diagnostics is every problem found by one load; as an error it is all
// messages joined by newlines.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SevError {
			return true
		}
	}
	return false
}

func (ds Diagnostics) Error() string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.String())
	}
	return b.String()
}

// Meta is what detection and correlation rules both carry about
// themselves.
type Meta struct {
	Title          string
	ID             string
	Name           string
	Related        []Related
	Taxonomy       string
	Status         string
	Description    string
	License        string
	References     []string
	Author         string
	Date           string // as written (YYYY-MM-DD)
	Modified       string
	FalsePositives []string
	Level          string
	Tags           []string
}

// Rule is one Sigma detection rule as written.
type Rule struct {
	Pos Pos // of the document
	Meta
	LogSource LogSource
	Detection Detection
	Fields    []string
	Scope     []string

	// Node is the document's root mapping, for the positions of anything
	// (custom fields included) not copied above.
	Node *yaml.Node

	// parsed is the matcher Parse compiled to check the rule, which
	// Compile returns; nil for a rule built otherwise.
	parsed *Matcher
}

// Related is one entry of the rule's related list.
type Related struct {
	ID, Type string
}

// LogSource is the rule's logsource.
type LogSource struct {
	Pos                                    Pos
	Category, Product, Service, Definition string
	Other                                  map[string]string // any other scalar keys
}

// Detection is the detection section: named search identifiers and the
// condition (several conditions are ORed, as the specification says).
type Detection struct {
	Pos        Pos
	Selections map[string]*Selection
	Order      []string // selection names in file order
	Conditions []Condition
	// reported: ParseFile has said what is wrong with it (compile does
	// not say it again).
	reported bool
}

// Condition is one condition expression with its position.
type Condition struct {
	Pos  Pos
	Text string
	// offCol is the column shift of the text inside the YAML scalar (1 for a
	// quoted scalar); -1 when offsets cannot be mapped to columns (block or
	// multi-line scalars).
	offCol int
}

// Selection is one search identifier: the OR of its groups, each group the
// AND of its items. A map is one group; a list of maps is one group per map;
// a keyword list is one group holding one keyword item.
type Selection struct {
	Name   string
	Pos    Pos
	Groups [][]*Item
}

// Item is one `field|mod|mod: values` entry. Field is "" for keywords.
type Item struct {
	Pos       Pos // of the key (of the value for keywords)
	Field     string
	Modifiers []string
	ModPos    []Pos // position of each modifier (approximate column)
	Values    []Value
}

// ValueKind is the YAML type of a detection value.
type ValueKind int

// Kinds of detection values.
const (
	KindString ValueKind = iota
	KindNumber
	KindBool
	KindNull
)

// Value is one detection value.
type Value struct {
	Pos  Pos
	Kind ValueKind
	Text string  // the string, or the number/bool as written
	Num  float64 // for KindNumber
	Bool bool    // for KindBool
}

// Parse parses a file holding exactly one Sigma detection rule. name is used
// in positions. The Rule is nil when there are errors.
func Parse(name string, data []byte) (*Rule, Diagnostics) {
	rules, ds := ParseAll(name, data)
	if len(rules) > 1 {
		ds = append(ds, Diagnostic{Pos: rules[1].Pos, Severity: SevError,
			Msg: fmt.Sprintf("file holds %d rules; Parse takes one (use ParseAll)", len(rules))})
	}
	if ds.HasErrors() || len(rules) == 0 {
		if len(rules) == 0 && !ds.HasErrors() {
			ds = append(ds, Diagnostic{Pos: Pos{File: name}, Severity: SevError, Msg: "no Sigma rule in file"})
		}
		return nil, ds
	}
	return rules[0], ds
}
