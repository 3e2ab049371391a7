package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The image's binary, built exactly as deploy/Dockerfile builds it (its go
// build line, run here without Docker): static, stamped with version and
// commit, and it says which rule pack it carries.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	df, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// The RUN instruction's command: continuation lines joined.
	text := strings.ReplaceAll(string(df), "\\\n", " ")
	m := regexp.MustCompile(`(?m)^RUN [^\n]*?((?:[A-Z_]+=\S+ )*)go build ([^\n]+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no go build in deploy/Dockerfile")
	}
	env := strings.Fields(m[1])
	args := regexp.MustCompile(`"[^"]*"|\S+`).FindAllString(m[2], -1)
	bin := filepath.Join(t.TempDir(), "ecscorr")
	for i, a := range args {
		a = strings.Trim(a, `"`)
		a = strings.NewReplacer("${VERSION}", "v9.8.7-test", "${COMMIT}", "abc1234").Replace(a)
		if a == "/out/ecscorr" {
			a = bin
		}
		args[i] = a
	}
	// GOEXPERIMENT=simd: the vector JSON scans (pipeline/jsonskip_simd.go).
	for _, want := range []string{"CGO_ENABLED=0", "GOEXPERIMENT=simd"} {
		if !strings.Contains(m[1], want) {
			t.Errorf("the Dockerfile builds without %s", want)
		}
	}
	if !strings.Contains(m[2], "-trimpath") {
		t.Errorf("the Dockerfile builds without -trimpath")
	}
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %q: %v\n%s", args, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the image's binary needs a dynamic loader: it would not run on distroless/static")
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^ecscorr v9\.8\.7-test \(commit abc1234, go1\.[0-9.]+-X:simd, rule pack sha256:[0-9a-f]{16}\)\n$`).Match(out) {
		t.Errorf("version: %q", out)
	}
	// Runs as any uid with only its state directory writable: the image's
	// user has no home and a read-only root.
	if !strings.Contains(string(df), "USER 65532:65532") || !strings.Contains(string(df), "distroless/static") {
		t.Errorf("the image is not distroless/static with a non-root user")
	}
}
