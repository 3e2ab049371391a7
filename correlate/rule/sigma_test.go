package rule

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
)

const sigmaHQDir = "../sigma/testdata/aws_cloudtrail"

// The 57 SigmaHQ CloudTrail rules load unchanged beside the built-in pack:
// one cloudtrail signal and one key-less match rule each, with the Sigma
// id, title, level, ATT&CK ids, author, references and false positives.
func TestSigmaHQLoadsWithBuiltin(t *testing.T) {
	pack, ds := LoadPaths([]string{BuiltinName}, LoadOptions{})
	if pack == nil {
		t.Fatal(ds)
	}
	set, ds := LoadPaths([]string{BuiltinName, sigmaHQDir}, LoadOptions{})
	if set == nil {
		t.Fatal(ds)
	}
	// Exactly one warning (lint.go): SigmaHQ's SAML provider deletion rule
	// selects `status: success`, a field CloudTrail records do not have.
	var warns []string
	for _, d := range ds {
		if d.Severity != SevNote {
			warns = append(warns, d.String())
		}
	}
	wantWarns := []string{sigmaHQDir + "/aws_delete_saml_provider.yml:26:9: warning: sigma: rule ccd6a6c8-bb4e-4a91-9d2a-07e632819374 can never match: its detection requires field status, which CloudTrail records do not have (a CloudTrail record has no status: a failed call has errorCode (and errorMessage), a successful one has none, so select success with `errorCode: null`)"}
	if !slices.Equal(warns, wantWarns) {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(wantWarns, "\n"))
	}
	if got, want := len(set.Signals), len(pack.Signals)+57; got != want {
		t.Errorf("%d signals, want %d", got, want)
	}
	if got, want := len(set.Rules), len(pack.Rules)+57; got != want {
		t.Errorf("%d rules, want %d", got, want)
	}
	nSigma := 0
	for _, r := range set.Rules {
		if r.Origin != "sigma" {
			continue
		}
		nSigma++
		if r.Kind != KindMatch || len(r.By) != 0 || r.Match == nil || len(r.Match.Signals) != 1 || r.Author == "" {
			t.Errorf("%s: kind %v by %v author %q", r.ID, r.Kind, r.By, r.Author)
			continue
		}
		s := r.Match.Signals[0]
		if s.Source != pipeline.SourceCloudTrail || s.Types != nil || s.Match == nil || s.Where != nil || !s.NeedsRaw {
			t.Errorf("%s: signal %+v", r.ID, s)
		}
	}
	if nSigma != 57 {
		t.Errorf("%d Sigma rules, want 57", nSigma)
	}
	var root *Rule
	for _, r := range set.Rules {
		if r.ID == "8ad1600d-e9dc-4251-b0ee-a65268f29add" {
			root = r
		}
	}
	if root == nil {
		t.Fatal("aws_root_account_usage.yml not loaded under its Sigma id")
	}
	title, _ := Render(root.Title, nil)
	if title != "AWS Root Credentials" || root.Severity != pipeline.SeverityMedium || root.Status != "test" ||
		!slices.Equal(root.Mitre, []string{"T1078.004"}) || root.Author != "vitaliy0x1" ||
		!slices.Equal(root.References, []string{"https://docs.aws.amazon.com/IAM/latest/UserGuide/id_root-user.html"}) ||
		len(root.FalsePositives) != 1 || !strings.HasPrefix(root.FalsePositives[0], "AWS Tasks That Require") ||
		len(root.Tags) != 5 || root.Description != "Detects AWS root account usage" {
		t.Errorf("root rule: title %q %+v", title, root)
	}
	// The incident's summary: the description and the false positives.
	if sum, _ := Render(root.Summary, nil); sum != "Detects AWS root account usage\nKnown false positives: AWS Tasks That Require AWS Account Root User Credentials https://docs.aws.amazon.com/general/latest/gr/aws_tasks-that-require-root.html" {
		t.Errorf("root summary %q", sum)
	}
	sig := set.SignalsByName["sigma_8ad1600d_e9dc_4251_b0ee_a65268f29add"]
	if sig == nil || !slices.Equal(sig.MatchFields, []string{"eventType", "userIdentity", "userIdentity.type"}) || sig.MatchFullScan {
		t.Fatalf("root signal %+v", sig)
	}
	// Dispatch is case-insensitive and by the literals a detection
	// requires: DeleteBucket (eventName only) meets the bucket-deleted rule
	// whatever its case or source; an event no constrained Sigma rule
	// names meets only the unconstrained ones.
	sigmaNames := func(sigs ...[]*Signal) []string {
		var out []string
		for _, g := range sigs {
			for _, s := range g {
				if s.Match != nil {
					out = append(out, s.Name)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	const bucketDeleted = "sigma_39c9f26d_6e3b_4dbb_9c7a_4154b0281112"
	for _, typ := range []string{"s3.amazonaws.com:DeleteBucket", "S3.amazonaws.com:deletebucket", "other.amazonaws.com:DELETEBUCKET"} {
		if byType, _ := set.Candidates(pipeline.SourceCloudTrail, typ); !slices.Contains(sigmaNames(byType), bucketDeleted) {
			t.Errorf("%s does not meet the bucket-deleted rule", typ)
		}
	}
	byType, anyType := set.Candidates(pipeline.SourceCloudTrail, "iam.amazonaws.com:whatever")
	if got := sigmaNames(byType); len(got) != 0 {
		t.Errorf("iam:whatever meets constrained Sigma rules %v", got)
	}
	// imds_malicious_usage, sts_assumerole_misuse, pua_trufflehog and
	// root_account_usage name no eventSource or eventName literal.
	if got, want := sigmaNames(anyType), []string{"sigma_352a918a_34d8_4882_8470_44830c507aa3", "sigma_8ad1600d_e9dc_4251_b0ee_a65268f29add",
		"sigma_905d389b_b853_46d0_9d3d_dea0d3a3cd49", "sigma_a840e606_7c8c_4684_9bc1_eb6b6155127f"}; !slices.Equal(got, want) {
		t.Errorf("unconstrained Sigma rules %v, want %v", got, want)
	}
	for _, c := range []struct {
		rec  map[string]any
		want bool
	}{
		{map[string]any{"userIdentity": map[string]any{"type": "root"}, "eventType": "AwsApiCall"}, true},
		{map[string]any{"userIdentity": map[string]any{"type": "Root"}, "eventType": "AwsServiceEvent"}, false},
		{map[string]any{"userIdentity": map[string]any{"type": "IAMUser"}}, false},
	} {
		if got := sig.Match(c.rec); got != c.want {
			t.Errorf("match %v = %t, want %t", c.rec, got, c.want)
		}
	}
}

func writeSigma(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantOneError(t *testing.T, ds Diagnostics, pos, msgPart string) {
	t.Helper()
	errs := ds.Errors()
	if len(errs) != 1 || errs[0].Pos.String() != pos || !strings.Contains(errs[0].Msg, msgPart) {
		t.Errorf("errors %v, want one at %s containing %q", errs, pos, msgPart)
	}
}

func TestSigmaRefusals(t *testing.T) {
	t.Run("no condition", func(t *testing.T) {
		// Said once, by the parser (the compiler said it again, and the
		// loader's merge of repeats blamed YAML aliases).
		p := writeSigma(t, "no_cond.yml", `title: t
id: 11111111-2222-3333-4444-555555555550
logsource:
    product: aws
    service: cloudtrail
detection:
    sel:
        eventName: x
level: low
`)
		set, ds := LoadPaths([]string{p}, LoadOptions{})
		if set != nil {
			t.Fatal("loaded")
		}
		wantOneError(t, ds, p+":7:5", "detection has no condition")
		if errs := ds.Errors(); len(errs) == 1 && strings.Contains(errs[0].Msg, "times") {
			t.Errorf("error %q is reported more than once", errs[0].Msg)
		}
	})
	t.Run("unknown modifier", func(t *testing.T) {
		p := writeSigma(t, "bad_mod.yml", `title: t
id: 11111111-2222-3333-4444-555555555555
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName|sounds_like: StopLogging
    condition: selection
level: low
`)
		set, ds := LoadPaths([]string{p}, LoadOptions{})
		if set != nil {
			t.Fatal("loaded")
		}
		wantOneError(t, ds, p+":8:19", "sounds_like")
	})
	t.Run("other logsource", func(t *testing.T) {
		p := writeSigma(t, "win.yaml", `title: t
id: 11111111-2222-3333-4444-555555555556
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\cmd.exe'
    condition: selection
level: low
`)
		set, ds := LoadPaths([]string{BuiltinName, p}, LoadOptions{})
		if set != nil {
			t.Fatal("loaded")
		}
		wantOneError(t, ds, p+":4:5", "only product: aws, service: cloudtrail is mapped")
		if errs := ds.Errors(); len(errs) == 1 && !strings.Contains(errs[0].Msg, "product: windows, category: process_creation") {
			t.Errorf("message does not say what was given: %s", errs[0].Msg)
		}
	})
	t.Run("mixed file", func(t *testing.T) {
		p := writeSigma(t, "mixed.yaml", `apiVersion: ecscorr/v1
kind: RuleFile
signals:
  - name: s
    source: cloudtrail
    where: event.type == "a:b"
---
title: t
id: 11111111-2222-3333-4444-555555555557
logsource: {product: aws, service: cloudtrail}
detection: {selection: {eventName: x}, condition: selection}
`)
		_, ds := LoadPaths([]string{p}, LoadOptions{})
		wantOneError(t, ds, p+":8:1", "either Sigma rules or ecscorr documents")
	})
	t.Run("duplicate id", func(t *testing.T) {
		src := rootUsageRule(t)
		p := writeSigma(t, "again.yml", string(src))
		_, ds := LoadPaths([]string{sigmaHQDir, p}, LoadOptions{})
		wantOneError(t, ds, p+":2:5", `duplicate rule id "8ad1600d-e9dc-4251-b0ee-a65268f29add" (first defined at `+filepath.Join(sigmaHQDir, "aws_root_account_usage.yml")+":2:5)")
	})
	// A UUID id in upper case is the same id: lower-cased, with a note.
	t.Run("upper-case UUID", func(t *testing.T) {
		src := rootUsageRule(t)
		p := writeSigma(t, "upper.yml", strings.Replace(string(src), "8ad1600d-e9dc-4251-b0ee-a65268f29add", "8AD1600D-E9DC-4251-B0EE-A65268F29ADD", 1))
		set, ds := LoadPaths([]string{p}, LoadOptions{})
		if set == nil || len(set.Rules) != 1 || set.Rules[0].ID != "8ad1600d-e9dc-4251-b0ee-a65268f29add" {
			t.Fatalf("upper-case UUID: %v", ds)
		}
		if len(ds) == 0 || ds[0].Severity != SevNote || ds[0].Pos.Line != 2 || !strings.Contains(ds[0].Msg, "lower-case") {
			t.Errorf("want a note at line 2: %v", ds)
		}
	})
	// A symlinked rules folder is loaded; hidden folders (a Kubernetes
	// ConfigMap's ..data, .git) are skipped; a file named twice, or
	// inside a folder also named, loads once.
	t.Run("paths", func(t *testing.T) {
		src := rootUsageRule(t)
		dir := t.TempDir()
		real := filepath.Join(dir, "..2026_12_04_01_00_00.1")
		if err := os.MkdirAll(real, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(real, "root.yml"), src, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, l := range [][2]string{{"..2026_12_04_01_00_00.1", filepath.Join(dir, "..data")}, {"..data/root.yml", filepath.Join(dir, "root.yml")}} {
			if err := os.Symlink(l[0], l[1]); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(dir, ".git"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".git", "x.yml"), []byte("not: a rule\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(t.TempDir(), "rules")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		for _, paths := range [][]string{{dir}, {link}, {link, filepath.Join(link, "root.yml")}, {filepath.Join(dir, "root.yml"), filepath.Join(dir, "root.yml")}} {
			set, ds := LoadPaths(paths, LoadOptions{})
			if set == nil || len(set.Rules) != 1 {
				t.Errorf("%v: %v", paths, ds)
			}
		}
		// Every problem in one pass: a missing path, an empty file and a
		// bad rule are all reported.
		empty := writeSigma(t, "empty.yml", "# nothing yet\n")
		bad := writeSigma(t, "bad.yml", strings.Replace(string(src), "condition: selection", "condition: selection and nope", 1))
		missing := filepath.Join(dir, "missing.yml")
		_, ds := LoadPaths([]string{missing, empty, bad}, LoadOptions{})
		var got []string
		for _, d := range ds.Errors() {
			got = append(got, d.Pos.File)
		}
		if want := []string{missing, empty, bad}; !slices.Equal(got, want) {
			t.Errorf("errors in %q, want %q:\n%v", got, want, ds)
		}
	})
}

func TestSigmaSummary(t *testing.T) {
	for _, c := range []struct {
		desc string
		fps  []string
		want string
	}{
		{"Detects x", nil, "Detects x"},
		{"Detects x", []string{"Unknown"}, "Detects x"},
		{"", []string{"admins", " none "}, "Known false positives: admins"},
		{" Detects x ", []string{"a", "b"}, "Detects x\nKnown false positives: a; b"},
		{"", nil, ""},
	} {
		if got := sigmaSummary(c.desc, c.fps); got != c.want {
			t.Errorf("sigmaSummary(%q, %q) = %q, want %q", c.desc, c.fps, got, c.want)
		}
	}
}

// Id-less rules take their file's name; files of one name in two folders,
// or with both extensions, are told apart by the folder.
func TestSigmaIDlessNames(t *testing.T) {
	rule := "title: t\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n    sel: {eventName: X}\n    condition: sel\n"
	dir := t.TempDir()
	for _, p := range []string{"a/x.yml", "b/x.yml", "b/x.yaml"} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(rule), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, ds := LoadPaths([]string{dir}, LoadOptions{})
	if set == nil {
		t.Fatal(ds)
	}
	var ids []string
	for _, r := range set.Rules {
		ids = append(ids, r.ID)
	}
	if got := strings.Join(ids, " "); got != "sigma-x sigma-b-x sigma-b-x.yml" {
		t.Errorf("ids %q", got)
	}
}

// rootUsageRule is SigmaHQ's aws_root_account_usage.yml, to vary.
func rootUsageRule(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(sigmaHQDir, "aws_root_account_usage.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return src
}
