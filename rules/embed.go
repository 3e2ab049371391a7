// Package rules embeds the built-in rule pack (rules/builtin/*.yaml), loaded
// with rule.LoadFS(rules.Builtin, ...).
package rules

import (
	"embed"
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
