package sigma

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"
)

// seg is one piece of a Sigma string value: a literal (raw bytes; the
// encoding modifiers make non-UTF-8 bytes), '*' or '?'.
type seg struct {
	kind byte // 'l', '*', '?'
	lit  string
}

type pattern []seg

// parsePattern reads a Sigma string: '*' and '?' are wildcards; a backslash
// escapes '*', '?' and '\'; a backslash before anything else is itself.
func parsePattern(s string) pattern {
	var p pattern
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			p = append(p, seg{kind: 'l', lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '?' || s[i+1] == '\\'):
			lit.WriteByte(s[i+1])
			i++
		case c == '*' || c == '?':
			flush()
			p = append(p, seg{kind: c})
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return p
}

func (p pattern) hasWildcards() bool {
	for _, s := range p {
		if s.kind != 'l' {
			return true
		}
	}
	return false
}

func (p pattern) literal() string {
	var b strings.Builder
	for _, s := range p {
		b.WriteString(s.lit)
	}
	return b.String()
}

// normalize merges adjacent literals and runs of '*'.
func (p pattern) normalize() pattern {
	var out pattern
	for _, s := range p {
		if n := len(out); n > 0 {
			if s.kind == 'l' && out[n-1].kind == 'l' {
				out[n-1].lit += s.lit
				continue
			}
			if s.kind == '*' && out[n-1].kind == '*' {
				continue
			}
		}
		if s.kind == 'l' && s.lit == "" {
			continue
		}
		out = append(out, s)
	}
	return out
}

// dashes are the characters windash makes interchangeable.
const dashes = "-/\u2013\u2014\u2015"

// maxExpansion bounds the variants windash may create for one value.
const maxExpansion = 625

// transform applies one transformation modifier to every variant of a value.
func transform(mod string, vs []pattern) ([]pattern, error) {
	var out []pattern
	for _, p := range vs {
		p = append(pattern(nil), p...) // variants never share backing arrays
		switch mod {
		case "contains":
			if len(p) == 0 || p[0].kind != '*' {
				p = append(pattern{{kind: '*'}}, p...)
			}
			if p[len(p)-1].kind != '*' {
				p = append(p, seg{kind: '*'})
			}
			out = append(out, p)
		case "startswith":
			if len(p) == 0 || p[len(p)-1].kind != '*' {
				p = append(p[:len(p):len(p)], seg{kind: '*'})
			}
			out = append(out, p)
		case "endswith":
			if len(p) == 0 || p[0].kind != '*' {
				p = append(pattern{{kind: '*'}}, p...)
			}
			out = append(out, p)
		case "base64", "base64offset":
			if p.hasWildcards() {
				return nil, fmt.Errorf("%s cannot encode a value holding wildcards (put %s before contains/startswith/endswith, or escape the wildcard)", mod, mod)
			}
			v := p.literal()
			if mod == "base64" {
				out = append(out, pattern{{kind: 'l', lit: base64.StdEncoding.EncodeToString([]byte(v))}})
				continue
			}
			for _, e := range base64Offsets(v) {
				out = append(out, pattern{{kind: 'l', lit: e}})
			}
		case "utf16le", "wide", "utf16be", "utf16":
			q := make(pattern, 0, len(p)+1)
			if mod == "utf16" {
				q = append(q, seg{kind: 'l', lit: "\xff\xfe"})
			}
			for _, s := range p {
				if s.kind == 'l' {
					s.lit = encodeUTF16(s.lit, mod == "utf16be")
				}
				q = append(q, s)
			}
			out = append(out, q)
		case "windash":
			exp := []pattern{nil}
			for _, s := range p {
				if s.kind != 'l' || !strings.ContainsAny(s.lit, dashes) {
					for i := range exp {
						exp[i] = append(exp[i][:len(exp[i]):len(exp[i])], s)
					}
					continue
				}
				var next []pattern
				for _, e := range exp {
					for _, lit := range windash(s.lit) {
						next = append(next, append(e[:len(e):len(e)], seg{kind: 'l', lit: lit}))
					}
				}
				exp = next
				if len(exp)+len(out) > maxExpansion {
					return nil, fmt.Errorf("windash expands this value to more than %d variants", maxExpansion)
				}
			}
			out = append(out, exp...)
		default:
			return nil, fmt.Errorf("internal: unknown transformation %q", mod)
		}
	}
	if len(out) > maxExpansion {
		return nil, fmt.Errorf("%s expands the values to more than %d variants", mod, maxExpansion)
	}
	return out, nil
}

// windash returns every permutation of s where each dash character is any
// of the five dashes (the appendix: "all possible permutations").
func windash(s string) []string {
	out := []string{""}
	for _, r := range s {
		if !strings.ContainsRune(dashes, r) {
			for i := range out {
				out[i] += string(r)
			}
			continue
		}
		var next []string
		for _, o := range out {
			for _, d := range dashes {
				next = append(next, o+string(d))
			}
		}
		out = next
		if len(out) > maxExpansion {
			return out
		}
	}
	return out
}

// base64Offsets returns the three base64 forms of v as it may appear at
// byte offsets 0, 1 and 2 of an encoded string, trimmed of the characters
// that depend on the neighbouring bytes (pySigma's start/end offsets).
func base64Offsets(v string) []string {
	start := [3]int{0, 2, 3}
	end := [3]int{0, -3, -2}
	out := make([]string, 0, 3)
	for i := 0; i < 3; i++ {
		e := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(" ", i) + v))
		hi := len(e)
		if d := end[(len(v)+i)%3]; d != 0 {
			hi += d
		}
		if start[i] > hi {
			out = append(out, "")
			continue
		}
		out = append(out, e[start[i]:hi])
	}
	return out
}

