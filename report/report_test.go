package report

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/report/cases"
)

func readIncidents(t testing.TB, path string) []pipeline.Incident {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	incs, err := ReadJSONL(f)
	if err != nil {
		t.Fatal(err)
	}
	return incs
}

// demoData is the demo's incidents with the counts of its replay summary
// and the records of the exec chain's three evidence events.
func demoData(t testing.TB) Data {
	incs := readIncidents(t, "testdata/demo.jsonl")
	return Data{
		Source: "replay of testdata/demo",
		Inputs: &Inputs{
			Paths: []string{"testdata/demo"}, Files: 7,
			Records:      map[pipeline.Source]int64{pipeline.SourceCloudTrail: 2906, pipeline.SourceGuardDuty: 5, pipeline.SourceContainerInsights: 624, pipeline.SourceFalco: 7, pipeline.SourceECS: 5},
			SkippedRecs:  map[string]int64{},
			SkippedFiles: map[string]int64{"digest_file": 1, "non_json_file": 2},
			Correlated:   677, Irrelevant: 2870,
			First: time.Date(2023, 7, 10, 10, 0, 0, 0, time.UTC), Last: time.Date(2023, 7, 10, 12, 35, 0, 0, time.UTC),
		},
		Incidents: incs,
		Events: map[EventKey]Event{
			{pipeline.SourceCloudTrail, "5a1e0c3d-7b2f-4e8a-9c1d-000000000001"}: {
				Pos: pipeline.Position{File: "testdata/demo/AWSLogs/x_dEm0aTtAcKsToRy1.json.gz", Line: 1, Record: 0},
				Raw: json.RawMessage(`{"eventSource":"ecs.amazonaws.com","eventName":"ExecuteCommand","userIdentity":{"arn":"arn:aws:sts::123837392027:assumed-role/DevOpsBreakGlass/mallory"},"sourceIPAddress":"198.51.100.77"}`),
			},
			{pipeline.SourceFalco, "060a5baa0d3946c24d08b3b623926ffc"}: {
				Pos: pipeline.Position{File: "testdata/demo/falco/falco-events.jsonl", Line: 2},
				Raw: json.RawMessage(`{"output":"Redirect stdout/stdin to network connection </pre><script>alert(1)</script>","rule":"Redirect STDOUT/STDIN to Network Connection in Container"}`),
			},
		},
	}
}

func render(t testing.TB, d Data) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, d); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type doc struct{ root *html.Node }

func parse(t testing.TB, b []byte) doc {
	t.Helper()
	n, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return doc{n}
}

func attr(n *html.Node, k string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == k {
			return a.Val, true
		}
	}
	return "", false
}

