package rule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// DefaultMaxRetention bounds windows when LoadOptions.MaxRetention is zero.
const DefaultMaxRetention = 7 * 24 * time.Hour

// MaxBaselineOver bounds metric baselines.
const MaxBaselineOver = 30 * 24 * time.Hour

// LoadOptions tune checking.
type LoadOptions struct {
	// MaxRetention bounds every window (default 7d).
	MaxRetention time.Duration
	// Sinks are the configured sink names; nil = routes are not checked.
	Sinks []string
	// Now is compared with exception expiry dates for warnings (default
	// time.Now()).
	Now time.Time
}

// NamedSource is one rule file's content.
type NamedSource struct {
	Name string
	Data []byte
}

// LoadFiles loads rule files and folders (every *.yaml / *.yml below a
// folder, recursively, in lexical order, except *_test.yaml rule tests).
func LoadFiles(paths []string, opts LoadOptions) (*Set, Diagnostics) {
	srcs, err := ReadPaths(paths)
	if err != nil {
		return nil, Diagnostics{{Pos: errPos(err), Severity: SevError, Msg: err.Error()}}
	}
	return Load(srcs, opts)
}

// LoadFS loads every rule file of fsys (as LoadFiles does for a folder).
func LoadFS(fsys fs.FS, opts LoadOptions) (*Set, Diagnostics) {
	srcs, err := ReadFS(fsys)
	if err != nil {
		return nil, Diagnostics{{Pos: errPos(err), Severity: SevError, Msg: err.Error()}}
	}
	return Load(srcs, opts)
}

func errPos(err error) Pos {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return Pos{File: pe.Path}
	}
	return Pos{}
}

