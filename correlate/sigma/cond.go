package sigma

import (
	"fmt"
	"strings"
	"unicode"
)

// condition AST. Precedence, least to most binding: or, and, not,
// "x of", parentheses.
type condNode interface{ isCond() }

type (
	condAnd   struct{ l, r condNode }
	condOr    struct{ l, r condNode }
	condNot   struct{ x condNode }
	condIdent struct {
		name string
		off  int
	}
	// condOf is "1 of" (all=false) or "all of" a set of selections,
	// resolved at parse time.
	condOf struct {
		all   bool
		names []string
	}
)

func (condAnd) isCond()   {}
func (condOr) isCond()    {}
func (condNot) isCond()   {}
func (condIdent) isCond() {}
func (condOf) isCond()    {}

type token struct {
	text string
	off  int // byte offset in the condition
}

// condError is a condition error at a byte offset of the condition text.
type condError struct {
	off int
	msg string
}

func (e *condError) Error() string { return e.msg }

func lexCond(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')':
			toks = append(toks, token{s[i : i+1], i})
			i++
		case c == '|':
			return nil, &condError{i, "the aggregation syntax (condition | count() ...) was removed in Sigma 2.0; write a Sigma correlation rule instead"}
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r()|", rune(s[j])) {
				j++
			}
			toks = append(toks, token{s[i:j], i})
			i = j
		}
	}
	return toks, nil
}

type condParser struct {
	toks  []token
	i     int
	sels  map[string]*Selection
	order []string
	end   int
}

func (p *condParser) peek() (token, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return token{off: p.end}, false
}

func isKw(t token, kw string) bool { return strings.EqualFold(t.text, kw) }

func parseCond(text string, sels map[string]*Selection, order []string) (condNode, error) {
	toks, err := lexCond(text)
	if err != nil {
		return nil, err
	}
	p := &condParser{toks: toks, sels: sels, order: order, end: len(text)}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t, ok := p.peek(); ok {
		return nil, &condError{t.off, fmt.Sprintf("unexpected %q", t.text)}
	}
	return n, nil
}

func (p *condParser) or() (condNode, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || !isKw(t, "or") {
			return l, nil
		}
		p.i++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = condOr{l, r}
	}
}

func (p *condParser) and() (condNode, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || !isKw(t, "and") {
			return l, nil
		}
		p.i++
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = condAnd{l, r}
	}
}

func (p *condParser) not() (condNode, error) {
	t, ok := p.peek()
	if ok && isKw(t, "not") {
		p.i++
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return condNot{x}, nil
	}
	return p.primary()
}

func (p *condParser) primary() (condNode, error) {
	t, ok := p.peek()
	if !ok {
		return nil, &condError{t.off, "condition ends where a search identifier, 'not', '(' or 'x of' is expected"}
	}
	switch {
	case t.text == "(":
		p.i++
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		c, ok := p.peek()
		if !ok || c.text != ")" {
			return nil, &condError{c.off, fmt.Sprintf("missing ')' for the '(' at offset %d", t.off)}
		}
		p.i++
		return n, nil
	case t.text == ")":
		return nil, &condError{t.off, "unexpected ')'"}
	case isKw(t, "and") || isKw(t, "or") || isKw(t, "of") || isKw(t, "them"):
		return nil, &condError{t.off, fmt.Sprintf("unexpected %q", t.text)}
	}
	// "x of"
	if p.i+1 < len(p.toks) && isKw(p.toks[p.i+1], "of") {
		all := false
		switch {
		case t.text == "1":
		case isKw(t, "all"):
			all = true
		default:
			return nil, &condError{t.off, fmt.Sprintf("%q of: only '1 of' and 'all of' exist", t.text)}
		}
		p.i += 2
		pt, ok := p.peek()
		if !ok || pt.text == "(" || pt.text == ")" {
			return nil, &condError{pt.off, "'of' needs 'them' or a search identifier pattern"}
		}
		p.i++
		var names []string
		if isKw(pt, "them") {
			for _, n := range p.order {
				if !strings.HasPrefix(n, "_") {
					names = append(names, n)
				}
			}
		} else {
			for _, n := range p.order {
				if starMatch(pt.text, n) {
					names = append(names, n)
				}
			}
		}
		if len(names) == 0 {
			return nil, &condError{pt.off, fmt.Sprintf("%q matches no search identifier", pt.text)}
		}
		return condOf{all: all, names: names}, nil
	}
	p.i++
	if strings.Contains(t.text, "*") {
		return nil, &condError{t.off, fmt.Sprintf("%q: a pattern needs '1 of' or 'all of'", t.text)}
	}
	if _, ok := p.sels[t.text]; !ok {
		if t.text != "" && unicode.IsDigit(rune(t.text[0])) {
			return nil, &condError{t.off, fmt.Sprintf("%q: expected 'of' after it, or a search identifier", t.text)}
		}
		return nil, &condError{t.off, fmt.Sprintf("undefined search identifier %q", t.text)}
	}
	return condIdent{t.text, t.off}, nil
}

// starMatch matches s against pattern where '*' is any run of characters
// (the only wildcard of search identifier patterns).
func starMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}
