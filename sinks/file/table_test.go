package file

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ecscorr/ecscorr/pipeline"
)

func TestShortenMiddle(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly-10", 10, "exactly-10"},
		{"0123456789abcdef", 9, "0123…cdef"},
		{"0123456789abcdef", 10, "0123…bcdef"},
		{"héllo wörld ünïcode", 9, "héll…code"},
		{"abcdef", 3, "abc"},
	} {
		if got := ShortenMiddle(tc.in, tc.n); got != tc.want || (len(tc.in) > tc.n && utf8.RuneCountInString(got) != tc.n) {
			t.Errorf("ShortenMiddle(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestWrapKeepsTheEnd(t *testing.T) {
	for _, tc := range []struct {
		in       string
		width, n int
		want     []string
	}{
		{"a b c", 10, 3, []string{"a b c"}},
		{"one two three four", 9, 3, []string{"one two", "three", "four"}},
		{"x arn:aws:ecs:us-east-1:1:task/c/0123456789 y", 12, 5, []string{"x", "arn:aws:ecs:", "us-east-1:1:", "task/c/01234", "56789 y"}},
		// Too long for 2 lines of 10: shortened in the middle, the end kept.
		{"the start of a very long title that ends with CPU 98%", 10, 2, []string{"the star…h", "CPU 98%"}},
	} {
		got := Wrap(tc.in, tc.width, tc.n)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Wrap(%q, %d, %d) = %q, want %q", tc.in, tc.width, tc.n, got, tc.want)
		}
		for _, l := range got {
			if utf8.RuneCountInString(l) > tc.width {
				t.Errorf("line %q longer than %d", l, tc.width)
			}
		}
	}
}

// The table fits 120 columns whatever the title, keeps every title's end,
// and sorts by severity, then first seen; --wide keeps everything on one
// line per incident.
func TestTableFitsAndSorts(t *testing.T) {
	at := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	long := strings.Repeat("very long title words ", 12) + "with the end that matters"
	in := []pipeline.Incident{
		{ID: "m", Rule: "r-medium", Title: "medium", Severity: pipeline.SeverityMedium, FirstSeen: at, LastSeen: at},
		{ID: "c2", Rule: "r-crit", Title: long, Severity: pipeline.SeverityCritical, FirstSeen: at.Add(time.Minute), LastSeen: at.Add(25 * time.Hour),
			Key: map[string]string{"task_arn": "arn:aws:ecs:eu-west-1:111122223333:task/a-cluster-with-a-long-name/0123456789abcdef0123456789abcdef"}},
		{ID: "c1", Rule: "r-crit", Title: "first critical", Severity: pipeline.SeverityCritical, FirstSeen: at, LastSeen: at.Add(time.Minute), Summary: "what happened", Remediation: "what to do"},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, in); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if n := utf8.RuneCountInString(l); n > TableWidth {
			t.Errorf("%d columns: %q", n, l)
		}
	}
	var order []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && (f[0] == "CRITICAL" || f[0] == "MEDIUM") {
			order = append(order, f[0]+" "+f[2])
		}
	}
	if got := strings.Join(order, ", "); got != "CRITICAL 10:00:00, CRITICAL 10:01:00, MEDIUM 10:00:00" {
		t.Errorf("order %s", got)
	}
	if !strings.Contains(out, "with the end that matters\n") || !strings.Contains(out, "05-02 11:00") || !strings.Contains(out, "…") {
		t.Errorf("table:\n%s", out)
	}
	b.Reset()
	if err := WriteTableOpts(&b, in, TableOptions{Wide: true}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], "what happened") || !strings.Contains(lines[1], "what to do") || !strings.Contains(lines[2], long) ||
		!strings.Contains(lines[2], "task a-cluster-with-a-long-name/0123456789abcdef0123456789abcdef") {
		t.Errorf("wide:\n%s", b.String())
	}
}