// ReadPaths reads rule files and folders as LoadFiles does, so that callers
// can combine them with other sources (e.g. the built-in pack) in one Load.
func ReadPaths(paths []string) ([]NamedSource, error) {
	var srcs []NamedSource
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			srcs = append(srcs, NamedSource{Name: p, Data: data})
			continue
		}
		err = filepath.WalkDir(p, func(fp string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !isRuleFile(d.Name()) {
				return nil
			}
			data, err := os.ReadFile(fp)
			if err != nil {
				return err
			}
			srcs = append(srcs, NamedSource{Name: fp, Data: data})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return srcs, nil
}

// ReadFS reads every rule file of fsys (recursively, lexical order, without
// *_test.yaml); names are paths inside fsys.
func ReadFS(fsys fs.FS) ([]NamedSource, error) {
	var srcs []NamedSource
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isRuleFile(d.Name()) {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		srcs = append(srcs, NamedSource{Name: p, Data: data})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return srcs, nil
}

func isRuleFile(name string) bool {
	ext := path.Ext(name)
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	return !strings.HasSuffix(strings.TrimSuffix(name, ext), "_test")
}

// Load loads, checks and compiles rule files given by content. The Set is
// nil when there are errors; warnings come with a usable Set.
func Load(files []NamedSource, opts LoadOptions) (*Set, Diagnostics) {
	if opts.MaxRetention <= 0 {
		opts.MaxRetention = DefaultMaxRetention
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	l := &loader{
		opts:   opts,
		lists:  make(map[string]*listDef),
		macros: make(map[string]*macroDef),
		sigs:   make(map[string]*sigDef),
		ruleID: make(map[string]*ruleDef),
		set: &Set{
			SignalsByName: make(map[string]*Signal),
			Lists:         make(map[string][]any),
		},
	}
	for _, src := range files {
		l.readFile(src)
	}
	l.compileAll()
	l.diags.sort()
	if l.diags.HasErrors() {
		return nil, l.diags
	}
	l.set.BuildIndex()
	return l.set, l.diags
}

type listDef struct {
	f    *srcFile
	node *yaml.Node // key node
}

type sigDef struct {
	f    *srcFile
	node *yaml.Node // the signal's map
	name string
}

type ruleDef struct {
	f    *srcFile
	node *yaml.Node
	id   string
}

type loader struct {
	opts   LoadOptions
	diags  Diagnostics
	lists  map[string]*listDef
	macros map[string]*macroDef
	sigs   map[string]*sigDef
	sigOrd []*sigDef
	ruleID map[string]*ruleDef
	rules  []*ruleDef
	set    *Set
	zones  *zoneCache // inZone's locations, shared by the compiled programs
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var ruleIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

func (l *loader) readFile(src NamedSource) {
	f := &srcFile{name: src.Name, lines: strings.Split(string(src.Data), "\n")}
	l.set.Files = append(l.set.Files, src.Name)
	dec := yaml.NewDecoder(bytes.NewReader(src.Data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			l.diag(SevError, yamlErrPos(f.name, err), "%s", yamlErrMsg(err))
			return
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue
		}
		l.readDoc(f, doc.Content[0])
	}
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlErrPos(file string, err error) Pos {
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		var line int
		fmt.Sscanf(m[1], "%d", &line)
		return Pos{File: file, Line: line, Col: 1}
	}
	return Pos{File: file, Line: 1, Col: 1}
}

func yamlErrMsg(err error) string {
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		return "yaml: " + m[2]
	}
	return err.Error()
}

func (l *loader) readDoc(f *srcFile, root *yaml.Node) {
	m, ok := l.mapping(f, root, "rule file", "apiVersion", "kind", "lists", "macros", "signals", "rules")
	if !ok {
		return
	}
	if !m.has("apiVersion") {
		l.errf(f, root, "missing apiVersion (want ecscorr/v1)")
	} else if v, ok := l.str(f, m.get("apiVersion"), "apiVersion"); ok && v != "ecscorr/v1" {
		l.errf(f, m.get("apiVersion"), "unsupported apiVersion %q (want ecscorr/v1)", v)
	}
	if !m.has("kind") {
		l.errf(f, root, "missing kind (want RuleFile)")
	} else if v, ok := l.str(f, m.get("kind"), "kind"); ok && v != "RuleFile" {
		l.errf(f, m.get("kind"), "unsupported kind %q (want RuleFile)", v)
	}
	if n := m.get("lists"); n != nil {
		if lm, ok := l.mapping(f, n, "lists"); ok {
			for _, name := range lm.order {
				l.readList(f, lm.keys[name], lm.vals[name])
			}
		}
	}
	if n := m.get("macros"); n != nil {
		if mm, ok := l.mapping(f, n, "macros"); ok {
			for _, name := range mm.order {
				l.readMacro(f, mm.keys[name], mm.vals[name])
			}
		}
	}
	if n := m.get("signals"); n != nil {
		if items, ok := l.seq(f, n, "signals"); ok {
			for _, it := range items {
				l.readSignalDef(f, it)
			}
		}
	}
	if n := m.get("rules"); n != nil {
		if items, ok := l.seq(f, n, "rules"); ok {
			for _, it := range items {
				l.readRuleDef(f, it)
			}
		}
	}
}

func (l *loader) readList(f *srcFile, k, v *yaml.Node) {
	name := k.Value
	if !identRe.MatchString(name) {
		l.errf(f, k, "list name %q is not an identifier", name)
		return
	}
	if prev := l.lists[name]; prev != nil {
		l.errf(f, k, "duplicate list %q (first defined at %s)", name, l.pos(prev.f, prev.node))
		return
	}
	l.lists[name] = &listDef{f: f, node: k}
	items, ok := l.seq(f, v, "list "+name)
	if !ok {
		return
	}
	vals := make([]any, 0, len(items))
	for _, it := range items {
		it = deref(it)
		if it.Kind != yaml.ScalarNode {
			l.errf(f, it, "list %s: items must be scalars, got %s", name, kindName(it))
			continue
		}
		val, err := scalarValue(it)
		if err != nil {
			l.errf(f, it, "list %s: %v", name, err)
			continue
		}
		vals = append(vals, val)
	}
	l.set.Lists[name] = vals
}

func (l *loader) readMacro(f *srcFile, k, v *yaml.Node) {
	name := k.Value
	if !identRe.MatchString(name) {
		l.errf(f, k, "macro name %q is not an identifier", name)
		return
	}
	for _, r := range reservedNames {
		if r == name {
			l.errf(f, k, "macro name %q is reserved", name)
			return
		}
	}
	if prev := l.macros[name]; prev != nil {
		l.errf(f, k, "duplicate macro %q (first defined at %s)", name, l.pos(prev.f, prev.node))
		return
	}
	src, ok := l.str(f, v, "macro "+name)
	if !ok {
		return
	}
	l.macros[name] = &macroDef{name: name, src: src, f: f, node: deref(v)}
}

func (l *loader) readSignalDef(f *srcFile, n *yaml.Node) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		l.errf(f, n, "signal must be a map, got %s", kindName(n))
		return
	}
	var nameNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			nameNode = deref(n.Content[i+1])
		}
	}
	if nameNode == nil {
		l.errf(f, n, "signal: missing name")
		return
	}
	name := nameNode.Value
	if !identRe.MatchString(name) {
		l.errf(f, nameNode, "signal name %q is not an identifier", name)
		return
	}
	if prev := l.sigs[name]; prev != nil {
		l.errf(f, nameNode, "duplicate signal %q (first defined at %s)", name, l.pos(prev.f, prev.node))
		return
	}
	d := &sigDef{f: f, node: n, name: name}
	l.sigs[name] = d
	l.sigOrd = append(l.sigOrd, d)
}

