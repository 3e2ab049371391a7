//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Symbolic links are read like what they point to: as a PATH (to a folder
// or a file) and inside a folder. Both once read 0 files and exited 0.
func TestReplayFollowsSymlinks(t *testing.T) {
	demo, err := filepath.Abs("../../testdata/demo")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	link := func(target, name string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, want, _ := runCmd(t, "replay", demo)
	code, got, errOut := runCmd(t, "replay", link(demo, "demo-link"))
	if code != 0 || got != want || !strings.Contains(errOut, "files read: 7\n") {
		t.Errorf("PATH a link to the demo folder: exit %d, same incidents %v\n%s", code, got == want, errOut)
	}

	falco := filepath.Join(demo, "falco/falco-events.jsonl")
	_, want, _ = runCmd(t, "replay", falco, filepath.Join(demo, "eventbridge"))
	if !strings.Contains(want, `"rule":"ecs-mining-pool-connections-burst"`) {
		t.Fatalf("the Falco alerts alone give no pool-connection incident:\n%s", want)
	}
	code, got, errOut = runCmd(t, "replay", link(falco, "falco-link.jsonl"), filepath.Join(demo, "eventbridge"))
	if code != 0 || got != want || !strings.Contains(errOut, "files read: 2\n") {
		t.Errorf("PATH a link to a file: exit %d, same incidents %v\n%s", code, got == want, errOut)
	}
	link(falco, "in/alerts.jsonl")
	link(filepath.Join(demo, "eventbridge"), "in/eb")
	link(".", "in/loop") // a loop: not followed, counted
	code, got, errOut = runCmd(t, "replay", filepath.Join(dir, "in"))
	if code != 0 || got != want || !strings.Contains(errOut, "files read: 2\n") || !strings.Contains(errOut, "symlink_loop                             1\n") {
		t.Errorf("links inside a folder: exit %d, same incidents %v\n%s", code, got == want, errOut)
	}
}
