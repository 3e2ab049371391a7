package rule

import (
	"reflect"
	"strconv"
	"text/template"
	"text/template/parse"
)

// Templates read deep paths into JSON (.steps.exec.raw.userIdentity.arn)
// where any level may be absent or null. text/template fails on a field of a
// nil interface, so NewTemplate rewrites every multi-level field chain
// .a.b.c (and $x.a.b) into (get . "a" "b" "c"), which yields nil — printed
// as <no value>, false in if — instead of failing.

// getPath walks maps by key (and structs by field or niladic method).
func getPath(v any, path ...string) any {
	for _, p := range path {
		if v == nil {
			return nil
		}
		switch m := v.(type) {
		case map[string]any:
			v = m[p]
			continue
		}
		rv := reflect.ValueOf(v)
		if mv := rv.MethodByName(p); mv.IsValid() && mv.Type().NumIn() == 0 && mv.Type().NumOut() >= 1 {
			v = mv.Call(nil)[0].Interface()
			continue
		}
		for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
			if rv.IsNil() {
				return nil
			}
			rv = rv.Elem()
		}
		switch rv.Kind() {
		case reflect.Map:
			if rv.Type().Key().Kind() != reflect.String {
				return nil
			}
			e := rv.MapIndex(reflect.ValueOf(p).Convert(rv.Type().Key()))
			if !e.IsValid() {
				return nil
			}
			v = e.Interface()
		case reflect.Struct:
			fv := rv.FieldByName(p)
			if !fv.IsValid() || !fv.CanInterface() {
				return nil
			}
			v = fv.Interface()
		default:
			return nil
		}
	}
	return v
}

func safeTemplate(t *template.Template) {
	for _, tt := range t.Templates() {
		if tt.Tree != nil && tt.Tree.Root != nil {
			rewriteNode(tt.Tree, tt.Tree.Root)
		}
	}
}

func rewriteNode(tr *parse.Tree, n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			rewriteNode(tr, c)
		}
	case *parse.ActionNode:
		rewritePipe(tr, n.Pipe)
	case *parse.IfNode:
		rewriteBranch(tr, &n.BranchNode)
	case *parse.RangeNode:
		rewriteBranch(tr, &n.BranchNode)
	case *parse.WithNode:
		rewriteBranch(tr, &n.BranchNode)
	case *parse.TemplateNode:
		rewritePipe(tr, n.Pipe)
	}
}

func rewriteBranch(tr *parse.Tree, b *parse.BranchNode) {
	rewritePipe(tr, b.Pipe)
	rewriteNode(tr, b.List)
	if b.ElseList != nil {
		rewriteNode(tr, b.ElseList)
	}
}

func rewritePipe(tr *parse.Tree, p *parse.PipeNode) {
	if p == nil {
		return
	}
	for _, cmd := range p.Cmds {
		for i, a := range cmd.Args {
			switch a := a.(type) {
			case *parse.PipeNode:
				rewritePipe(tr, a)
				continue
			case *parse.FieldNode:
				if len(a.Ident) < 2 {
					continue
				}
				if i == 0 && len(cmd.Args) > 1 {
					continue // a method call with arguments: leave it
				}
				args := []parse.Node{parse.NewIdentifier("get").SetTree(tr).SetPos(a.Pos), &parse.DotNode{NodeType: parse.NodeDot, Pos: a.Pos}}
				args = append(args, strNodes(a.Pos, a.Ident)...)
				replaceArg(cmd, i, args, a.Pos)
			case *parse.VariableNode:
				if len(a.Ident) < 2 || (i == 0 && len(cmd.Args) > 1) {
					continue
				}
				v := &parse.VariableNode{NodeType: parse.NodeVariable, Pos: a.Pos, Ident: a.Ident[:1]}
				args := []parse.Node{parse.NewIdentifier("get").SetTree(tr).SetPos(a.Pos), v}
				args = append(args, strNodes(a.Pos, a.Ident[1:])...)
				replaceArg(cmd, i, args, a.Pos)
			}
		}
	}
}

func strNodes(pos parse.Pos, ss []string) []parse.Node {
	out := make([]parse.Node, len(ss))
	for i, s := range ss {
		out[i] = &parse.StringNode{NodeType: parse.NodeString, Pos: pos, Quoted: strconv.Quote(s), Text: s}
	}
	return out
}

// replaceArg puts the call `args` in place of cmd.Args[i]: inline when it is
// the whole command, as a parenthesised pipeline otherwise.
func replaceArg(cmd *parse.CommandNode, i int, args []parse.Node, pos parse.Pos) {
	if i == 0 && len(cmd.Args) == 1 {
		cmd.Args = args
		return
	}
	inner := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: args}
	cmd.Args[i] = &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{inner}}
}

// rootFieldChains returns the field chains (.a.b.c) of t that are read
// while dot is still the root environment (outside with/range bodies), so
// the loader can check names against the output environment.
func rootFieldChains(t *template.Template) [][]string {
	var out [][]string
	for _, fn := range rootFieldNodes(t) {
		out = append(out, fn.Ident)
	}
	return out
}
