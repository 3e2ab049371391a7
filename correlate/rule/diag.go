package rule

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severities of a Diagnostic.
const (
	SevError   = "error"
	SevWarning = "warning"
)

// Diagnostic is one problem found while loading rule files.
type Diagnostic struct {
	Pos      Pos
	Severity string // "error" or "warning"
	Msg      string
}

func (d Diagnostic) String() string {
	return fmt.Sprintf("%s: %s: %s", d.Pos, d.Severity, d.Msg)
}

// Diagnostics is every problem found by one load. It is an error (all
// messages joined by newlines) when it holds at least one error.
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

// Errors returns only the errors.
func (ds Diagnostics) Errors() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == SevError {
			out = append(out, d)
		}
	}
	return out
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

// Err returns ds as an error when it has errors, else nil.
func (ds Diagnostics) Err() error {
	if ds.HasErrors() {
		return ds
	}
	return nil
}

// dedup merges repeats of one diagnostic (same position, severity and
// message, as YAML aliases produce when they repeat a bad node) into its
// first occurrence, which says how often it occurred.
func (ds Diagnostics) dedup() Diagnostics {
	seen := make(map[Diagnostic]int, len(ds)) // → index in out
	counts := make([]int, 0, len(ds))
	out := make(Diagnostics, 0, len(ds))
	for _, d := range ds {
		if i, ok := seen[d]; ok {
			counts[i]++
			continue
		}
		seen[d] = len(out)
		out = append(out, d)
		counts = append(counts, 1)
	}
	for i, n := range counts {
		if n > 1 {
			out[i].Msg += fmt.Sprintf(" (%d times, through YAML aliases)", n)
		}
	}
	return out
}

func (ds Diagnostics) sort() {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
}

// SevNote is an informational diagnostic (e.g. a signal without derivable
// event types); it never fails a load.
const SevNote = "note"
