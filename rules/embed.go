// Package rules embeds the built-in rule pack (rules/builtin/*.yaml), loaded
// with rule.LoadFS(rules.Builtin, ...).
package rules

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
)

//go:embed builtin/*.yaml
var builtin embed.FS

// Builtin is the built-in rule pack; file names are relative to builtin/.
var Builtin fs.FS = mustSub(builtin, "builtin")

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // only on an invalid constant path
	}
	return s
}

// PackVersion identifies the built-in pack's content: a hash of its file
// names and bytes, so two binaries with the same pack say the same thing
// whatever their build.
func PackVersion() string {
	h := sha256.New()
	_ = fs.WalkDir(Builtin, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Builtin, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}
