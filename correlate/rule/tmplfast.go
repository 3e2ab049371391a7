package rule

import (
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// text/template evaluates every field and call through reflection:
// microseconds per template, on the engine's serial path, for every
// incident. Rule templates are mostly text, field chains (rewritten to get,
// see tmplsafe.go), a few of FuncMap's functions, eq, printf, if and with.
// A fastTemplate is such a template compiled into closures over the
// OutputEnv maps that print, test and call as text/template does. The
// rest (range, variables, other functions; values of other types than
// OutputEnv's: pointers, structs but time.Time) is text/template's, whole:
// at compile time when the template's shape needs it, at run time when a
// value does (an execution has no side effects, so it can start over).
//
// Only templates of parseTemplate may be compiled: the semantics assumed
// are those of its FuncMap, its default missingkey option and its
// rewrite of chains.

// fastTemplate is a compiled template.
type fastTemplate struct {
	root fastList
	size int // of the literal text: the output's usual length
}

type fastState struct {
	b    strings.Builder
	root any // $
}

// fastList writes its output; false: leave this execution to text/template.
type fastList func(s *fastState, dot any) bool

// fastCmd is a command's value; final is the previous command's (piped).
type fastCmd func(s *fastState, dot, final any) (any, bool)

// fastArg is the value of an argument or of a command without a final.
type fastArg func(s *fastState, dot any) (any, bool)

// fastCompiler compiles one template.
type fastCompiler struct {
	funcs template.FuncMap // FuncMap's: the functions called are its own
	size  int
}

// compileFast compiles t, or returns nil when text/template must run it.
func compileFast(t *template.Template) *fastTemplate {
	if t == nil || t.Tree == nil || t.Tree.Root == nil {
		return nil
	}
	c := &fastCompiler{funcs: FuncMap()}
	root, ok := c.list(t.Tree.Root)
	if !ok {
		return nil
	}
	return &fastTemplate{root: root, size: c.size}
}

// exec renders env as Render does (space trimmed); false: it cannot.
func (f *fastTemplate) exec(env OutputEnv) (out string, ok bool) {
	// A function may panic (in a Stringer it calls): text/template makes
	// that an error, so it runs the template again and reports it.
	defer func() {
		if recover() != nil {
			out, ok = "", false
		}
	}()
	s := &fastState{root: env}
	s.b.Grow(f.size + 32)
	if !f.root(s, env) {
		return "", false
	}
	return strings.TrimSpace(s.b.String()), true
}

func (c *fastCompiler) list(l *parse.ListNode) (fastList, bool) {
	var nodes []fastList
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			text := string(n.Text)
			c.size += len(text)
			nodes = append(nodes, func(s *fastState, _ any) bool {
				s.b.WriteString(text)
				return true
			})
		case *parse.CommentNode:
		case *parse.ActionNode:
			if len(n.Pipe.Decl) > 0 {
				return nil, false
			}
			p, ok := c.pipe(n.Pipe)
			if !ok {
				return nil, false
			}
			nodes = append(nodes, func(s *fastState, dot any) bool {
				v, ok := p(s, dot)
				return ok && printFast(&s.b, v)
			})
		case *parse.IfNode:
			b, ok := c.branch(&n.BranchNode, false)
			if !ok {
				return nil, false
			}
			nodes = append(nodes, b)
		case *parse.WithNode:
			b, ok := c.branch(&n.BranchNode, true)
			if !ok {
				return nil, false
			}
			nodes = append(nodes, b)
		default:
			return nil, false
		}
	}
	return func(s *fastState, dot any) bool {
		for _, n := range nodes {
			if !n(s, dot) {
				return false
			}
		}
		return true
	}, true
}

// branch is if or (with) with: the body sees the pipeline's value as dot.
func (c *fastCompiler) branch(b *parse.BranchNode, with bool) (fastList, bool) {
	if len(b.Pipe.Decl) > 0 {
		return nil, false
	}
	cond, ok := c.pipe(b.Pipe)
	if !ok {
		return nil, false
	}
	body, ok := c.list(b.List)
	if !ok {
		return nil, false
	}
	var els fastList
	if b.ElseList != nil {
		if els, ok = c.list(b.ElseList); !ok {
			return nil, false
		}
	}
	return func(s *fastState, dot any) bool {
		v, ok := cond(s, dot)
		if !ok {
			return false
		}
		truth, ok := truthFast(v)
		switch {
		case !ok:
			return false
		case truth && with:
			return body(s, v)
		case truth:
			return body(s, dot)
		case els != nil:
			return els(s, dot)
		}
		return true
	}, true
}

