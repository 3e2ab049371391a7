// Package ruletest runs rule unit test files (`*_test.yaml`, format in
// docs/rules-testing.md): raw records go through the format decoder (pipeline/format), the
// container resolver and the correlation engine on a virtual event-time
// clock, and the incidents existing at given instants are compared with the
// expectations.
package ruletest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ecscorr/ecscorr/correlate/rule"
)

// File is a parsed test file.
type File struct {
	RuleFiles   []string          `yaml:"rule_files"`
	StartTime   string            `yaml:"start_time"`
	FixturesDir string            `yaml:"fixtures_dir"`
	Vars        map[string]string `yaml:"vars"`
	Tests       []Test            `yaml:"tests"`

	path  string
	start time.Time
}

// Test is one named test of a file.
type Test struct {
	Name string `yaml:"name"`
	// StartTime overrides the file's start_time for this test.
	StartTime   string            `yaml:"start_time"`
	Entities    map[string]string `yaml:"entities"`
	Vars        map[string]string `yaml:"vars"`
	InputEvents []InputEvent      `yaml:"input_events"`
	InputSeries []InputSeries     `yaml:"input_series"`
	Expect      []Expect          `yaml:"expect"`

	line  int
	start time.Time
}

// InputEvent is a raw record (or a file of records) to feed.
type InputEvent struct {
	At     *Duration      `yaml:"at"`
	File   string         `yaml:"file"`
	Event  map[string]any `yaml:"event"`
	Set    yaml.Node      `yaml:"set"`
	Repeat int            `yaml:"repeat"`
	Every  Duration       `yaml:"every"`
	// Source is accepted for readability (rules.md §9.4 writes it); the
	// decoder detects the format, and a mismatch is reported.
	Source string `yaml:"source"`

	line int
}

// InputSeries is a Container Insights metric series in promtool notation.
type InputSeries struct {
	Series      string   `yaml:"series"`
	Task        string   `yaml:"task"`
	Family      string   `yaml:"family"`
	Start       Duration `yaml:"start"`
	Interval    Duration `yaml:"interval"`
	Values      string   `yaml:"values"`
	CPUReserved float64  `yaml:"cpu_reserved"`
	MemReserved float64  `yaml:"mem_reserved"`

	line int
}

// Expect asserts the incidents of one rule (or all rules) at an instant.
type Expect struct {
	EvalTime  Duration            `yaml:"eval_time"`
	Rule      string              `yaml:"rule"`
	Incidents *[]ExpectedIncident `yaml:"incidents"`

	line int
}

// ExpectedIncident lists the fields an incident must have; nil fields are
// not compared.
type ExpectedIncident struct {
	Rule            *string           `yaml:"rule"`
	Severity        *string           `yaml:"severity"`
	Status          *string           `yaml:"status"`
	Key             map[string]string `yaml:"key"`
	Title           *string           `yaml:"title"`
	TitleContains   *string           `yaml:"title_contains"`
	Summary         *string           `yaml:"summary"`
	SummaryContains *string           `yaml:"summary_contains"`
	Count           *int              `yaml:"count"`
	Events          *EventsExpect     `yaml:"events"`
	Steps           *[]string         `yaml:"steps"`
	FirstSeen       *Duration         `yaml:"first_seen"`
	LastSeen        *Duration         `yaml:"last_seen"`
	Fields          map[string]any    `yaml:"fields"`
	Mitre           *[]string         `yaml:"mitre"`
	Tags            *[]string         `yaml:"tags"`
}

// EventsExpect is either a number of evidence events or their ids.
type EventsExpect struct {
	N   *int
	IDs []string
}

func (e *EventsExpect) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		v, err := strconv.Atoi(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: events: want a number or a list of event ids, got %q", n.Line, n.Value)
		}
		e.N = &v
		return nil
	case yaml.SequenceNode:
		e.IDs = []string{}
		return n.Decode(&e.IDs)
	}
	return fmt.Errorf("line %d: events: want a number or a list of event ids", n.Line)
}

