package sigma

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Case-insensitive comparison without allocating: both sides are lowered
// rune by rune (unicode.ToLower). Bytes that are not valid UTF-8 (the
// utf16 modifiers produce them) compare as themselves, never as U+FFFD.

// foldAt returns the lowered rune at s[i] and its width; an invalid byte b
// is returned as the distinct sentinel -1-b.
func foldAt(s string, i int) (rune, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		return rune(c), 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && w == 1 {
		return -1 - rune(c), 1
	}
	return unicode.ToLower(r), w
}

// exactAt is foldAt without lowering.
func exactAt(s string, i int) (rune, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && w == 1 {
		return -1 - rune(c), 1
	}
	return r, w
}

func foldBefore(s string, j int) (rune, int) {
	c := s[j-1]
	if c < utf8.RuneSelf {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		return rune(c), 1
	}
	r, w := utf8.DecodeLastRuneInString(s[:j])
	if r == utf8.RuneError && w == 1 {
		return -1 - rune(c), 1
	}
	return unicode.ToLower(r), w
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Lower is the lowercasing this package compares with; a dispatch index
// over Matcher.Constraints must key documents' values with it.
func Lower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s) // no allocation when already lower
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, w := foldAt(s, i)
		if r < 0 {
			b.WriteByte(s[i])
		} else {
			b.WriteRune(r)
		}
		i += w
	}
	return b.String()
}

// prefixFoldLen reports whether s starts with p (case-insensitively).
func prefixFold(s, p string) bool {
	i, j := 0, 0
	for j < len(p) {
		if i >= len(s) {
			return false
		}
		a, b := s[i], p[j]
		if a|b < utf8.RuneSelf {
			if lowerASCII(a) != lowerASCII(b) {
				return false
			}
			i++
			j++
			continue
		}
		ra, wa := foldAt(s, i)
		rb, wb := foldAt(p, j)
		if ra != rb {
			return false
		}
		i += wa
		j += wb
	}
	return true
}

func eqFold(s, p string) bool {
	i, j := 0, 0
	for i < len(s) && j < len(p) {
		a, b := s[i], p[j]
		if a|b < utf8.RuneSelf {
			if lowerASCII(a) != lowerASCII(b) {
				return false
			}
			i++
			j++
			continue
		}
		ra, wa := foldAt(s, i)
		rb, wb := foldAt(p, j)
		if ra != rb {
			return false
		}
		i += wa
		j += wb
	}
	return i == len(s) && j == len(p)
}

func suffixFold(s, p string) bool {
	i, j := len(s), len(p)
	for j > 0 {
		if i <= 0 {
			return false
		}
		a, b := s[i-1], p[j-1]
		if a|b < utf8.RuneSelf {
			if lowerASCII(a) != lowerASCII(b) {
				return false
			}
			i--
			j--
			continue
		}
		ra, wa := foldBefore(s, i)
		rb, wb := foldBefore(p, j)
		if ra != rb {
			return false
		}
		i -= wa
		j -= wb
	}
	return true
}

func containsFold(s, p string) bool {
	if p == "" {
		return true
	}
	first := p[0]
	ascii := first < utf8.RuneSelf
	lf := lowerASCII(first)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (!ascii || lowerASCII(c) == lf) && prefixFold(s[i:], p) {
				return true
			}
			i++
			continue
		}
		if prefixFold(s[i:], p) {
			return true
		}
		_, w := exactAt(s, i)
		i += w
	}
	return false
}

// gtok is one element of a general wildcard pattern.
type gtok struct {
	kind byte // 'l' literal rune, '?' one character, '*' any run
	r    rune
}

// globMatch matches s against a pattern with '*' and '?' (greedy with
// backtracking to the last star: linear for one star, O(n·m) at worst).
func globMatch(s string, p []gtok, fold bool) bool {
	at := exactAt
	if fold {
		at = foldAt
	}
	pi, si := 0, 0
	starPi, starSi := -1, 0
	for si < len(s) {
		r, w := at(s, si)
		if pi < len(p) {
			switch t := p[pi]; {
			case t.kind == '?' || (t.kind == 'l' && t.r == r):
				pi++
				si += w
				continue
			case t.kind == '*':
				starPi, starSi = pi, si
				pi++
				continue
			}
		}
		if starPi >= 0 {
			pi = starPi + 1
			_, w0 := at(s, starSi)
			starSi += w0
			si = starSi
			continue
		}
		return false
	}
	for pi < len(p) && p[pi].kind == '*' {
		pi++
	}
	return pi == len(p)
}