func (d doc) walk(fn func(*html.Node)) {
	var rec func(*html.Node)
	rec = func(n *html.Node) {
		fn(n)
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(d.root)
}

func text(n *html.Node) string {
	var b strings.Builder
	var rec func(*html.Node)
	rec = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(n)
	return strings.TrimSpace(b.String())
}

func (d doc) byID(id string) *html.Node {
	var found *html.Node
	d.walk(func(n *html.Node) {
		if v, ok := attr(n, "id"); ok && v == id && found == nil {
			found = n
		}
	})
	return found
}

func (d doc) count(pred func(*html.Node) bool) int {
	n := 0
	d.walk(func(x *html.Node) {
		if x.Type == html.ElementNode && pred(x) {
			n++
		}
	})
	return n
}

func hasClass(n *html.Node, c string) bool {
	v, _ := attr(n, "class")
	for _, f := range strings.Fields(v) {
		if f == c {
			return true
		}
	}
	return false
}

func TestReportCounts(t *testing.T) {
	d := demoData(t)
	cs := cases.Build(d.Incidents, cases.Options{})
	if len(cs) != 10 || len(d.Incidents) != 15 {
		t.Fatalf("demo: %d cases of %d incidents, want 10 of 15", len(cs), len(d.Incidents))
	}
	p := parse(t, render(t, d))
	for id, want := range map[string]string{
		"count-cases": "10", "count-incidents": "15", "count-open": "12",
		"cases-critical": "3", "cases-high": "6", "cases-medium": "1",
		"incidents-critical": "4", "incidents-high": "9", "incidents-medium": "2",
		"shown-cases": "10", "shown-incidents": "15",
		"files-read": "7", "records-read": "3547", "records-skipped": "0", "files-skipped": "3",
		"span": "2023-07-10 12:00:08 .. 2023-07-10 12:31:30",
	} {
		n := p.byID(id)
		if n == nil {
			t.Errorf("no #%s", id)
			continue
		}
		if got := text(n); got != want {
			t.Errorf("#%s = %q, want %q", id, got, want)
		}
	}
	if p.byID("cases-low") != nil {
		t.Errorf("a low row without low incidents")
	}
	if n := p.count(func(n *html.Node) bool { return n.Data == "section" && hasClass(n, "case") }); n != 10 {
		t.Errorf("%d case sections, want 10", n)
	}
	if n := p.count(func(n *html.Node) bool { return hasClass(n, "incident") }); n != 15 {
		t.Errorf("%d incidents, want 15", n)
	}
	var steps int
	for _, c := range cs {
		steps += len(c.Steps)
		sec := p.byID(c.ID)
		if sec == nil {
			t.Errorf("no section for case %s", c.ID)
			continue
		}
		if got := (doc{sec}).count(func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "step") }); got != len(c.Steps) {
			t.Errorf("case %s: %d steps shown, want %d", c.ID, got, len(c.Steps))
		}
	}
	if n := p.count(func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "step") }); n != steps {
		t.Errorf("%d steps, want %d", n, steps)
	}
	// Where the evidence was read and its record, for the events the
	// inputs gave; the Falco record's markup is text.
	if n := p.count(func(n *html.Node) bool { return n.Data == "details" && hasClass(n, "raw") }); n != 2 {
		t.Errorf("%d raw records, want 2 (ExecuteCommand, and the Falco shell the chain and the reverse shell share in one step)", n)
	}
	var wheres []string
	p.walk(func(n *html.Node) {
		if v, ok := attr(n, "title"); ok && strings.HasPrefix(v, "testdata/demo/") {
			wheres = append(wheres, v+" = "+text(n))
		}
	})
	want := []string{
		"testdata/demo/AWSLogs/x_dEm0aTtAcKsToRy1.json.gz:1 = x_dEm0aTtAcKsToRy1.json.gz:1",
		"testdata/demo/falco/falco-events.jsonl:2 = falco-events.jsonl:2",
	}
	if strings.Join(wheres, "\n") != strings.Join(want, "\n") {
		t.Errorf("positions:\n%s\nwant\n%s", strings.Join(wheres, "\n"), strings.Join(want, "\n"))
	}
	if n := p.count(func(n *html.Node) bool { return n.Data == "script" }); n != 1 {
		t.Errorf("%d script elements, want 1: record content escaped", n)
	}
	if !strings.Contains(text(p.root), "ecs.amazonaws.com ExecuteCommand by arn:aws:sts::123837392027:assumed-role/DevOpsBreakGlass/mallory from 198.51.100.77") {
		t.Errorf("the ExecuteCommand step does not say what happened")
	}
}

