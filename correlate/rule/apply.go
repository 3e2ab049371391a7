package rule

import (
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm/runtime"

	"github.com/ecscorr/ecscorr/pipeline"
)

// Helpers that give the engine one implementation of the language's
// per-hit semantics: key extraction, exceptions, severity overrides.

// KeyValues appends the rule's `by` values for the event in env to dst, in
// By order. Entity parts read env.Entity; expression parts are formatted
// with fmt (nil → "").
func (r *Rule) KeyValues(e *Evaluator, env *Env, dst []string) ([]string, error) {
	for _, k := range r.By {
		if k.Expr == nil {
			dst = append(dst, entityField(&env.Entity, k.Entity))
			continue
		}
		v, err := e.Run(k.Expr, env)
		if err != nil {
			return dst, fmt.Errorf("rule %s by %s: %w", r.ID, k.Name, err)
		}
		dst = append(dst, toString(v))
	}
	return dst, nil
}

func entityField(e *EntityEnv, name string) string {
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

// Active reports whether the exception applies at event time t.
func (x *Exception) Active(t time.Time) bool {
	return x.Expires.IsZero() || t.Before(x.Expires)
}

// Matches reports whether the exception suppresses the event in env at
// event time t: it is active and, for some row of Values, every field
// compares true.
func (x *Exception) Matches(e *Evaluator, env *Env, t time.Time) (bool, error) {
	if !x.Active(t) {
		return false, nil
	}
	vals := make([]any, len(x.Fields))
	for i, p := range x.Fields {
		v, err := e.Run(p, env)
		if err != nil {
			return false, fmt.Errorf("exception %s field %d: %w", x.Name, i+1, err)
		}
		vals[i] = v
	}
rows:
	for _, row := range x.Values {
		for i, want := range row {
			if !compare(x.Comps[i], vals[i], want) {
				continue rows
			}
		}
		return true, nil
	}
	return false, nil
}

func compare(op string, got, want any) bool {
	switch op {
	case "==":
		return runtime.Equal(got, want)
	case "!=":
		return !runtime.Equal(got, want)
	case "in":
		list, _ := want.([]any)
		for _, w := range list {
			if runtime.Equal(got, w) {
				return true
			}
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

// Suppressed returns the name of the first exception of r that matches, or
// "".
func (r *Rule) Suppressed(e *Evaluator, env *Env, t time.Time) (string, error) {
	for i := range r.Exceptions {
		ok, err := r.Exceptions[i].Matches(e, env, t)
		if err != nil {
			return "", fmt.Errorf("rule %s: %w", r.ID, err)
		}
		if ok {
			return r.Exceptions[i].Name, nil
		}
	}
	return "", nil
}

// EffectiveSeverity applies severity_override in order: the last override
// whose when holds sets the severity; none → r.Severity.
func (r *Rule) EffectiveSeverity(e *Evaluator, out OutputEnv) (pipeline.Severity, error) {
	sev := r.Severity
	for i, o := range r.Overrides {
		ok, err := e.Bool(o.When, out)
		if err != nil {
			return sev, fmt.Errorf("rule %s severity_override[%d]: %w", r.ID, i, err)
		}
		if ok {
			sev = o.Severity
		}
	}
	return sev, nil
}

// OutputFields evaluates the rule's output fields in order.
func (r *Rule) OutputFields(e *Evaluator, out OutputEnv) (map[string]any, error) {
	if len(r.Fields) == 0 {
		return nil, nil
	}
	m := make(map[string]any, len(r.Fields))
	for _, f := range r.Fields {
		v, err := e.Run(f.Prog, out)
		if err != nil {
			return m, fmt.Errorf("rule %s output field %s: %w", r.ID, f.Name, err)
		}
		m[f.Name] = v
	}
	return m, nil
}
