package deploy_test

// A small evaluator of the Terraform module, enough to compute what the
// checks need (the container definition, the IAM policies, the rendered
// config) with hcl/v2 and cty: variables from the example's tfvars and
// module block, data sources and resource attributes stubbed with
// placeholder values, locals evaluated until nothing more resolves. It is
// not Terraform: `terraform validate` in CI checks the rest.

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

const (
	testAccount = "111122223333"
	testRegion  = "us-east-1"
)

var topSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "terraform"},
	{Type: "provider", LabelNames: []string{"name"}},
	{Type: "variable", LabelNames: []string{"name"}},
	{Type: "locals"},
	{Type: "output", LabelNames: []string{"name"}},
	{Type: "module", LabelNames: []string{"name"}},
	{Type: "resource", LabelNames: []string{"type", "name"}},
	{Type: "data", LabelNames: []string{"type", "name"}},
}}

// tfModule is one parsed Terraform module directory.
type tfModule struct {
	dir       string
	parser    *hclparse.Parser
	variables map[string]*hcl.Block
	locals    map[string]*hcl.Attribute
	resources map[string]*hcl.Block // "type.name"
	modules   map[string]*hcl.Block
}

// parseModule parses every .tf and .tf.json file of dir; any diagnostic
// fails the test.
func parseModule(t *testing.T, dir string) *tfModule {
	t.Helper()
	m := &tfModule{dir: dir, parser: hclparse.NewParser(), variables: map[string]*hcl.Block{},
		locals: map[string]*hcl.Attribute{}, resources: map[string]*hcl.Block{}, modules: map[string]*hcl.Block{}}
	names, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	jsonNames, _ := filepath.Glob(filepath.Join(dir, "*.tf.json"))
	names = append(names, jsonNames...)
	if len(names) == 0 {
		t.Fatalf("%s: no .tf files", dir)
	}
	for _, name := range names {
		var f *hcl.File
		var diags hcl.Diagnostics
		if strings.HasSuffix(name, ".json") {
			f, diags = m.parser.ParseJSONFile(name)
		} else {
			f, diags = m.parser.ParseHCLFile(name)
		}
		m.fail(t, diags)
		content, diags := f.Body.Content(topSchema)
		m.fail(t, diags)
		for _, b := range content.Blocks {
			switch b.Type {
			case "variable":
				m.variables[b.Labels[0]] = b
			case "resource":
				m.resources[b.Labels[0]+"."+b.Labels[1]] = b
			case "module":
				m.modules[b.Labels[0]] = b
			case "locals":
				attrs, diags := b.Body.JustAttributes()
				m.fail(t, diags)
				for n, a := range attrs {
					if _, dup := m.locals[n]; dup {
						t.Errorf("%s: local %s defined twice", a.Range, n)
					}
					m.locals[n] = a
				}
			}
		}
	}
	return m
}

func (m *tfModule) fail(t *testing.T, diags hcl.Diagnostics) {
	t.Helper()
	if diags.HasErrors() {
		t.Fatal(diagString(m.parser, diags))
	}
}

func diagString(p *hclparse.Parser, diags hcl.Diagnostics) string {
	var b strings.Builder
	w := hcl.NewDiagnosticTextWriter(&b, p.Files(), 100, false)
	_ = w.WriteDiagnostics(diags)
	return b.String()
}

// attr returns one attribute of a block (nil when absent).
func attr(t *testing.T, b *hcl.Block, name string) *hcl.Attribute {
	t.Helper()
	c, _, diags := b.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
	if diags.HasErrors() {
		t.Fatalf("%s: %s", b.DefRange, diags)
	}
	return c.Attributes[name]
}

// inputs evaluates the module's variables: the defaults, overridden by
// given, converted to each variable's type. A variable without default
// and value fails the test.
func (m *tfModule) inputs(t *testing.T, given map[string]cty.Value) map[string]cty.Value {
	t.Helper()
	out := map[string]cty.Value{}
	for name, b := range m.variables {
		ty := cty.DynamicPseudoType
		if a := attr(t, b, "type"); a != nil {
			var diags hcl.Diagnostics
			ty, diags = typeexpr.TypeConstraint(a.Expr)
			m.fail(t, diags)
		}
		v, ok := given[name]
		if !ok {
			a := attr(t, b, "default")
			if a == nil {
				t.Fatalf("variable %q has no default and no value", name)
			}
			var diags hcl.Diagnostics
			v, diags = a.Expr.Value(nil)
			m.fail(t, diags)
		}
		if !v.IsNull() {
			cv, err := convert.Convert(v, ty)
			if err != nil {
				t.Fatalf("variable %q: %v", name, err)
			}
			v = cv
		}
		out[name] = v
	}
	for name := range given {
		if _, ok := m.variables[name]; !ok {
			t.Fatalf("%s: no variable %q", m.dir, name)
		}
	}
	return out
}

