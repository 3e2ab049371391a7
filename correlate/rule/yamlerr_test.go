package rule

import (
	"fmt"
	"strings"
	"testing"
)

// YAML errors are reported where the problem is: yaml.v3 names only the
// (0-based) line where the enclosing construct starts, and UTF-8 errors
// no line at all.
func TestYAMLErrorPositions(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"bad indentation on line 6", "rules:\n  - id: x\n    title: foo\n   bad: indent\n    more: x\n",
			"t.yaml:6:4: error: yaml: did not find expected '-' indicator"}, // yaml.v3 says line 3
		{"unclosed flow list, lines 6-7", "signals:\n  - name: x\n    where: 'a'\n    source: [a, b\n    x: y\n",
			"t.yaml:6:17: error: yaml: did not find expected ',' or ']'"}, // yaml.v3 says line 5
		{"invalid UTF-8 on line 6", "lists:\n  a: [1]\n  b: [2]\n  c: \"\xff\"\n",
			"t.yaml:6:7: error: yaml: invalid leading UTF-8 octet"}, // no line from yaml.v3
		{"invalid UTF-8 after a multi-byte char", "lists:\n  a: [\"é\xc3\"]\n",
			"t.yaml:4:9: error: yaml: invalid trailing UTF-8 octet"},
		{"unterminated string", "lists:\n  a: [1]\n  b: \"unterminated\n  c: 2\n",
			"t.yaml:5:6: error: yaml: found unexpected end of stream"},
		{"character that cannot start a token", "lists:\n  a: [1]\n  b: @x\n",
			"t.yaml:5:6: error: yaml: found character that cannot start any token"},
		{"mapping value in a plain scalar", "lists:\n  a: [1]\n  d: x: y\n",
			"t.yaml:5:7: error: yaml: mapping values are not allowed in this context"},
		{"second document", "lists:\n  a: [1]\n---\nlists:\n  b: {x: 1\n  c: 2\n",
			"t.yaml:7:10: error: yaml: did not find expected ',' or '}'"},
		{"unknown anchor", "lists:\n  a: *nope\n", "t.yaml:4:10: error: yaml: unknown anchor 'nope' referenced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Load([]NamedSource{{Name: "t.yaml", Data: []byte(header + tc.body)}}, LoadOptions{})
			if got := diags.Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// billionLaughs nests levels lists of 9 aliases of the level below.
func billionLaughs(levels int) string {
	var b strings.Builder
	b.WriteString("x:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	prev := "a"
	for i := range levels {
		n := fmt.Sprintf("b%d", i)
		fmt.Fprintf(&b, "  %s: &%s [*%[3]s, *%[3]s, *%[3]s, *%[3]s, *%[3]s, *%[3]s, *%[3]s, *%[3]s, *%[3]s]\n", n, n, prev)
		prev = n
	}
	return b.String()
}

// An alias bomb is refused once, before anything walks its expansion; an
// alias inside its own anchor (which would recurse forever) is an error;
// one bad node repeated by aliases is reported once, with the count.
func TestYAMLAliases(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"billion laughs", billionLaughs(9) + "rules:\n  - id: r\n    title: t\n    severity: low\n    detect: {match: {signal: exec}, x: *b8}\n    exceptions: [{name: e, fields: [raw.x], values: *b8, reason: r, expires: 2030-01-01}]\n" + baseSignals,
			"t.yaml:1:1: error: yaml: document expands to more than 100000 nodes through aliases (179 written); refused as an alias bomb"},
		{"alias inside its anchor", "lists:\n  l: &a [*a]\n", "t.yaml:4:10: error: yaml: alias *a is inside its own anchor &a"},
		{"recursive detect", "rules:\n  - id: r\n    title: t\n    severity: low\n    detect: &d {match: {signal: exec}, x: [*d]}\n" + baseSignals,
			"t.yaml:7:44: error: yaml: alias *d is inside its own anchor &d"},
		{"one bad item 80 times", "lists:\n  l: [&bad [1], " + strings.Repeat("*bad, ", 79) + "2]\n",
			"t.yaml:4:7: error: list l: items must be scalars, got a list (80 times, through YAML aliases)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Load([]NamedSource{{Name: "t.yaml", Data: []byte(header + tc.body)}}, LoadOptions{})
			if got := diags.Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// Aliases that stay small are fine.
	_, diags := Load([]NamedSource{{Name: "t.yaml", Data: []byte(header + billionLaughs(2) + "lists:\n  l: [1]\n")}}, LoadOptions{})
	if got := diags.Error(); got != `t.yaml:3:1: error: unknown key "x" in rule file (want one of: apiVersion, kind, lists, macros, signals, rules)` {
		t.Errorf("small aliases: %s", got)
	}
}
