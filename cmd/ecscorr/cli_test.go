package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/rules"
)

const demo = "../../testdata/demo"

// runBin runs the real binary (exit codes are the process's) with stdin.
func runBin(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(realBinary(t), args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

func demoGolden(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/demo.golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goldenLines returns the golden incidents (JSON lines) for which keep is true.
func goldenLines(t *testing.T, keep func(pipeline.Incident) bool) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.SplitAfter(demoGolden(t), "\n") {
		if line == "" {
			continue
		}
		var inc pipeline.Incident
		if err := json.Unmarshal([]byte(line), &inc); err != nil {
			t.Fatal(err)
		}
		if keep(inc) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// layoutLeak matches Go reference-time layouts, which no error may show.
var layoutLeak = regexp.MustCompile(`2006|15:04|Z07|01-02`)

func TestSinceUntilParse(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	for _, tc := range []struct {
		in     string
		anchor anchor
		abs    time.Time
		off    time.Duration
		err    string
	}{
		{in: "", anchor: anchorNone},
		{in: "2023-07-10", anchor: anchorAbs, abs: utc("2023-07-10T00:00:00Z")},
		{in: "2023-07-10T12:00:00Z", anchor: anchorAbs, abs: utc("2023-07-10T12:00:00Z")},
		{in: "2023-07-10T12:00:00.250Z", anchor: anchorAbs, abs: utc("2023-07-10T12:00:00.25Z")},
		{in: "2023-07-10T14:00:00+02:00", anchor: anchorAbs, abs: utc("2023-07-10T12:00:00Z")},
		{in: "2023-07-10T12:00", anchor: anchorAbs, abs: utc("2023-07-10T12:00:00Z")},
		{in: "2023-07-10 12:00", anchor: anchorAbs, abs: utc("2023-07-10T12:00:00Z")},
		{in: "2023-07-10 12:00:30", anchor: anchorAbs, abs: utc("2023-07-10T12:00:30Z")},
		{in: "2023-07-10t12:00z", anchor: anchorAbs, abs: utc("2023-07-10T12:00:00Z")},
		{in: "2023-07-10T12:00-05:00", anchor: anchorAbs, abs: utc("2023-07-10T17:00:00Z")},
		{in: "-24h", anchor: anchorNow, off: -24 * time.Hour},
		{in: "-90m", anchor: anchorNow, off: -90 * time.Minute},
		{in: "-7d", anchor: anchorNow, off: -7 * 24 * time.Hour},
		{in: "-1h30m", anchor: anchorNow, off: -90 * time.Minute},
		{in: "+1h", anchor: anchorNow, off: time.Hour},
		{in: "now", anchor: anchorNow},
		{in: "now-1h", anchor: anchorNow, off: -time.Hour},
		{in: "newest", anchor: anchorNewest},
		{in: "newest-24h", anchor: anchorNewest, off: -24 * time.Hour},
		{in: "NEWEST-2d", anchor: anchorNewest, off: -48 * time.Hour},
		{in: "newest+1s", anchor: anchorNewest, off: time.Second},
		{in: "yesterday", err: `--since "yesterday": want a date (2023-07-10, UTC midnight)`},
		{in: "2023-07-1x", err: `--since "2023-07-1x": want a date`},
		{in: "2023-02-30", err: `--since "2023-02-30" (day out of range): want`},
		{in: "2023-07-10 25:00", err: `(hour out of range)`},
		{in: "-24", err: `--since "-24" (not a duration such as 24h, 90m, 7d or 1h30m)`},
		{in: "-", err: `not a duration`},
		{in: "newest24h", err: `(an offset starts with - or +)`},
		{in: "07/10/2023", err: `want a date`},
	} {
		a, err := parseTimeArg("--since", tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.err)
			}
			if err != nil && layoutLeak.MatchString(strings.ReplaceAll(err.Error(), "2023-07-10", "")) {
				t.Errorf("%q: the error shows a Go layout: %v", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if a.anchor != tc.anchor || !a.abs.Equal(tc.abs) || a.off != tc.off {
			t.Errorf("%q: anchor %d abs %s off %s; want %d %s %s", tc.in, a.anchor, a.abs, a.off, tc.anchor, tc.abs, tc.off)
		}
	}
}

func TestSinceUntilRange(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	newest := time.Date(2023, 7, 10, 12, 35, 0, 0, time.UTC)
	mk := func(since, until string) timeRange {
		t.Helper()
		s, err := parseTimeArg("--since", since)
		if err != nil {
			t.Fatal(err)
		}
		u, err := parseTimeArg("--until", until)
		if err != nil {
			t.Fatal(err)
		}
		return timeRange{s, u}
	}
	for _, tc := range []struct {
		since, until string
		checkErr     string // from check, before reading
		resolveErr   string // from resolve(now, newest)
		s, u         time.Time
	}{
		{since: "2023-07-10", until: "2023-07-11", s: time.Date(2023, 7, 10, 0, 0, 0, 0, time.UTC), u: time.Date(2023, 7, 11, 0, 0, 0, 0, time.UTC)},
		{since: "2023-07-11", until: "2023-07-10", checkErr: "--since 2023-07-11 is not before --until 2023-07-10: the range is empty"},
		{since: "2023-07-10", until: "2023-07-10", checkErr: "--since 2023-07-10 is not before --until 2023-07-10"},
		{since: "-1h", until: "-2h", checkErr: "--since -1h (2024-05-01T11:00:00Z) is not before --until -2h (2024-05-01T10:00:00Z)"},
		{since: "-24h", until: "", s: now.Add(-24 * time.Hour)},
		{since: "newest-1h", until: "newest-2h", checkErr: "--since newest-1h is not before --until newest-2h"},
		{since: "newest-10m", until: "newest+1s", s: newest.Add(-10 * time.Minute), u: newest.Add(time.Second)},
		// Mixed anchors are only known once the newest event is.
		{since: "newest-1h", until: "2023-07-10T11:00:00Z", resolveErr: "--since newest-1h (2023-07-10T11:35:00Z) is not before --until 2023-07-10T11:00:00Z"},
		{since: "2023-07-10T12:00:00Z", until: "newest", s: time.Date(2023, 7, 10, 12, 0, 0, 0, time.UTC), u: newest},
	} {
		r := mk(tc.since, tc.until)
		err := r.check(now)
		if tc.checkErr != "" {
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.checkErr) {
				t.Errorf("%s..%s: check: %v, want a usage error containing %q", tc.since, tc.until, err, tc.checkErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s..%s: check: %v", tc.since, tc.until, err)
			continue
		}
		s, u, err := r.resolve(now, newest)
		if tc.resolveErr != "" {
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.resolveErr) {
				t.Errorf("%s..%s: resolve: %v, want a usage error containing %q", tc.since, tc.until, err, tc.resolveErr)
			}
			continue
		}
		if err != nil || !s.Equal(tc.s) || !u.Equal(tc.u) {
			t.Errorf("%s..%s: resolve = %s, %s, %v; want %s, %s", tc.since, tc.until, s, u, err, tc.s, tc.u)
		}
	}
}

// The binary takes dates and date-times as written by people, refuses an
// empty range with both values, and "newest-10m" is the archive's last ten
// minutes (the demo's newest record, a CloudTrail call no rule reads, is
// at 12:37:50).
func TestSinceUntilBinary(t *testing.T) {
	code, want, errOut := runBin(t, nil, "replay", "--quiet", "--until", "2023-07-10T12:05:00Z", demo)
	if code != 0 || want == "" {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	for _, args := range [][]string{
		{"--since", "2023-07-10", "--until", "2023-07-10 12:05"},
		{"--until", "2023-07-10T12:05"},
		{"--until", "2023-07-10T14:05+02:00"},
	} {
		code, out, errOut := runBin(t, nil, append(append([]string{"replay", "--quiet"}, args...), demo)...)
		if code != 0 || out != want {
			t.Errorf("%v: exit %d, %d bytes of incidents, want the %d of --until 2023-07-10T12:05:00Z\n%s", args, code, len(out), len(want), errOut)
		}
	}
	code, want, errOut = runBin(t, nil, "replay", "--since", "2023-07-10T12:27:50Z", demo)
	if code != 0 || want == "" {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	code, out, errOut := runBin(t, nil, "replay", "--since", "newest-10m", demo)
	if code != 0 || out != want {
		t.Errorf("newest-10m: exit %d, incidents differ from --since 12:27:50Z:\n got %s\nwant %s\n%s", code, out, want, errOut)
	}
	if !strings.Contains(errOut, "event time: 2023-07-10T12:27:51Z .. 2023-07-10T12:35:00Z (correlated)\n") {
		t.Errorf("newest-10m summary lacks the event time range:\n%s", errOut)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--since", "2023-07-11", "--until", "2023-07-10"}, "--since 2023-07-11 is not before --until 2023-07-10: the range is empty"},
		{[]string{"--since", "newest-1m", "--until", "2023-07-10T12:00:00Z"}, "--since newest-1m (2023-07-10T12:36:50Z) is not before --until 2023-07-10T12:00:00Z"},
		{[]string{"--since", "2023-07-1x"}, `--since "2023-07-1x": want a date (2023-07-10, UTC midnight)`},
	} {
		code, out, errOut := runBin(t, nil, append(append([]string{"replay"}, tc.args...), demo)...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 with %q", tc.args, code, out, errOut, tc.msg)
		}
		if strings.Contains(errOut, "2006") || strings.Contains(errOut, "Z07") {
			t.Errorf("%v: stderr shows a Go layout: %s", tc.args, errOut)
		}
	}
}

// damagedDemo is the demo with one CloudTrail object truncated halfway.
func damagedDemo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(demo, "AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/123837392027_CloudTrail_us-east-1_20230710T1235Z_dEm0aTtAcKsToRy1.json.gz")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cut.json.gz"), b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Exit status, from the process: 3 for --fail-on after all output, 4 for
// damaged input (winning over 3) unless --allow-damaged, 2 for usage, 1
// for other errors.
func TestExitCodes(t *testing.T) {
	golden := demoGolden(t)
	cut := damagedDemo(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // "" = don't compare; "golden" = the whole demo
		msg  string
	}{
		{"nothing asked", []string{"replay", demo}, 0, "golden", ""},
		{"fail-on critical found", []string{"replay", "--fail-on", "critical", demo}, 3, "golden", ""},
		{"fail-on informational found", []string{"replay", "--fail-on", "info", demo}, 3, "golden", ""},
		{"fail-on counts what is written", []string{"replay", "--fail-on", "critical", "--rule", "ecs-drift-cloudtrail-logging-disabled", demo}, 0, "", ""},
		{"fail-on with a filter that keeps a critical", []string{"replay", "--fail-on", "high", "--severity", "critical", demo}, 3, "", ""},
		{"damaged", []string{"replay", demo, cut}, 4, "", "input damaged or unreadable: 1 file(s) or folder(s)"},
		{"damaged wins over fail-on", []string{"replay", "--fail-on", "low", demo, cut}, 4, "", "exit status 4; --allow-damaged accepts it"},
		{"damaged allowed", []string{"replay", "--allow-damaged", demo, cut}, 0, "", "accepted with --allow-damaged"},
		{"damaged allowed, fail-on", []string{"replay", "--allow-damaged", "--fail-on", "critical", demo, cut}, 3, "", ""},
		{"unknown flag", []string{"replay", "--nosuch", demo}, 2, "", "flag provided but not defined: -nosuch"},
		{"bad fail-on", []string{"replay", "--fail-on", "urgent", demo}, 2, "", `--fail-on: unknown severity "urgent"`},
		{"bad severity", []string{"replay", "--severity", "urgent", demo}, 2, "", `--severity: unknown severity "urgent"`},
		{"unknown rule", []string{"replay", "--rule", "ecs-nosuch", demo}, 2, "", "--rule ecs-nosuch matches none of the 13 loaded rules"},
		{"reversed range", []string{"replay", "--since", "2023-07-11", "--until", "2023-07-10", demo}, 2, "", "is not before"},
		{"missing path", []string{"replay", "no/such/dir"}, 2, "", "no such file or directory"},
		{"unwritable out", []string{"replay", "--out", filepath.Join(t.TempDir(), "missing", "x.jsonl"), demo}, 1, "", "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runBin(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, errOut)
			}
			if tc.out == "golden" && out != golden {
				t.Errorf("stdout is not the demo's incidents (%d bytes, want %d)", len(out), len(golden))
			}
			if tc.msg != "" && !strings.Contains(errOut, tc.msg) {
				t.Errorf("stderr lacks %q:\n%s", tc.msg, errOut)
			}
		})
	}
	// The damaged run still writes what it read: the other files' incidents.
	_, out, _ := runBin(t, nil, "replay", "--quiet", demo, cut)
	if out != golden {
		t.Errorf("a damaged extra file changed the demo's incidents")
	}
}

// "-" reads standard input, gzip or plain, with positions named stdin.
func TestStdinReplay(t *testing.T) {
	gz := filepath.Join(demo, "AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/123837392027_CloudTrail_us-east-1_20230710T1235Z_inv1ctusStratus2.json.gz")
	_, want, errOut := runBin(t, nil, "replay", "--quiet", gz)
	if strings.Count(want, "\n") < 2 {
		t.Fatalf("the object alone gives too few incidents:\n%s%s", want, errOut)
	}
	b, err := os.ReadFile(gz)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runBin(t, b, "replay", "-")
	if code != 0 || out != want {
		t.Errorf("gzip on stdin: exit %d, incidents differ\n got %s\nwant %s\n%s", code, out, want, errOut)
	}
	if !strings.Contains(errOut, "files read: 1\n") {
		t.Errorf("summary: %s", errOut)
	}
	plain, err := exec.Command("gzip", "-dc", gz).Output()
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runBin(t, plain, "replay", "-"); code != 0 || out != want {
		t.Errorf("plain JSON on stdin: exit %d, incidents differ\n%s", code, errOut)
	}
	// stdin with folders, and a bad line named by its stdin position.
	falco, err := os.ReadFile(filepath.Join(demo, "falco/falco-events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	_, whole, _ := runBin(t, nil, "replay", "--quiet", demo)
	code, out, errOut = runBin(t, append([]byte("{\"time\": \"2023-07-10T12:00:00Z\", \"rule\": \n"), falco...), "replay", "-", filepath.Join(demo, "AWSLogs"), filepath.Join(demo, "eventbridge"), filepath.Join(demo, "container-insights"))
	if code != 0 || out != whole {
		t.Errorf("stdin + folders: exit %d, incidents differ from the demo's\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "pos=stdin:1 ") || !strings.Contains(errOut, "records skipped: 1\n") {
		t.Errorf("the bad stdin line is not reported at stdin:1:\n%s", errOut)
	}
	// A truncated gzip stream on stdin is damaged input.
	code, _, errOut = runBin(t, b[:len(b)/2], "replay", "-")
	if code != 4 || !strings.Contains(errOut, "file=stdin") {
		t.Errorf("truncated gzip on stdin: exit %d, want 4\n%s", code, errOut)
	}
	if code, _, errOut := runBin(t, nil, "replay", "-", "-"); code != 2 || !strings.Contains(errOut, "given twice") {
		t.Errorf("- twice: exit %d\n%s", code, errOut)
	}
}

// The output filters select what is written and say how many they left
// out; they change nothing that is correlated or kept in --state.
func TestFilterOutput(t *testing.T) {
	taskB := "arn:aws:ecs:us-east-1:123837392027:task/payments-prod/9e8d7c6b5a4f4e3d2c1b0a9f8e7d6c5b"
	for _, tc := range []struct {
		args []string
		keep func(pipeline.Incident) bool
		n    int
	}{
		{[]string{"--severity", "critical"}, func(i pipeline.Incident) bool { return i.Severity == pipeline.SeverityCritical }, 4},
		{[]string{"--severity", "HIGH"}, func(i pipeline.Incident) bool { return i.Severity >= pipeline.SeverityHigh }, 13},
		{[]string{"--rule", "ecs-drift-*"}, func(i pipeline.Incident) bool { return strings.HasPrefix(i.Rule, "ecs-drift-") }, 9},
		{[]string{"--rule", "ecs-reverse-shell,ecs-mining-*-burst", "--rule", "ecs-exec-reverse-shell-c2"}, func(i pipeline.Incident) bool {
			return i.Rule == "ecs-reverse-shell" || i.Rule == "ecs-mining-pool-connections-burst" || i.Rule == "ecs-exec-reverse-shell-c2"
		}, 3},
		{[]string{"--task", "9e8d7c6b5a4f"}, func(i pipeline.Incident) bool { return i.Key["task_arn"] == taskB }, 4},
		{[]string{"--task", taskB, "--severity", "critical"}, func(i pipeline.Incident) bool {
			return i.Key["task_arn"] == taskB && i.Severity == pipeline.SeverityCritical
		}, 2},
		{[]string{"--tag", "T1562"}, func(i pipeline.Incident) bool {
			for _, m := range i.Mitre {
				if strings.HasPrefix(m, "T1562.") {
					return true
				}
			}
			return false
		}, 6},
		{[]string{"--tag", "attack.t1496"}, func(i pipeline.Incident) bool { return strings.HasPrefix(i.Rule, "ecs-mining-") }, 4},
		{[]string{"--tag", "reverse-shell"}, func(i pipeline.Incident) bool {
			return i.Rule == "ecs-reverse-shell" || i.Rule == "ecs-exec-reverse-shell-c2"
		}, 2},
		{[]string{"--tag", "nosuchtag"}, func(pipeline.Incident) bool { return false }, 0},
	} {
		want := goldenLines(t, tc.keep)
		code, out, errOut := runCmd(t, append(append([]string{"replay"}, tc.args...), demo)...)
		if code != 0 || out != want || strings.Count(out, "\n") != tc.n {
			t.Errorf("%v: exit %d, %d incidents, want %d:\n got %s\nwant %s\n%s", tc.args, code, strings.Count(out, "\n"), tc.n, out, want, errOut)
		}
		if s := "  incidents written: " + strconv.Itoa(tc.n) + " (" + strconv.Itoa(15-tc.n) + " filtered out by "; !strings.Contains(errOut, s) {
			t.Errorf("%v: summary lacks %q:\n%s", tc.args, s, errOut)
		}
		if !strings.Contains(errOut, "  incidents: 15 (") {
			t.Errorf("%v: the summary no longer counts every incident:\n%s", tc.args, errOut)
		}
	}
	// The table is filtered by the same hook.
	code, table, errOut := runCmd(t, "replay", "--format", "table", "--severity", "critical", demo)
	rows := func(sev string) int {
		return len(regexp.MustCompile(`(?m)^ *`+sev+`  +2023-`).FindAllString(table, -1))
	}
	if code != 0 || rows("CRITICAL") != 4 || rows("HIGH") != 0 || rows("MEDIUM") != 0 {
		t.Errorf("filtered table: exit %d\n%s\n%s", code, table, errOut)
	}
	// Stored state is untouched: a filtered run over --state, then an
	// unfiltered rerun over it, prints every incident.
	dir := t.TempDir()
	if code, _, errOut := runCmd(t, "replay", "--state", dir, "--rule", "ecs-reverse-shell", demo); code != 0 {
		t.Fatalf("filtered run: exit %d\n%s", code, errOut)
	}
	code, out, errOut := runCmd(t, "replay", "--state", dir, demo)
	if code != 0 || out != demoGolden(t) {
		t.Errorf("rerun over the filtered run's state: exit %d, %d incidents, want all 15\n%s", code, strings.Count(out, "\n"), errOut)
	}
}

func TestFilterMatchers(t *testing.T) {
	for _, tc := range []struct {
		pat, s string
		ok     bool
	}{
		{"ecs-drift-*", "ecs-drift-role-admin-policy", true},
		{"ecs-drift-*", "ecs-drift-", true},
		{"ecs-drift-*", "ecs-mining-x", false},
		{"*-burst", "ecs-mining-pool-connections-burst", true},
		{"ecs-*-shell*", "ecs-exec-reverse-shell-c2", true},
		{"ecs-*-shell*", "ecs-reverse-shel", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"*", "", true},
		{"exact", "exact", true},
		{"exact", "exact2", false},
		{"ecs-[a]", "ecs-[a]", true},
	} {
		if got := globMatch(tc.pat, tc.s); got != tc.ok {
			t.Errorf("globMatch(%q, %q) = %v", tc.pat, tc.s, got)
		}
	}
	inc := &pipeline.Incident{Tags: []string{"drift", "CloudTrail"}, Mitre: []string{"T1562.008", "T1078"}}
	for tag, ok := range map[string]bool{"drift": true, "cloudtrail": true, "T1562": true, "t1562.008": true, "attack.T1078": true, "T1078.004": false, "T156": false, "mining": false} {
		if got := hasTag(inc, normTag(tag)); got != ok {
			t.Errorf("hasTag(%q) = %v", tag, got)
		}
	}
	for _, args := range [][]string{{"--rule", ","}, {"--task", " "}, {"--tag", "attack."}} {
		code, _, errOut := runCmd(t, append(append([]string{"replay"}, args...), demo)...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errOut)
		}
	}
}

func TestRulesHelp(t *testing.T) {
	for _, args := range [][]string{{"rules", "--help"}, {"rules", "-h"}, {"help", "rules"}, {"rules", "help"}} {
		code, out, errOut := runCmd(t, args...)
		if code != 0 || out != rulesUsage || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	for _, want := range []string{"check [--builtin]", "test [-run REGEXP] [-v] FILE...", "list [--rules PATH]... [--format table|json]"} {
		if !strings.Contains(rulesUsage, want) {
			t.Errorf("rules usage lacks %q", want)
		}
	}
	if code, _, errOut := runCmd(t, "rules"); code != 2 || errOut != rulesUsage {
		t.Errorf("bare rules: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "rules", "frob"); code != 2 || !strings.Contains(errOut, `unknown rules command "frob"`) {
		t.Errorf("rules frob: exit %d, stderr %q", code, errOut)
	}
	code, out, _ := runCmd(t, "help", "replay")
	if code != 0 || !strings.Contains(out, "Exit status:") || !strings.Contains(out, "-fail-on severity") {
		t.Errorf("help replay: exit %d\n%s", code, out)
	}
}

func TestRulesList(t *testing.T) {
	code, out, errOut := runCmd(t, "rules", "list")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 14 || !regexp.MustCompile(`^ID +KIND +SEVERITY +TAGS +SOURCES +TESTS$`).MatchString(lines[0]) {
		t.Fatalf("table:\n%s", out)
	}
	row := regexp.MustCompile(`(?m)^ecs-mining-falco-and-guardduty +temporal +critical +mining,ecs,runtime,falco,guardduty,T1496 +guardduty,falco +2$`)
	if !row.MatchString(out) {
		t.Errorf("no exact row for ecs-mining-falco-and-guardduty:\n%s", out)
	}
	code, js, errOut := runCmd(t, "rules", "list", "--format", "json")
	if code != 0 {
		t.Fatalf("json: exit %d\n%s", code, errOut)
	}
	var infos []ruleInfo
	if err := json.Unmarshal([]byte(js), &infos); err != nil {
		t.Fatal(err)
	}
	byID := map[string]ruleInfo{}
	total := 0
	for _, in := range infos {
		byID[in.ID] = in
		total += in.Tests
	}
	if len(infos) != 13 || total != 62 {
		t.Errorf("%d rules, %d tests naming them; want 13 and 62", len(infos), total)
	}
	if in := byID["ecs-exec-reverse-shell-c2"]; in.Kind != "sequence" || in.Severity != "critical" || strings.Join(in.Sources, ",") != "cloudtrail,guardduty,falco" || in.Tests != 7 || !in.Enabled {
		t.Errorf("ecs-exec-reverse-shell-c2: %+v", in)
	}
	// Own rules and tests: one rule, two tests naming it (one by expect
	// rule, one by an expected incident's rule), one naming another.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "r.yaml"), `apiVersion: ecscorr/v1
kind: RuleFile
signals:
  - name: s_stop
    source: cloudtrail
    where: 'event.type == "cloudtrail.amazonaws.com:StopLogging"'
rules:
  - id: my-stop
    title: stop
    severity: low
    tags: [mine]
    detect:
      match: {signal: s_stop}
`)
	writeFile(t, filepath.Join(dir, "sub", "r_test.yaml"), `rule_files: [../r.yaml]
tests:
  - name: a
    expect:
      - {eval_time: 1m, rule: my-stop, incidents: []}
  - name: b
    expect:
      - eval_time: 1m
        incidents: [{rule: my-stop}, {rule: other}]
  - name: c
    expect:
      - {eval_time: 1m, rule: other, incidents: []}
`)
	code, out, errOut = runCmd(t, "rules", "list", "--rules", dir)
	if code != 0 || !regexp.MustCompile(`(?m)^my-stop +match +low +mine +cloudtrail +2$`).MatchString(out) || strings.Count(out, "\n") != 2 {
		t.Errorf("own rules: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCmd(t, "rules", "list", "--format", "xml"); code != 2 || !strings.Contains(errOut, "--format must be table or json") {
		t.Errorf("bad format: exit %d %s", code, errOut)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVersion(t *testing.T) {
	want := "ecscorr dev (commit unknown, " + runtime.Version() + ", rule pack " + rules.PackVersion() + ")\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := runCmd(t, args...)
		if code != 0 || out != want {
			t.Errorf("%v: exit %d, %q; want %q", args, code, out, want)
		}
	}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{16}$`).MatchString(rules.PackVersion()) {
		t.Errorf("pack version %q", rules.PackVersion())
	}
}