// evaluator holds the context the module's expressions are evaluated in.
type evaluator struct {
	m      *tfModule
	vars   map[string]cty.Value
	locals map[string]cty.Value
	// stubs are placeholder values of data sources and resources: a tree
	// built from the traversals the expressions make.
	stubs    *stubNode
	localErr map[string]hcl.Diagnostics
}

func newEvaluator(t *testing.T, m *tfModule, vars map[string]cty.Value) *evaluator {
	e := &evaluator{m: m, vars: vars, locals: map[string]cty.Value{}, stubs: &stubNode{}, localErr: map[string]hcl.Diagnostics{}}
	// Data sources the module reads, with the example's values.
	e.stubs.set([]string{"data", "aws_partition", "current", "partition"}, cty.StringVal("aws"))
	e.stubs.set([]string{"data", "aws_region", "current", "region"}, cty.StringVal(testRegion))
	e.stubs.set([]string{"data", "aws_caller_identity", "current", "account_id"}, cty.StringVal(testAccount))
	// Resolve locals until no more resolve; those that stay unresolved
	// are errors only if something needed reads them (local()).
	pending := map[string]*hcl.Attribute{}
	for n, a := range m.locals {
		pending[n] = a
	}
	for progress := true; progress && len(pending) > 0; {
		progress = false
		names := make([]string, 0, len(pending))
		for n := range pending {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			a := pending[n]
			if !e.localsReady(a.Expr) {
				continue
			}
			v, diags := e.eval(a.Expr)
			delete(pending, n)
			progress = true
			if diags.HasErrors() {
				e.localErr[n] = diags
				continue
			}
			e.locals[n] = v
		}
	}
	for n := range pending {
		e.localErr[n] = hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "depends on an unresolved local"}}
	}
	return e
}

func (e *evaluator) localsReady(x hcl.Expression) bool {
	for _, tr := range x.Variables() {
		if tr.RootName() != "local" || len(tr) < 2 {
			continue
		}
		if a, ok := tr[1].(hcl.TraverseAttr); ok {
			if _, done := e.locals[a.Name]; !done {
				if _, failed := e.localErr[a.Name]; !failed {
					return false
				}
			}
		}
	}
	return true
}

func (e *evaluator) local(t *testing.T, name string) cty.Value {
	t.Helper()
	if diags, bad := e.localErr[name]; bad {
		t.Fatalf("local.%s: %s", name, diagString(e.m.parser, diags))
	}
	v, ok := e.locals[name]
	if !ok {
		t.Fatalf("no local.%s", name)
	}
	return v
}

func (e *evaluator) value(t *testing.T, x hcl.Expression) cty.Value {
	t.Helper()
	v, diags := e.eval(x)
	if diags.HasErrors() {
		t.Fatal(diagString(e.m.parser, diags))
	}
	return v
}

func (e *evaluator) eval(x hcl.Expression) (cty.Value, hcl.Diagnostics) {
	for _, tr := range x.Variables() {
		root := tr.RootName()
		if root == "data" || strings.HasPrefix(root, "aws_") {
			e.stubs.stub(tr)
		}
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":   cty.ObjectVal(orEmpty(e.vars)),
			"local": cty.ObjectVal(orEmpty(e.locals)),
			"path":  cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(e.m.dir)}),
		},
		Functions: functions(),
	}
	for k, v := range e.stubs.kids {
		ctx.Variables[k] = v.value()
	}
	return x.Value(ctx)
}

func orEmpty(m map[string]cty.Value) map[string]cty.Value {
	if m == nil {
		return map[string]cty.Value{}
	}
	return m
}

// stubNode is a tree of placeholder values; leaves hold a value.
type stubNode struct {
	kids map[string]*stubNode
	leaf *cty.Value
}

func (n *stubNode) child(k string) *stubNode {
	if n.kids == nil {
		n.kids = map[string]*stubNode{}
	}
	c := n.kids[k]
	if c == nil {
		c = &stubNode{}
		n.kids[k] = c
	}
	return c
}

func (n *stubNode) set(path []string, v cty.Value) {
	for _, k := range path {
		n = n.child(k)
	}
	n.leaf = &v
}

