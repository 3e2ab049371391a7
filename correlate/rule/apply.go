package rule

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The per-hit semantics of the language that are not expressions: entity
// key parts and exception comparisons. The engine runs these; there is no
// other copy.

// EntityField returns the entity field a `by:` part names ("" for an
// unknown name).
func EntityField(e *EntityEnv, name string) string {
	switch name {
	case "account":
		return e.Account
	case "region":
		return e.Region
	case "cluster":
		return e.Cluster
	case "service":
		return e.Service
	case "task_arn":
		return e.TaskARN
	case "task_definition_arn":
		return e.TaskDefinitionARN
	case "task_definition_family":
		if e.TaskDefinitionFamily == "" {
			return TaskDefinitionFamily(e.TaskDefinitionARN)
		}
		return e.TaskDefinitionFamily
	case "container_id":
		return e.ContainerID
	case "principal":
		return e.Principal
	}
	return ""
}

// Active reports whether the exception applies at event time t: it has no
// expiry, or t is before it.
func (x *Exception) Active(t time.Time) bool {
	return x.Expires.IsZero() || t.Before(x.Expires)
}

// MatchesRow reports whether the field values of an event (one per
// exception field) match one row of Values under Comps (default "==").
func (x *Exception) MatchesRow(vals []any, row []any) bool {
	if len(row) != len(vals) {
		return false
	}
	for j := range vals {
		op := "=="
		if j < len(x.Comps) && x.Comps[j] != "" {
			op = x.Comps[j]
		}
		if !Compare(op, vals[j], row[j]) {
			return false
		}
	}
	return true
}

// Compare applies an exception comparison to an event's value (got) and a
// value of the rule (want):
//
//   - "==", "!=": numbers (any Go number type, json.Number) compare by
//     value; nil equals only nil; anything else compares by its printed
//     form, so an account id written unquoted in YAML (a number) still
//     equals the account string of an event.
//   - "in": == against any element of a list want.
//   - "startsWith", "endsWith", "contains": string operations, false
//     unless both sides are strings (a number or a list has no prefix).
func Compare(op string, got, want any) bool {
	switch op {
	case "==":
		return equalValues(got, want)
	case "!=":
		return !equalValues(got, want)
	case "in":
		switch l := want.(type) {
		case []any:
			for _, w := range l {
				if equalValues(got, w) {
					return true
				}
			}
		case []string:
			for _, w := range l {
				if equalValues(got, w) {
					return true
				}
			}
		default:
			return equalValues(got, want)
		}
		return false
	}
	gs, ok1 := got.(string)
	ws, ok2 := want.(string)
	if !ok1 || !ok2 {
		return false
	}
	switch op {
	case "startsWith":
		return strings.HasPrefix(gs, ws)
	case "endsWith":
		return strings.HasSuffix(gs, ws)
	case "contains":
		return strings.Contains(gs, ws)
	}
	return false
}

func equalValues(a, b any) bool {
	if fa, ok := ToFloat(a); ok {
		if fb, ok := ToFloat(b); ok {
			return fa == fb
		}
	}
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// ToFloat converts any Go number (and json.Number) to float64.
func ToFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}
