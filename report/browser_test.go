package report

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ecscorr/ecscorr/report/cases"
)

var update = flag.Bool("update", false, "write testdata/report-overview.png")

// chromium finds a browser binary (Debian's chromium package installs
// /usr/bin/chromium).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary found (chromium, chromium-browser, google-chrome): apt-get install chromium to run the browser test")
	return ""
}

// TestReportInBrowser opens the demo's report in headless Chromium: no
// console error or exception (a blocked fetch would be one), the case
// counts are the JSONL's, the filters change what is shown, and a raw
// record opens on demand.
func TestReportInBrowser(t *testing.T) {
	bin := chromium(t)
	d := demoData(t)
	cs := cases.Build(d.Incidents, cases.Options{})
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, render(t, d), 0o644); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1400, 1000), chromedp.Flag("user-data-dir", filepath.Join(dir, "profile")))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	// Every console message until the end marker.
	var (
		mu   sync.Mutex
		msgs []chromedp.ConsoleMessage
	)
	const endMark = "ecscorr-test-end"
	ended := make(chan struct{})
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Text == endMark {
				close(ended)
				return
			}
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		}
	}()

	tctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
	defer tcancel()
	if err := chromedp.Do(tctx, chromedp.Navigate("file://"+page), chromedp.WaitReady(chromedp.CSS("#shown-cases"))); err != nil {
		t.Fatal(err)
	}
	str := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(tctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	visible := func() string {
		return str(`document.querySelectorAll("section.case:not([hidden])").length + " cases, " +
			document.querySelectorAll("section.case:not([hidden]) .incident:not([hidden])").length + " incidents; shown " +
			document.getElementById("shown-cases").textContent + "/" + document.getElementById("shown-incidents").textContent`)
	}
	expect := func(what string, nc, ni int) {
		t.Helper()
		if got, want := visible(), fmt.Sprintf("%d cases, %d incidents; shown %d/%d", nc, ni, nc, ni); got != want {
			t.Errorf("%s: %s, want %s", what, got, want)
		}
	}

	if got, want := str(`document.getElementById("count-cases").textContent`), fmt.Sprint(len(cs)); got != want {
		t.Errorf("cases shown %s, the JSONL has %s", got, want)
	}
	expect("unfiltered", len(cs), len(d.Incidents))

	shot, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report-overview.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(filepath.Join("testdata", "report-overview.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A click on "high" hides the six high-only cases: the exec chain
	// (critical + high) keeps its critical incident.
	if err := chromedp.Do(tctx, chromedp.Click(chromedp.CSS(`input[name="sev"][value="high"]`))); err != nil {
		t.Fatal(err)
	}
	expect("without high", 4, 6)
	if got := str(`String(document.querySelector('[data-id="aa244c8c2a8af4338479d4d572c400eb"]').hidden)`); got != "true" {
		t.Errorf("the high reverse shell is not hidden: %s", got)
	}
	if err := chromedp.Do(tctx, chromedp.Click(chromedp.CSS("#f-reset"))); err != nil {
		t.Fatal(err)
	}
	expect("reset", len(cs), len(d.Incidents))

	// Task B: its four mining incidents.
	setValue := func(id, v string) {
		t.Helper()
		js := fmt.Sprintf(`(function(){var e=document.getElementById(%q); e.value=%q; e.dispatchEvent(new Event("change",{bubbles:true})); return e.value})()`, id, v)
		if got := str(js); got != v {
			t.Fatalf("#%s = %q, want %q", id, got, v)
		}
	}
	setValue("f-task", "arn:aws:ecs:us-east-1:123837392027:task/payments-prod/9e8d7c6b5a4f4e3d2c1b0a9f8e7d6c5b")
	expect("task B", 1, 4)
	setValue("f-task", "")
	setValue("f-rule", "ecs-drift-cloudtrail-logging-disabled")
	expect("rule", 3, 3)
	setValue("f-rule", "")
	// 12:20–12:25 overlaps the mining spike and its join, the GuardDuty
	// mining finding (active from 12:14:05, its eventFirstSeen),
	// Container Insights off, the risky task definition and its alert, and
	// the admin policy.
	setValue("f-from", "2023-07-10T12:20")
	setValue("f-to", "2023-07-10T12:25")
	expect("12:20–12:25", 4, 7)
	if got := str(`String(document.querySelectorAll("section.case:not([hidden]) tr.step:not([hidden])").length)`); got == "0" {
		t.Errorf("no step shown in the time range")
	}
	if err := chromedp.Do(tctx, chromedp.Click(chromedp.CSS("#f-reset"))); err != nil {
		t.Fatal(err)
	}
	expect("reset", len(cs), len(d.Incidents))

	// A raw record opens on demand and shows the record as text.
	if got := str(`String(document.querySelector("details.raw").open)`); got != "false" {
		t.Errorf("raw record open before a click")
	}
	if err := chromedp.Do(tctx, chromedp.Click(chromedp.CSS("details.raw summary"))); err != nil {
		t.Fatal(err)
	}
	if got := str(`document.querySelector("details.raw").open + " " + document.querySelector("details.raw pre").innerText.includes("ExecuteCommand")`); got != "true true" {
		t.Errorf("raw record after a click: %s", got)
	}

	// The toggles open every incident (its remediation), then close them.
	for _, want := range []string{"15 open", "0 open"} {
		if err := chromedp.Do(tctx, chromedp.Click(chromedp.CSS("#x-inc"))); err != nil {
			t.Fatal(err)
		}
		if got := str(`document.querySelectorAll("details.inc[open]").length + " open"`); got != want {
			t.Errorf("incidents toggle: %s, want %s", got, want)
		}
	}

	if _, err := chromedp.Run(tctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("console.info(%q)", endMark))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
	case <-tctx.Done():
		t.Fatal("the console never showed the end marker")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgs {
		if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
			t.Errorf("console %s: %s (%s:%d)", m.Type, strings.TrimSpace(m.Text), m.URL, m.Line)
		}
	}
}