// stub adds a placeholder for a traversal into a resource or data source:
// aws_sqs_queue.events.arn becomes "arn:aws:stub:REGION:ACCOUNT:aws_sqs_queue/events",
// other attributes "<type>.<name>.<attr>"; aws_x.y[0].arn indexes a
// one-element tuple.
func (n *stubNode) stub(tr hcl.Traversal) {
	var path []string
	for _, step := range tr {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			path = append(path, s.Name)
		case hcl.TraverseAttr:
			path = append(path, s.Name)
		case hcl.TraverseIndex:
			if s.Key.Type() == cty.Number {
				bf := s.Key.AsBigFloat()
				i, _ := bf.Int64()
				path = append(path, "#"+strconv.FormatInt(i, 10))
			} else if s.Key.Type() == cty.String {
				path = append(path, s.Key.AsString())
			}
		}
	}
	cur := n
	for _, k := range path {
		cur = cur.child(k)
	}
	if cur.leaf != nil || len(cur.kids) > 0 {
		return
	}
	var named []string
	for _, k := range path {
		if !strings.HasPrefix(k, "#") {
			named = append(named, k)
		}
	}
	last := named[len(named)-1]
	var v cty.Value
	switch {
	case len(named) < 3:
		return // the resource itself (a for expression over it): an empty object
	case last == "arn":
		v = cty.StringVal(fmt.Sprintf("arn:aws:stub:%s:%s:%s/%s", testRegion, testAccount, named[0], named[1]))
	case last == "json":
		v = cty.StringVal("{}")
	default:
		v = cty.StringVal(strings.Join(named, "."))
	}
	cur.leaf = &v
}

func (n *stubNode) value() cty.Value {
	if n.leaf != nil {
		return *n.leaf
	}
	if len(n.kids) == 0 {
		return cty.EmptyObjectVal
	}
	idx := map[int]cty.Value{}
	obj := map[string]cty.Value{}
	for k, c := range n.kids {
		if i, err := strconv.Atoi(strings.TrimPrefix(k, "#")); err == nil && strings.HasPrefix(k, "#") {
			idx[i] = c.value()
		} else {
			obj[k] = c.value()
		}
	}
	if len(idx) > 0 && len(obj) == 0 {
		max := 0
		for i := range idx {
			if i > max {
				max = i
			}
		}
		elems := make([]cty.Value, max+1)
		for i := range elems {
			if v, ok := idx[i]; ok {
				elems[i] = v
			} else {
				elems[i] = cty.EmptyObjectVal
			}
		}
		return cty.TupleVal(elems)
	}
	return cty.ObjectVal(obj)
}

// functions are the Terraform functions the module may use. A function
// not here is an error in the test: add it (with Terraform's semantics)
// or do without.
func functions() map[string]function.Function {
	fs := map[string]function.Function{
		"alltrue":    allTrue,
		"can":        tryfunc.CanFunc,
		"coalesce":   stdlib.CoalesceFunc,
		"concat":     stdlib.ConcatFunc,
		"contains":   stdlib.ContainsFunc,
		"distinct":   stdlib.DistinctFunc,
		"format":     stdlib.FormatFunc,
		"join":       stdlib.JoinFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"keys":       stdlib.KeysFunc,
		"length":     stdlib.LengthFunc,
		"lookup":     stdlib.LookupFunc,
		"merge":      stdlib.MergeFunc,
		"regex":      stdlib.RegexFunc,
		"replace":    stdlib.ReplaceFunc,
		"sort":       stdlib.SortFunc,
		"toset":      stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"try":        tryfunc.TryFunc,
		"values":     stdlib.ValuesFunc,
	}
	fs["templatefile"] = templateFile(fs)
	return fs
}

var allTrue = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		for it := args[0].ElementIterator(); it.Next(); {
			_, v := it.Element()
			if v.IsNull() || v.False() {
				return cty.False, nil
			}
		}
		return cty.True, nil
	},
})

// templateFile is Terraform's templatefile(path, vars).
func templateFile(fs map[string]function.Function) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}, {Name: "vars", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			path := args[0].AsString()
			src, err := os.ReadFile(path)
			if err != nil {
				return cty.NilVal, err
			}
			x, diags := hclsyntax.ParseTemplate(src, path, hcl.Pos{Line: 1, Column: 1})
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			vars := map[string]cty.Value{}
			for it := args[1].ElementIterator(); it.Next(); {
				k, v := it.Element()
				vars[k.AsString()] = v
			}
			v, diags := x.Value(&hcl.EvalContext{Variables: vars, Functions: fs})
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			return v, nil
		},
	})
}