// The report fetches nothing: no src, no href but in-page anchors, no CSS
// import or url(), and a policy that forbids every fetch.
func TestReportSelfContained(t *testing.T) {
	b := render(t, demoData(t))
	p := parse(t, b)
	p.walk(func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		for _, a := range n.Attr {
			switch a.Key {
			case "src", "srcset", "action", "formaction", "poster", "data", "background", "ping", "manifest":
				t.Errorf("<%s %s=%q>", n.Data, a.Key, a.Val)
			case "href":
				if !strings.HasPrefix(a.Val, "#") {
					t.Errorf("<%s href=%q>: not an in-page link", n.Data, a.Val)
				}
			case "style":
				if strings.Contains(a.Val, "url(") {
					t.Errorf("<%s style=%q> loads a url", n.Data, a.Val)
				}
			}
		}
		if n.Data == "link" {
			t.Errorf("a <link> element")
		}
		if n.Data == "style" || n.Data == "script" {
			s := text(n)
			for _, bad := range []string{"@import", "url(", "http://", "https://", "fetch(", "XMLHttpRequest", "import("} {
				if strings.Contains(s, bad) {
					t.Errorf("<%s> contains %q", n.Data, bad)
				}
			}
		}
	})
	var csp string
	p.walk(func(n *html.Node) {
		if v, _ := attr(n, "http-equiv"); n.Data == "meta" && strings.EqualFold(v, "Content-Security-Policy") {
			csp, _ = attr(n, "content")
		}
	})
	if !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q does not forbid fetches", csp)
	}
	// Links to runbooks are text, not links.
	incs := []pipeline.Incident{{ID: "x", Rule: "r", Severity: pipeline.SeverityLow, Runbook: "https://wiki.example/runbook", FirstSeen: time.Unix(0, 0), LastSeen: time.Unix(0, 0)}}
	if p := parse(t, render(t, Data{Incidents: incs})); p.count(func(n *html.Node) bool {
		_, ok := attr(n, "href")
		v, _ := attr(n, "href")
		return ok && !strings.HasPrefix(v, "#")
	}) != 0 {
		t.Errorf("a runbook became a link")
	}
}

func TestReportEscapes(t *testing.T) {
	incs := []pipeline.Incident{{
		ID: "i1", Rule: `r"><script>alert(1)</script>`, Title: `<img src=x onerror=alert(1)>`, Severity: pipeline.SeverityHigh,
		Summary: `</dd><script>alert(2)</script>`, Remediation: "1. <b>stop</b>",
		Key:       map[string]string{"task_arn": `arn:aws:ecs:us-east-1:1:task/c/"onmouseover="x`},
		FirstSeen: time.Unix(100, 0), LastSeen: time.Unix(200, 0), Status: pipeline.IncidentOpen,
	}}
	b := render(t, Data{Incidents: incs})
	p := parse(t, b)
	if n := p.count(func(n *html.Node) bool { return n.Data == "script" }); n != 1 {
		t.Errorf("%d scripts", n)
	}
	if n := p.count(func(n *html.Node) bool { return n.Data == "img" || n.Data == "b" }); n != 0 {
		t.Errorf("markup from an incident became elements")
	}
	p.walk(func(n *html.Node) {
		if _, ok := attr(n, "onmouseover"); ok {
			t.Errorf("an attribute injected through a task ARN")
		}
	})
	if !strings.Contains(text(p.root), "<img src=x onerror=alert(1)>") {
		t.Errorf("the title is not shown as text")
	}
}

func TestReportFromJSONLOnly(t *testing.T) {
	d := demoData(t)
	d.Inputs, d.Events = nil, nil
	p := parse(t, render(t, d))
	if got := text(p.byID("inputs")); !strings.Contains(got, "Not known") {
		t.Errorf("inputs section %q", got)
	}
	if n := p.count(func(n *html.Node) bool { return n.Data == "details" && hasClass(n, "raw") }); n != 0 {
		t.Errorf("%d raw records without inputs", n)
	}
	if got := text(p.byID("count-cases")); got != "10" {
		t.Errorf("cases %q", got)
	}
}

func TestReadJSONL(t *testing.T) {
	in := `{"id":"a","rule":"r","severity":"high","first_seen":"2024-01-01T00:00:02Z","last_seen":"2024-01-01T00:00:02Z","count":1,"status":"open","events":[]}

{"id":"b","rule":"r","severity":"low","first_seen":"2024-01-01T00:00:01Z","last_seen":"2024-01-01T00:00:01Z","count":1,"status":"open","events":[]}
{"id":"a","rule":"r","severity":"critical","first_seen":"2024-01-01T00:00:02Z","last_seen":"2024-01-01T00:00:09Z","count":2,"status":"resolved","events":[]}
`
	incs, err := ReadJSONL(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != 2 || incs[0].ID != "b" || incs[1].ID != "a" || incs[1].Count != 2 || incs[1].Severity != pipeline.SeverityCritical {
		t.Errorf("incidents %+v", incs)
	}
	_, err = ReadJSONL(strings.NewReader("{\"id\":\"a\"}\n{oops\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %v, want one naming line 2", err)
	}
}