func (l *loader) readRuleDef(f *srcFile, n *yaml.Node) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		l.errf(f, n, "rule must be a map, got %s", kindName(n))
		return
	}
	var idNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "id" {
			idNode = deref(n.Content[i+1])
		}
	}
	if idNode == nil {
		l.errf(f, n, "rule: missing id")
		return
	}
	id := idNode.Value
	if !ruleIDRe.MatchString(id) {
		l.errf(f, idNode, "rule id %q must match [a-z0-9][a-z0-9._-]*", id)
		return
	}
	if prev := l.ruleID[id]; prev != nil {
		l.errf(f, idNode, "duplicate rule id %q (first defined at %s)", id, l.pos(prev.f, prev.node))
		return
	}
	d := &ruleDef{f: f, node: n, id: id}
	l.ruleID[id] = d
	l.rules = append(l.rules, d)
}

func (l *loader) compileAll() {
	l.checkMacros()
	for _, d := range l.sigOrd {
		if s := l.compileSignal(d); s != nil {
			s.Index = len(l.set.Signals)
			l.set.Signals = append(l.set.Signals, s)
			l.set.SignalsByName[s.Name] = s
		}
	}
	for _, d := range l.rules {
		if r, enabled := l.compileRule(d); r != nil && enabled {
			l.set.Rules = append(l.set.Rules, r)
		} else if r != nil {
			l.set.Disabled = append(l.set.Disabled, r)
		}
	}
}

// sourceNames are the sources a signal may name: every record format's
// (format.Sources), and any.
func sourceNames() []string {
	var names []string
	for _, s := range format.Sources() {
		names = append(names, string(s))
	}
	return append(names, "any")
}

func (l *loader) compileSignal(d *sigDef) *Signal {
	f := d.f
	m, ok := l.mapping(f, d.node, "signal "+d.name, "name", "source", "types", "where", "fields", "sample")
	if !ok {
		return nil
	}
	s := &Signal{Name: d.name, Pos: l.pos(f, d.node)}
	good := true
	srcName := ""
	if !m.has("source") {
		l.errf(f, d.node, "signal %s: missing source (want one of: %s)", d.name, strings.Join(sourceNames(), ", "))
		good = false
	} else if v, ok := l.str(f, m.get("source"), "source"); ok {
		if v == "any" {
			srcName = "any"
		} else if src, err := pipeline.ParseSource(v); err != nil {
			l.errf(f, m.get("source"), "signal %s: unknown source %q (want one of: %s)", d.name, v, strings.Join(sourceNames(), ", "))
			good = false
		} else {
			s.Source = src
			srcName = v
		}
	} else {
		good = false
	}
	if n := m.get("sample"); n != nil {
		s.Sample, _ = l.boolean(f, n, "sample")
	}
	var where *compiled
	if !m.has("where") {
		l.errf(f, d.node, "signal %s: missing where", d.name)
		good = false
	} else {
		where = l.compileExpr(f, m.get("where"), exprSpec{what: "where", kind: envEvent, asBool: true})
		if where == nil {
			good = false
		} else {
			s.Where = where.prog
			s.NeedsRaw = usesIdent(where.tree, "raw")
		}
	}
	if n := m.get("fields"); n != nil {
		if fm, ok := l.mapping(f, n, "signal fields"); ok {
			for _, name := range fm.order {
				if !identRe.MatchString(name) {
					l.errf(f, fm.keys[name], "field name %q is not an identifier", name)
					good = false
					continue
				}
				c := l.compileExpr(f, fm.vals[name], exprSpec{what: "fields." + name, kind: envEvent})
				if c == nil {
					good = false
					continue
				}
				s.Fields = append(s.Fields, NamedExpr{Name: name, Prog: c.prog, Src: c.src})
				if usesIdent(c.tree, "raw") {
					s.NeedsRaw = true
				}
			}
		}
	}
	if n := m.get("types"); n != nil {
		types, _, ok := l.strList(f, n, "types", false)
		if ok {
			s.Types = types
		}
	} else if where != nil && srcName != "" {
		if types, ok := deriveTypes(srcName, where.tree); ok {
			if len(types) == 0 {
				l.warnf(f, m.get("where"), "signal %s: where can never match (contradictory event types)", d.name)
			}
			s.Types = types
		} else {
			l.diag(SevNote, l.pos(f, m.get("where")), "signal %s: no event types derivable from where; it is evaluated on every %s event (add types: to narrow)", d.name, srcName)
		}
	}
	if !good {
		return nil
	}
	return s
}
