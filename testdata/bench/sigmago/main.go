// Command sigmago evaluates Sigma rules with github.com/bradleyjkemp/sigma-go
// beside ecscorr's own matcher (correlate/sigma) on CloudTrail records, and
// reports matches per rule and every record on which the two disagree.
//
// It lives in its own module so that the main go.mod never requires sigma-go.
//
//	go run . -rules ../../../correlate/sigma/testdata/aws_cloudtrail ../../../sources/archive/testdata/invictus
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/bradleyjkemp/sigma-go"
	"github.com/bradleyjkemp/sigma-go/evaluator"

	ecsigma "github.com/ecscorr/ecscorr/correlate/sigma"
)

func main() {
	rulesDir := flag.String("rules", "", "folder of Sigma rule files (*.yml)")
	format := flag.String("format", "json", "output: json or md (markdown table)")
	flag.Parse()
	if *rulesDir == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: sigmago -rules DIR [-format json|md] FILE_OR_DIR...")
		os.Exit(2)
	}
	recs, err := readRecords(flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rules, err := loadRules(*rulesDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rep := compare(context.Background(), rules, recs)
	switch *format {
	case "md":
		writeMarkdown(os.Stdout, rep)
	default:
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// Rule is one rule file loaded by both matchers; a nil side records why.
type Rule struct {
	File      string
	SigmaGo   *evaluator.RuleEvaluator
	SigmaGoEr string
	// NullFix is the rule with every `field: null` rewritten to the string
	// "null", sigma-go's own spelling of "field absent"; nil when the rule
	// has no null value.
	NullFix   *evaluator.RuleEvaluator
	Ecscorr   *ecsigma.Matcher
	EcscorrEr string
}

func loadRules(dir string) ([]Rule, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.yml rules in %s", dir)
	}
	var rules []Rule
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		r := Rule{File: filepath.Base(f)}
		r.SigmaGo, r.NullFix, r.SigmaGoEr = loadSigmaGo(data)
		er, ds := ecsigma.Parse(r.File, data)
		switch {
		case er == nil || ds.HasErrors():
			r.EcscorrEr = ds.Error()
		default:
			m, err := ecsigma.Compile(er)
			if err != nil {
				r.EcscorrEr = err.Error()
			}
			r.Ecscorr = m
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// loadSigmaGo parses a rule with sigma-go. sigma-go looks a rule's field up
// as a top-level key of the event map; nested fields are reached only
// through a config field mapping to a JSONPath ("$.a.b"), so every dotted
// field the rule names is mapped to its JSONPath, as a sigma-go user does.
func loadSigmaGo(data []byte) (e, nullFix *evaluator.RuleEvaluator, why string) {
	rule, err := sigma.ParseRule(data)
	if err != nil {
		return nil, nil, "parse: " + err.Error()
	}
	cfg := sigma.Config{Title: "CloudTrail nested fields", FieldMappings: map[string]sigma.FieldMapping{}}
	for _, s := range rule.Detection.Searches {
		for _, em := range s.EventMatchers {
			for _, fm := range em {
				if strings.Contains(fm.Field, ".") {
					cfg.FieldMappings[fm.Field] = sigma.FieldMapping{TargetNames: []string{"$." + fm.Field}}
				}
			}
		}
	}
	var opts []evaluator.Option
	if len(cfg.FieldMappings) > 0 {
		opts = append(opts, evaluator.WithConfig(cfg))
	}
	if fixed, ok := nullToString(rule); ok {
		nullFix = evaluator.ForRule(fixed, opts...)
	}
	return evaluator.ForRule(rule, opts...), nullFix, ""
}

// nullToString copies rule with each nil value (YAML null) replaced by "null":
// sigma-go rejects a nil value but matches the string "null" against a field
// the event lacks (modifiers.baseComparator). ok reports whether any changed.
func nullToString(rule sigma.Rule) (sigma.Rule, bool) {
	changed := false
	searches := make(map[string]sigma.Search, len(rule.Detection.Searches))
	for name, s := range rule.Detection.Searches {
		ems := make([]sigma.EventMatcher, len(s.EventMatchers))
		for i, em := range s.EventMatchers {
			ems[i] = make(sigma.EventMatcher, len(em))
			for j, fm := range em {
				fm.Values = slices.Clone(fm.Values)
				for k, v := range fm.Values {
					if v == nil {
						fm.Values[k] = "null"
						changed = true
					}
				}
				ems[i][j] = fm
			}
		}
		s.EventMatchers = ems
		searches[name] = s
	}
	rule.Detection.Searches = searches
	return rule, changed
}

// readRecords reads CloudTrail records from each file (gzip or plain) or from
// every *.json / *.json.gz / *.jsonl of a folder, decoded into maps as the
// main module's SigmaHQ test does.
func readRecords(args []string) ([]map[string]any, error) {
	var files []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		for _, pat := range []string{"*.json", "*.json.gz", "*.jsonl"} {
			m, _ := filepath.Glob(filepath.Join(a, pat))
			files = append(files, m...)
		}
	}
	sort.Strings(files)
	var recs []map[string]any
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(f, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if data, err = io.ReadAll(zr); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
		}
		got, err := decodeRecords(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		recs = append(recs, got...)
	}
	if len(recs) == 0 {
		return nil, errors.New("no records")
	}
	return recs, nil
}

// RuleResult is one rule's row: matches by each side and where they differ.
type RuleResult struct {
	Rule    string `json:"rule"`
	Ecscorr int    `json:"ecscorr"`
	SigmaGo int    `json:"sigmago"`
	// SigmaGoUnsupported is why sigma-go cannot load or evaluate the rule.
	SigmaGoUnsupported string `json:"sigmago_unsupported,omitempty"`
	// SigmaGoErrorRecords counts records on which Matches returned an error
	// (sigma-go only evaluates a field once the fields before it matched).
	SigmaGoErrorRecords int `json:"sigmago_error_records,omitempty"`
	// NullFix counts sigma-go's matches once `field: null` is spelled "null"
	// (nil when the rule has no null value); OnlyEcscorrNullFix and
	// OnlySigmaGoNullFix are the eventIDs on which that run and ecscorr differ.
	NullFix            *int     `json:"sigmago_null_as_string,omitempty"`
	OnlyEcscorrNullFix []string `json:"only_ecscorr_null_as_string,omitempty"`
	OnlySigmaGoNullFix []string `json:"only_sigmago_null_as_string,omitempty"`
	EcscorrUnsupported string   `json:"ecscorr_unsupported,omitempty"`
	OnlyEcscorr        []string `json:"only_ecscorr,omitempty"` // eventIDs
	OnlySigmaGo        []string `json:"only_sigmago,omitempty"` // eventIDs
}

// Report is the whole comparison.
type Report struct {
	Records      int          `json:"records"`
	Rules        int          `json:"rules"`
	EcscorrTotal int          `json:"ecscorr_total"`
	SigmaGoTotal int          `json:"sigmago_total"`
	Differing    int          `json:"differing_rules"`
	Results      []RuleResult `json:"results"`
}

func compare(ctx context.Context, rules []Rule, recs []map[string]any) Report {
	rep := Report{Records: len(recs), Rules: len(rules)}
	for _, r := range rules {
		res := RuleResult{Rule: r.File, SigmaGoUnsupported: r.SigmaGoEr, EcscorrUnsupported: r.EcscorrEr}
		errs := map[string]int{}
		for _, rec := range recs {
			e := r.Ecscorr != nil && r.Ecscorr.Match(rec)
			g := false
			if r.SigmaGo != nil {
				out, err := r.SigmaGo.Matches(ctx, rec)
				if err != nil {
					res.SigmaGoErrorRecords++
					errs[err.Error()]++
				}
				g = err == nil && out.Match
			}
			id, _ := rec["eventID"].(string)
			if r.NullFix != nil {
				if res.NullFix == nil {
					res.NullFix = new(int)
				}
				out, err := r.NullFix.Matches(ctx, rec)
				n := err == nil && out.Match
				if n {
					*res.NullFix++
				}
				switch {
				case e && !n:
					res.OnlyEcscorrNullFix = append(res.OnlyEcscorrNullFix, id)
				case n && !e:
					res.OnlySigmaGoNullFix = append(res.OnlySigmaGoNullFix, id)
				}
			}
			if e {
				res.Ecscorr++
			}
			if g {
				res.SigmaGo++
			}
			switch {
			case e && !g:
				res.OnlyEcscorr = append(res.OnlyEcscorr, id)
			case g && !e:
				res.OnlySigmaGo = append(res.OnlySigmaGo, id)
			}
		}
		if len(errs) > 0 {
			msgs := make([]string, 0, len(errs))
			for m := range errs {
				msgs = append(msgs, m)
			}
			slices.Sort(msgs)
			res.SigmaGoUnsupported = "evaluate: " + strings.Join(msgs, "; ")
		}
		rep.EcscorrTotal += res.Ecscorr
		rep.SigmaGoTotal += res.SigmaGo
		if len(res.OnlyEcscorr)+len(res.OnlySigmaGo) > 0 {
			rep.Differing++
		}
		rep.Results = append(rep.Results, res)
	}
	return rep
}

func writeMarkdown(w io.Writer, rep Report) {
	fmt.Fprintf(w, "%d records, %d rules\n\n", rep.Records, rep.Rules)
	fmt.Fprintln(w, "| rule | ecscorr | sigma-go | differing eventIDs |")
	fmt.Fprintln(w, "|---|---:|---:|---|")
	for _, r := range rep.Results {
		g := fmt.Sprint(r.SigmaGo)
		if r.SigmaGoUnsupported != "" {
			g = fmt.Sprintf("%d (cannot evaluate on %d records: %s)", r.SigmaGo, r.SigmaGoErrorRecords, r.SigmaGoUnsupported)
		}
		var diff []string
		for _, id := range r.OnlyEcscorr {
			diff = append(diff, "ecscorr only "+id)
		}
		for _, id := range r.OnlySigmaGo {
			diff = append(diff, "sigma-go only "+id)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s |\n", r.Rule, r.Ecscorr, g, strings.Join(diff, "<br>"))
	}
	fmt.Fprintf(w, "| **total** | **%d** | **%d** | %d rules differ |\n", rep.EcscorrTotal, rep.SigmaGoTotal, rep.Differing)
}

// decodeRecords accepts the shapes of the corpora correlate/sigma's SigmaHQ
// test reads: a CloudTrail object {"Records":[...]}, Stratus Red Team
// detonation logs {"techniques":[{"raw_events":[...]}]}, and JSON lines of
// Panther rule tests {"Log":{...}} (or of bare records).
func decodeRecords(data []byte) ([]map[string]any, error) {
	var obj struct {
		Records    []map[string]any
		Techniques []struct {
			RawEvents []map[string]any `json:"raw_events"`
		}
	}
	if err := json.Unmarshal(data, &obj); err == nil {
		recs := obj.Records
		for _, t := range obj.Techniques {
			recs = append(recs, t.RawEvents...)
		}
		return recs, nil
	}
	var recs []map[string]any
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var t struct{ Log map[string]any }
		if err := json.Unmarshal(line, &t); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if t.Log == nil {
			if err := json.Unmarshal(line, &t.Log); err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
		}
		recs = append(recs, t.Log)
	}
	return recs, nil
}