// pipe compiles a pipeline: an argument-like first command, then calls
// that each take the previous value as their last argument.
func (c *fastCompiler) pipe(p *parse.PipeNode) (fastArg, bool) {
	if p == nil || len(p.Cmds) == 0 {
		return nil, false
	}
	cmds := make([]fastCmd, len(p.Cmds))
	for i, cmd := range p.Cmds {
		var ok bool
		if cmds[i], ok = c.cmd(cmd, i > 0); !ok {
			return nil, false
		}
	}
	if len(cmds) == 1 {
		first := cmds[0]
		return func(s *fastState, dot any) (any, bool) { return first(s, dot, nil) }, true
	}
	return func(s *fastState, dot any) (any, bool) {
		var v any
		for _, cmd := range cmds {
			var ok bool
			if v, ok = cmd(s, dot, v); !ok {
				return nil, false
			}
		}
		return v, true
	}, true
}

func (c *fastCompiler) cmd(cmd *parse.CommandNode, piped bool) (fastCmd, bool) {
	if id, ok := cmd.Args[0].(*parse.IdentifierNode); ok {
		return c.call(id.Ident, cmd.Args[1:], piped)
	}
	if len(cmd.Args) > 1 || piped {
		return nil, false // text/template: an error
	}
	a, ok := c.arg(cmd.Args[0])
	if !ok {
		return nil, false
	}
	return func(s *fastState, dot, _ any) (any, bool) { return a(s, dot) }, true
}

// arg compiles an argument of type any (or reflect.Value, eq's): nil
// stands for text/template's invalid value and nil interface alike, which
// it prints, tests and passes on alike.
func (c *fastCompiler) arg(n parse.Node) (fastArg, bool) {
	switch n := n.(type) {
	case *parse.StringNode:
		v := n.Text
		return func(*fastState, any) (any, bool) { return v, true }, true
	case *parse.BoolNode:
		v := n.True
		return func(*fastState, any) (any, bool) { return v, true }, true
	case *parse.DotNode:
		return func(_ *fastState, dot any) (any, bool) { return dot, true }, true
	case *parse.VariableNode:
		if len(n.Ident) != 1 || n.Ident[0] != "$" {
			return nil, false
		}
		return func(s *fastState, _ any) (any, bool) { return s.root, true }, true
	case *parse.FieldNode:
		if len(n.Ident) != 1 {
			return nil, false // not rewritten (a method call)
		}
		key := n.Ident[0]
		return func(_ *fastState, dot any) (any, bool) {
			m, ok := dot.(map[string]any)
			return m[key], ok // missing: <no value> (missingkey=default)
		}, true
	case *parse.PipeNode:
		if len(n.Decl) > 0 {
			return nil, false
		}
		return c.pipe(n)
	}
	return nil, false
}

// call compiles a call of a function of FuncMap, eq or printf (which
// FuncMap leaves to text/template), with the previous command's value
// (piped) as its last argument. A function of FuncMap whose signature is
// not the one expected here is left to text/template.
func (c *fastCompiler) call(name string, args []parse.Node, piped bool) (fastCmd, bool) {
	if _, ok := c.funcs[name]; !ok && name != "eq" && name != "printf" {
		return nil, false
	}
	switch name {
	case "get": // get base "k1" "k2"...: the rewrite of .a.b.c and $x.a.b
		if piped || len(args) == 0 {
			return nil, false
		}
		base, ok := c.arg(args[0])
		path, ok2 := tmplStrings(args[1:])
		if !ok || !ok2 {
			return nil, false
		}
		return func(s *fastState, dot, _ any) (any, bool) {
			v, ok := base(s, dot)
			if !ok {
				return nil, false
			}
			for _, p := range path {
				if v == nil {
					return nil, true
				}
				m, ok := v.(map[string]any)
				if !ok {
					return nil, false // getPath's reflection: methods, structs
				}
				v = m[p]
			}
			return v, true
		}, true
	case "join": // join list "sep"
		join, ok := c.funcs[name].(func(any, string) string)
		if !ok || piped || len(args) != 2 {
			return nil, false
		}
		list, ok := c.arg(args[0])
		sep, ok2 := tmplStrings(args[1:])
		if !ok || !ok2 {
			return nil, false
		}
		return func(s *fastState, dot, _ any) (any, bool) {
			v, ok := list(s, dot)
			if !ok {
				return nil, false
			}
			return join(v, sep[0]), true
		}, true
	case "printf": // printf "format" args...
		if _, redefined := c.funcs[name]; redefined || len(args) == 0 {
			return nil, false
		}
		format, ok := tmplStrings(args[:1])
		vals, _, ok2 := c.args(args[1:], piped)
		if !ok || !ok2 {
			return nil, false
		}
		return func(s *fastState, dot, final any) (any, bool) {
			v, ok := vals(s, dot, final, nil)
			if !ok {
				return nil, false
			}
			return fmt.Sprintf(format[0], v...), true
		}, true
	case "trunc": // trunc n v
		trunc, ok := c.funcs[name].(func(int, any) string)
		if !ok || len(args) == 0 {
			return nil, false
		}
		num, ok := args[0].(*parse.NumberNode)
		vals, n, ok2 := c.args(args[1:], piped)
		if !ok || !num.IsInt || !ok2 || n != 1 {
			return nil, false
		}
		max := int(num.Int64)
		return func(s *fastState, dot, final any) (any, bool) {
			var buf [1]any
			v, ok := vals(s, dot, final, buf[:0])
			if !ok {
				return nil, false
			}
			return trunc(max, v[0]), true
		}, true
	}
	// The rest take values of type any only (eq: reflect.Value).
	vals, n, ok := c.args(args, piped)
	if !ok {
		return nil, false
	}
	var fn func(v []any) (any, bool)
	switch f := c.funcs[name].(type) {
	case func(any, any) any:
		if n == 2 {
			fn = func(v []any) (any, bool) { return f(v[0], v[1]), true }
		}
	case func(any) string:
		if n == 1 {
			fn = func(v []any) (any, bool) { return f(v[0]), true }
		}
	case nil:
		if name == "eq" && n >= 2 {
			fn = func(v []any) (any, bool) { return eqFast(v[0], v[1:]) }
		}
	}
	if fn == nil {
		return nil, false
	}
	return func(s *fastState, dot, final any) (any, bool) {
		var buf [4]any
		v, ok := vals(s, dot, final, buf[:0])
		if !ok {
			return nil, false
		}
		return fn(v)
	}, true
}

