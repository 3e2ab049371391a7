package ruletest

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// repoRoot finds the module root (the directory holding go.mod).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// repoTestFiles lists every rule test file of the repository:
// rules/builtin/*_test.yaml and rules/examples/**/*_test.yaml.
func repoTestFiles(t *testing.T) []string {
	t.Helper()
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "rules", "builtin", "*_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ex := filepath.Join(root, "rules", "examples")
	err = filepath.WalkDir(ex, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && filepath.Ext(p) == ".yaml" && len(p) > len("_test.yaml") && p[len(p)-len("_test.yaml"):] == "_test.yaml" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// TestRepoRuleTests runs every rule test file of the repository, one
// subtest per file and test, so that `make test` fails when a rule test
// fails. Each test logs what it saw (incident and evidence counts).
func TestRepoRuleTests(t *testing.T) {
	root := repoRoot(t)
	files := repoTestFiles(t)
	if len(files) == 0 {
		t.Fatal("no rule test files found under rules/")
	}
	ctx := context.Background()
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			fr, err := RunFile(ctx, f, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(fr.Tests) == 0 {
				t.Fatal("no tests ran")
			}
			for _, tr := range fr.Tests {
				t.Run(tr.Name, func(t *testing.T) {
					for _, e := range tr.Evals {
						t.Log(e)
					}
					for _, msg := range tr.Failures {
						t.Error(msg)
					}
				})
			}
		})
	}
}
