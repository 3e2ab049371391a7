package rule

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteSummary prints a stable, human-readable summary of the compiled set
// (what `rules check -v` shows and the loader's golden test pins).
func (s *Set) WriteSummary(w io.Writer) error {
	var b strings.Builder
	names := make([]string, 0, len(s.Lists))
	for n := range s.Lists {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "list %s: %d values\n", n, len(s.Lists[n]))
	}
	for _, sig := range s.Signals {
		src := string(sig.Source)
		if src == "" {
			src = "any"
		}
		types := "*"
		if len(sig.Types) > 0 {
			types = strings.Join(sig.Types, ", ")
		}
		fmt.Fprintf(&b, "signal %d %s source=%s types=[%s] raw=%t sample=%t", sig.Index, sig.Name, src, types, sig.NeedsRaw, sig.Sample)
		if len(sig.Fields) > 0 {
			fs := make([]string, len(sig.Fields))
			for i, f := range sig.Fields {
				fs[i] = f.Name
			}
			fmt.Fprintf(&b, " fields=[%s]", strings.Join(fs, ", "))
		}
		b.WriteByte('\n')
	}
	for _, r := range s.Rules {
		writeRule(&b, r, "rule")
	}
	for _, r := range s.Disabled {
		writeRule(&b, r, "disabled rule")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeRule(b *strings.Builder, r *Rule, label string) {
	by := make([]string, len(r.By))
	for i, k := range r.By {
		if k.Entity != "" {
			by[i] = k.Name
		} else {
			by[i] = k.Name + "=expr"
			if k.ReadsFields {
				by[i] += "(per signal)"
			}
		}
	}
	fmt.Fprintf(b, "%s %s kind=%s severity=%s by=[%s] retention=%s hash=%s\n", label, r.ID, r.Kind, r.Severity,
		strings.Join(by, ", "), fmtDur(r.Retention), r.Hash)
	r.Kind.spec().summary(b, r)
	if r.Resolve != nil {
		fmt.Fprintf(b, "  resolve signals=[%s] metric_clears=%t closes=%t keep_firing_for=%s\n", sigNames(r.Resolve.Signals),
			r.Resolve.MetricClears, r.Resolve.Closes != nil, fmtDur(r.Resolve.KeepFiringFor))
	}
	for _, o := range r.Overrides {
		fmt.Fprintf(b, "  severity_override -> %s\n", o.Severity)
	}
	for _, e := range r.Exceptions {
		fmt.Fprintf(b, "  exception %s fields=%d comps=[%s] rows=%d expires=%s\n", e.Name, len(e.Fields), strings.Join(e.Comps, " "),
			len(e.Values), e.Expires.Format("2006-01-02T15:04:05Z07:00"))
	}
	fields := make([]string, len(r.Fields))
	for i, f := range r.Fields {
		fields[i] = f.Name
	}
	fmt.Fprintf(b, "  output summary=%t remediation=%t fields=[%s] max_events=%d dedup_key=%t dedup_window=%s route=[%s] max_keys=%d\n",
		r.Summary != nil, r.Remediation != nil, strings.Join(fields, ", "), r.MaxEvents, r.DedupKey != nil, fmtDur(r.DedupWindow),
		strings.Join(r.Route, ", "), r.MaxKeys)
}

func sigNames(ss []*Signal) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return strings.Join(out, " ")
}

func stepString(st Step) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s=", st.As)
	if st.Absent {
		b.WriteString("!")
	}
	fmt.Fprintf(&b, "[%s]", sigNames(st.Signals))
	if st.Within > 0 {
		fmt.Fprintf(&b, " within=%s", fmtDur(st.Within))
	}
	if st.MinCount > 1 {
		fmt.Fprintf(&b, " min_count=%d", st.MinCount)
	}
	if st.For > 0 {
		fmt.Fprintf(&b, " for=%s", fmtDur(st.For))
	}
	if st.Where != nil {
		b.WriteString(" where")
	}
	return b.String()
}

func cmpString(c Cmp) string {
	var parts []string
	add := func(op string, v *float64) {
		if v != nil {
			parts = append(parts, fmt.Sprintf("%s%g", op, *v))
		}
	}
	add(">", c.GT)
	add(">=", c.GTE)
	add("<", c.LT)
	add("<=", c.LTE)
	add("==", c.EQ)
	return strings.Join(parts, ",")
}