// fastVals appends the values of a call's arguments, then final.
type fastVals func(s *fastState, dot, final any, out []any) ([]any, bool)

// args compiles arguments of type any (and a piped final); n counts them.
func (c *fastCompiler) args(args []parse.Node, piped bool) (vals fastVals, n int, ok bool) {
	ops := make([]fastArg, len(args))
	for i, a := range args {
		if ops[i], ok = c.arg(a); !ok {
			return nil, 0, false
		}
	}
	n = len(ops)
	if piped {
		n++
	}
	return func(s *fastState, dot, final any, out []any) ([]any, bool) {
		for _, op := range ops {
			v, ok := op(s, dot)
			if !ok {
				return nil, false
			}
			out = append(out, v)
		}
		if piped {
			out = append(out, final)
		}
		return out, true
	}, n, true
}

// tmplStrings returns the texts of string literals (parameters of type
// string take nothing else).
func tmplStrings(args []parse.Node) ([]string, bool) {
	out := make([]string, len(args))
	for i, a := range args {
		s, ok := a.(*parse.StringNode)
		if !ok {
			return nil, false
		}
		out[i] = s.Text
	}
	return out, true
}

// eqFast is text/template's eq for strings and nil (absent values); false
// for anything else.
func eqFast(a any, bs []any) (any, bool) {
	as, aStr := a.(string)
	if !aStr && a != nil {
		return nil, false
	}
	truth := false
	for _, b := range bs {
		bstr, bStr := b.(string)
		switch {
		case !bStr && b != nil:
			return nil, false
		case !truth && aStr && bStr:
			truth = as == bstr
		case !truth:
			truth = a == nil && b == nil // nil == nil; a string is no nil
		}
	}
	return truth, true
}

// truthFast is text/template's truth (isTrue) of the values OutputEnv
// holds; false when another type needs reflection.
func truthFast(v any) (truth, ok bool) {
	switch v := v.(type) {
	case nil:
		return false, true
	case bool:
		return v, true
	case string:
		return v != "", true
	case float64:
		return v != 0, true
	case int:
		return v != 0, true
	case int64:
		return v != 0, true
	case map[string]any:
		return len(v) > 0, true
	case []any:
		return len(v) > 0, true
	case []string:
		return len(v) > 0, true
	case time.Time:
		return true, true // a struct
	}
	return false, false
}

// printFast writes v as text/template prints a pipeline's value: it
// dereferences pointers and refuses chans and funcs, so those are left to
// it; everything else is fmt.Fprint's.
func printFast(b *strings.Builder, v any) bool {
	switch v := v.(type) {
	case nil:
		b.WriteString("<no value>")
		return true
	case string:
		b.WriteString(v)
		return true
	}
	switch reflect.TypeOf(v).Kind() {
	case reflect.Pointer, reflect.Chan, reflect.Func:
		return false
	}
	fmt.Fprint(b, v)
	return true
}