func encodeUTF16(s string, bigEndian bool) string {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		if bigEndian {
			binary.BigEndian.PutUint16(b[2*i:], c)
		} else {
			binary.LittleEndian.PutUint16(b[2*i:], c)
		}
	}
	return string(b)
}

// stringMatcher compiles a pattern to a closure over a string.
func stringMatcher(p pattern, cased bool) func(string) bool {
	p = p.normalize()
	fold := !cased
	if fold {
		for i := range p {
			if p[i].kind == 'l' {
				p[i].lit = Lower(p[i].lit)
			}
		}
	}
	onlyStars := true
	hasOne := false
	for _, s := range p {
		switch s.kind {
		case 'l':
			onlyStars = false
		case '?':
			hasOne = true
			onlyStars = false
		}
	}
	n := len(p)
	switch {
	case n == 0:
		return func(s string) bool { return s == "" }
	case onlyStars:
		return func(string) bool { return true }
	case hasOne:
	case n == 1:
		lit := p[0].lit
		if fold {
			return func(s string) bool { return eqFold(s, lit) }
		}
		return func(s string) bool { return s == lit }
	case n == 2 && p[1].kind == '*':
		lit := p[0].lit
		if fold {
			return func(s string) bool { return prefixFold(s, lit) }
		}
		return func(s string) bool { return strings.HasPrefix(s, lit) }
	case n == 2 && p[0].kind == '*':
		lit := p[1].lit
		if fold {
			return func(s string) bool { return suffixFold(s, lit) }
		}
		return func(s string) bool { return strings.HasSuffix(s, lit) }
	case n == 3 && p[0].kind == '*' && p[2].kind == '*':
		lit := p[1].lit
		if fold {
			return func(s string) bool { return containsFold(s, lit) }
		}
		return func(s string) bool { return strings.Contains(s, lit) }
	}
	at := exactAt
	if fold {
		at = foldAt
	}
	var toks []gtok
	for _, s := range p {
		if s.kind != 'l' {
			toks = append(toks, gtok{kind: s.kind})
			continue
		}
		for i := 0; i < len(s.lit); {
			r, w := at(s.lit, i)
			toks = append(toks, gtok{kind: 'l', r: r})
			i += w
		}
	}
	return func(s string) bool { return globMatch(s, toks, fold) }
}
