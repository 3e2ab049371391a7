package sigma

import (
	"slices"
)

// RequiredField is a field the detection cannot match without: the
// condition is false on every record where the field is absent.
type RequiredField struct {
	Field string // as written in the detection (dotted for nested)
	Pos   Pos    // of its first requiring item
}

// Required returns the fields every match needs present, in the order of
// their first requiring item. The analysis is conservative (a field is
// listed only when absence surely makes the condition false):
//
//   - an item with values (any modifiers, fieldref included) needs its
//     field, and fieldref also the referenced field (each of a list under
//     all, none of a list otherwise); an item with a null value,
//     exists: false, neq, or a keyword item needs nothing;
//   - an AND (a selection map, `and`, `all of`) needs what any side needs;
//     an OR (a list of maps, `or`, `1 of`, several conditions) what every
//     side needs; `not` needs nothing.
//
// A rule that requires a field its log source never has can never match.
func (m *Matcher) Required() []RequiredField {
	d := &m.rule.Detection
	var acc reqSet
	for i, cond := range d.Conditions {
		n, err := parseCond(cond.Text, d.Selections, d.Order)
		if err != nil {
			return nil // Compile refused it already
		}
		r := requiredCond(n, d.Selections)
		if i == 0 {
			acc = r
		} else {
			acc = acc.or(r)
		}
	}
	out := make([]RequiredField, 0, len(acc))
	for _, f := range acc {
		out = append(out, RequiredField(f))
	}
	slices.SortStableFunc(out, func(a, b RequiredField) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
	return out
}

type reqField struct {
	Field string
	Pos   Pos
}

// reqSet is a set of required fields (small: a linear list).
type reqSet []reqField

func (s reqSet) has(f string) bool {
	return slices.ContainsFunc(s, func(x reqField) bool { return x.Field == f })
}

// and: both hold, so either's requirements hold.
func (s reqSet) and(t reqSet) reqSet {
	out := slices.Clone(s)
	for _, f := range t {
		if !out.has(f.Field) {
			out = append(out, f)
		}
	}
	return out
}

// or: one side holds, so only what both require.
func (s reqSet) or(t reqSet) reqSet {
	var out reqSet
	for _, f := range s {
		if i := slices.IndexFunc(t, func(x reqField) bool { return x.Field == f.Field }); i >= 0 {
			if before(t[i].Pos, f.Pos) {
				f = t[i]
			}
			out = append(out, f)
		}
	}
	return out
}

func before(a, b Pos) bool {
	return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
}

func requiredCond(n condNode, sels map[string]*Selection) reqSet {
	switch n := n.(type) {
	case condIdent:
		return requiredSel(sels[n.name])
	case condNot:
		return nil
	case condAnd:
		return requiredCond(n.l, sels).and(requiredCond(n.r, sels))
	case condOr:
		return requiredCond(n.l, sels).or(requiredCond(n.r, sels))
	case condOf:
		var acc reqSet
		for i, name := range n.names {
			r := requiredSel(sels[name])
			switch {
			case i == 0:
				acc = r
			case n.all:
				acc = acc.and(r)
			default:
				acc = acc.or(r)
			}
		}
		return acc
	}
	return nil
}

func requiredSel(s *Selection) reqSet {
	if s == nil {
		return nil
	}
	var acc reqSet
	for i, g := range s.Groups {
		var gr reqSet
		for _, it := range g {
			gr = gr.and(requiredItem(it))
		}
		if i == 0 {
			acc = gr
		} else {
			acc = acc.or(gr)
		}
	}
	return acc
}

func requiredItem(it *Item) reqSet {
	if it.Field == "" || slices.Contains(it.Modifiers, "neq") {
		return nil
	}
	for _, v := range it.Values {
		if v.Kind == KindNull {
			return nil
		}
	}
	if slices.Contains(it.Modifiers, "exists") {
		if len(it.Values) == 1 && it.Values[0].Kind == KindBool && it.Values[0].Bool {
			return reqSet{{it.Field, it.Pos}}
		}
		return nil
	}
	out := reqSet{{it.Field, it.Pos}}
	// A referenced field is needed when it is the only one, or when all
	// of them must match.
	if slices.Contains(it.Modifiers, "fieldref") && (len(it.Values) == 1 || slices.Contains(it.Modifiers, "all")) {
		for _, v := range it.Values {
			if ref := v.Text; ref != "" && ref != it.Field && !out.has(ref) {
				out = append(out, reqField{ref, v.Pos})
			}
		}
	}
	return out
}
