package rule

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// seedRuleFiles returns every rule file of the repository (rules/ and the
// testdata folders), tests included: they are YAML too.
func seedRuleFiles(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, root := range []string{"../../rules", "testdata", "../ruletest/testdata", "../engine/testdata"} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || (filepath.Ext(p) != ".yaml" && filepath.Ext(p) != ".yml") {
				return err
			}
			data, err := os.ReadFile(p)
			if err == nil {
				out = append(out, data)
			}
			return err
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if len(out) < 20 {
		tb.Fatalf("only %d seed files", len(out))
	}
	return out
}

// checkPositions fails when a diagnostic points outside data: every one
// must name the file and a line and column that exist (the column may be
// one past the end of its line, for an error at the end of a line).
func checkPositions(t *testing.T, name string, data []byte, diags Diagnostics) {
	t.Helper()
	lines := SplitLines(string(data))
	for _, d := range diags {
		p := d.Pos
		if p.File != name || p.Line < 1 || p.Line > len(lines) || p.Col < 1 ||
			p.Col > utf8.RuneCountInString(lines[p.Line-1])+1 {
			t.Errorf("diagnostic outside the input (%d lines): %s", len(lines), d)
		}
	}
}

// seedSnippets splits rule files into one small file per section entry
// (a signal, a rule, the lists, the macros): small inputs mutate and
// minimise fast, the whole files keep the cross references.
func seedSnippets(files [][]byte) [][]byte {
	var out [][]byte
	for _, data := range files {
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			key, val := m.Content[i].Value, m.Content[i+1]
			var parts []*yaml.Node
			switch {
			case (key == "signals" || key == "rules") && val.Kind == yaml.SequenceNode:
				for _, it := range val.Content {
					parts = append(parts, &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{it}})
				}
			case key == "lists" || key == "macros":
				parts = append(parts, val)
			}
			for _, p := range parts {
				body, err := yaml.Marshal(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: key}, p}})
				if err == nil {
					out = append(out, append([]byte(header), body...))
				}
			}
		}
	}
	return out
}

// FuzzLoadRules loads arbitrary bytes as a rule file: no panic, every
// diagnostic inside the input, and a Set exactly when there is no error.
func FuzzLoadRules(f *testing.F) {
	files := seedRuleFiles(f)
	for _, data := range files {
		f.Add(data)
	}
	for _, data := range seedSnippets(files) {
		f.Add(data)
	}
	f.Add([]byte(header + billionLaughs(3)))
	f.Add([]byte(header + "lists:\n  l: &a [*a]\n"))
	f.Add([]byte(header + "lists:\n  c: \"\xff\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		set, diags := Load([]NamedSource{{Name: "f.yaml", Data: data}}, LoadOptions{Now: testNow})
		checkPositions(t, "f.yaml", data, diags)
		if (set == nil) != diags.HasErrors() {
			t.Errorf("set %v with errors %v", set != nil, diags.HasErrors())
		}
	})
}

// seedExprs returns every expression of the repository's rule files: the
// values of where, macros, fields, by and condition keys.
func seedExprs(tb testing.TB) []string {
	tb.Helper()
	var out []string
	var walk func(n *yaml.Node, key string)
	walk = func(n *yaml.Node, key string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, key)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if key == "macros" || key == "fields" {
					k = key // every value of these maps is an expression
				}
				walk(n.Content[i+1], k)
			}
		case yaml.ScalarNode:
			switch key {
			case "where", "macros", "fields", "condition", "expr", "closes", "when", "by", "field":
				out = append(out, n.Value)
			}
		}
	}
	for _, data := range seedRuleFiles(tb) {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc yaml.Node
			if dec.Decode(&doc) != nil {
				break
			}
			walk(&doc, "")
		}
	}
	if len(out) < 100 {
		tb.Fatalf("only %d seed expressions", len(out))
	}
	return out
}

// exprFile puts expr into a signal's where and fields, as a block scalar
// so that any text is the expression, next to a list and a macro it may use.
func exprFile(src string) []byte {
	ind := "      " + strings.ReplaceAll(src, "\n", "\n      ")
	return []byte(header + `lists:
  l: [a, 1, 2.5, true]
macros:
  m: 'raw.eventName in lists.l'
signals:
  - name: s
    source: cloudtrail
    where: |-
` + ind + `
    fields:
      f: |-
` + "  " + strings.ReplaceAll(ind, "\n", "\n  ") + "\n")
}

// FuzzCompileExpr compiles arbitrary expressions as a signal's where and
// fields (the type checker, macro and list resolution, inZone, type
// derivation and position mapping): no panic, every diagnostic inside the
// file.
func FuzzCompileExpr(f *testing.F) {
	for _, e := range seedExprs(f) {
		f.Add(e)
	}
	f.Add(`inZone(event.time, "Europe/Paris")`)
	f.Add(`raw.a contains "x" || raw.b startsWith "y" || raw.c endsWith "z" || raw.d matches "^a+$"`)
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 4<<10 {
			return
		}
		data := exprFile(src)
		set, diags := Load([]NamedSource{{Name: "e.yaml", Data: data}}, LoadOptions{Now: testNow})
		checkPositions(t, "e.yaml", data, diags)
		if (set == nil) != diags.HasErrors() {
			t.Errorf("set %v with errors %v", set != nil, diags.HasErrors())
		}
	})
}