// Duration is a time.Duration written as in rule files (rule.ParseDuration:
// a unit is required, e.g. 30s, 5m, 1h30m, 2d; 0 is allowed bare).
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := rule.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d:%d: %w", n.Line, n.Column, err)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return formatOffset(time.Duration(d)) }

// formatOffset prints an offset compactly: 10m, 1h30m, 45s.
func formatOffset(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ParseFile reads and checks a test file.
func ParseFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses a test file's contents; path is used for messages and to
// resolve relative paths.
func Parse(path string, data []byte) (*File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := &File{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	recordLines(&root, f)
	if f.StartTime == "" {
		f.start = time.Unix(0, 0).UTC()
	} else {
		t, err := time.Parse(time.RFC3339Nano, f.StartTime)
		if err != nil {
			return nil, fmt.Errorf("%s: start_time: %w", path, err)
		}
		f.start = t.UTC()
	}
	if len(f.Tests) == 0 {
		return nil, fmt.Errorf("%s: no tests", path)
	}
	seen := map[string]bool{}
	for i := range f.Tests {
		t := &f.Tests[i]
		where := fmt.Sprintf("%s:%d", path, t.line)
		if t.Name == "" {
			return nil, fmt.Errorf("%s: test without a name", where)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%s: duplicate test name %q", where, t.Name)
		}
		seen[t.Name] = true
		t.start = f.start
		if t.StartTime != "" {
			st, err := time.Parse(time.RFC3339Nano, t.StartTime)
			if err != nil {
				return nil, fmt.Errorf("%s: test %q: start_time: %w", where, t.Name, err)
			}
			t.start = st.UTC()
		}
		if len(t.Expect) == 0 {
			return nil, fmt.Errorf("%s: test %q asserts nothing (no expect)", where, t.Name)
		}
		for _, e := range t.Expect {
			if e.Incidents == nil {
				return nil, fmt.Errorf("%s:%d: test %q: expect at %s has no incidents: (write incidents: [] to assert none)", path, e.line, t.Name, e.EvalTime)
			}
		}
		for _, in := range t.InputEvents {
			if (in.File == "") == (in.Event == nil) {
				return nil, fmt.Errorf("%s:%d: test %q: an input event needs exactly one of file or event", path, in.line, t.Name)
			}
			if in.Repeat < 0 {
				return nil, fmt.Errorf("%s:%d: test %q: repeat must be positive", path, in.line, t.Name)
			}
		}
		for _, s := range t.InputSeries {
			if s.Series != "cpu_pct" && s.Series != "mem_pct" {
				return nil, fmt.Errorf("%s:%d: test %q: series %q: want cpu_pct or mem_pct", path, s.line, t.Name, s.Series)
			}
		}
	}
	return f, nil
}

// recordLines copies line numbers from the YAML tree into the decoded
// structs, for error messages.
func recordLines(root *yaml.Node, f *File) {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return
	}
	tests := mapValue(root.Content[0], "tests")
	if tests == nil || tests.Kind != yaml.SequenceNode {
		return
	}
	for i, tn := range tests.Content {
		if i >= len(f.Tests) {
			break
		}
		t := &f.Tests[i]
		t.line = tn.Line
		if s := mapValue(tn, "input_events"); s != nil {
			for j, n := range s.Content {
				if j < len(t.InputEvents) {
					t.InputEvents[j].line = n.Line
				}
			}
		}
		if s := mapValue(tn, "input_series"); s != nil {
			for j, n := range s.Content {
				if j < len(t.InputSeries) {
					t.InputSeries[j].line = n.Line
				}
			}
		}
		if s := mapValue(tn, "expect"); s != nil {
			for j, n := range s.Content {
				if j < len(t.Expect) {
					t.Expect[j].line = n.Line
				}
			}
		}
	}
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
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
