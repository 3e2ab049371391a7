package rule

import (
	"fmt"
	"sync"
	"time"
	_ "time/tzdata" // inZone must not depend on the host's zoneinfo

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"go.yaml.in/yaml/v3"
)

// zoneCache memoises time.LoadLocation for inZone: loading a zone parses
// tzdata, far too slow per event. One cache per loaded Set.
type zoneCache struct{ m sync.Map } // name → *time.Location

func (z *zoneCache) load(name string) (*time.Location, error) {
	if v, ok := z.m.Load(name); ok {
		return v.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	z.m.Store(name, loc)
	return loc, nil
}

// inZoneOption is the expression function inZone(t, "Area/City"): t in the
// named IANA zone, so that .Hour(), .Weekday(), .Format() are local time.
func (z *zoneCache) option() expr.Option {
	return expr.Function("inZone", func(params ...any) (any, error) {
		t, _ := params[0].(time.Time)
		name, _ := params[1].(string)
		loc, err := z.load(name)
		if err != nil {
			return nil, fmt.Errorf("inZone: %w", err)
		}
		return t.In(loc), nil
	}, new(func(time.Time, string) time.Time))
}

// checkZones reports inZone calls whose zone is a constant that does not
// name a known zone.
func (l *loader) checkZones(f *srcFile, n *yaml.Node, spec exprSpec, root ast.Node) bool {
	ok := true
	walk(root, func(nd ast.Node) {
		call, isCall := nd.(*ast.CallNode)
		if !isCall || len(call.Arguments) != 2 {
			return
		}
		if id, isID := call.Callee.(*ast.IdentifierNode); !isID || id.Value != "inZone" {
			return
		}
		s, isStr := call.Arguments[1].(*ast.StringNode)
		if !isStr {
			return // decided per event; a bad zone counts as an evaluation error
		}
		if _, err := l.zones.load(s.Value); err != nil || s.Value == "" || s.Value == "Local" {
			l.exprErrAt(f, n, spec.what, s.Location(), "inZone: unknown time zone %q (want an IANA name such as Europe/Paris, or UTC)", s.Value)
			ok = false
		}
	})
	return ok
}
