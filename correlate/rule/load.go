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
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
	"github.com/ecscorr/ecscorr/rules"
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
	// Builtin is the pack BuiltinName stands for in LoadPaths (default
	// rules.Builtin).
	Builtin fs.FS
}

// NamedSource is one rule file's content.
type NamedSource struct {
	Name string
	Data []byte
	// Builtin marks a file of the built-in pack: macro and list names are
	// scoped (see scope), signal names and rule ids are global.
	Builtin bool
}

// BuiltinName stands for the embedded built-in pack wherever rule paths are
// given (--rules, rules check, rule_files of rule tests). A folder of that
// name is given as ./builtin.
const BuiltinName = "builtin"

// LoadPaths is how every command loads rules. Each path is a rule file, a
// folder (as LoadFiles reads it) or BuiltinName for opts.Builtin; no path
// means the built-in pack alone. A path that defines nothing (an empty file
// or folder) is an error, and so is a load without any rule.
func LoadPaths(paths []string, opts LoadOptions) (*Set, Diagnostics) {
	if len(paths) == 0 {
		paths = []string{BuiltinName}
	}
	type group struct {
		path  string
		files []string
	}
	var (
		srcs     []NamedSource
		groups   []group
		builtin  bool
		pathErrs Diagnostics // every unreadable path, and the rest still loaded
		seen     = map[string]bool{}
		blank    = map[string]bool{}
	)
	for _, p := range paths {
		var (
			s    []NamedSource
			dups int
			err  error
		)
		if p == BuiltinName {
			if builtin {
				continue // the pack once, however often it is named
			}
			builtin = true
			s, err = ReadBuiltin(opts.Builtin)
		} else {
			s, dups, err = readPath(p, seen)
		}
		if err != nil {
			pathErrs = append(pathErrs, Diagnostic{Pos: errPos(err), Severity: SevError, Msg: err.Error()})
			continue
		}
		if len(s) == 0 && dups > 0 {
			continue // read already through another path
		}
		g := group{path: p}
		for _, src := range s {
			g.files = append(g.files, src.Name)
			blank[src.Name] = yamlBlank(src.Data)
		}
		groups = append(groups, g)
		srcs = append(srcs, s...)
	}
	l := load(srcs, opts)
	l.diags = append(pathErrs, l.diags...)
	for _, g := range groups {
		n, empty := 0, true
		for _, name := range g.files {
			n += l.defined[name]
			empty = empty && blank[name]
		}
		// Said even beside other errors when the files are empty: an
		// error elsewhere cannot be why they define nothing.
		if n == 0 && (!l.diags.HasErrors() || empty) {
			l.diag(SevError, Pos{File: g.path}, "%s defines no list, macro, signal or rule", g.path)
		}
	}
	if !l.diags.HasErrors() && len(l.set.Rules)+len(l.set.Disabled) == 0 {
		l.diag(SevError, Pos{File: paths[0]}, "no rules in %s: nothing would be correlated", strings.Join(paths, ", "))
	}
	return l.finish()
}

// ReadBuiltin reads the rule files of the built-in pack (rules.Builtin when
// fsys is nil), named builtin/<path> and marked Builtin.
func ReadBuiltin(fsys fs.FS) ([]NamedSource, error) {
	if fsys == nil {
		fsys = rules.Builtin
	}
	srcs, err := ReadFS(fsys)
	if err != nil {
		return nil, fmt.Errorf("reading the built-in pack: %w", err)
	}
	for i := range srcs {
		srcs[i].Name = BuiltinName + "/" + srcs[i].Name
		srcs[i].Builtin = true
	}
	return srcs, nil
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

// yamlBlank reports whether data holds no YAML content: only blank lines,
// comments and document markers.
func yamlBlank(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		switch t := strings.TrimSpace(line); {
		case t == "", strings.HasPrefix(t, "#"), t == "---", t == "...":
		default:
			return false
		}
	}
	return true
}

func errPos(err error) Pos {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return Pos{File: pe.Path}
	}
	return Pos{}
}

// errNoRuleFiles is why a folder without rule files is refused: a load of
// it would silently run nothing.
var errNoRuleFiles = errors.New("folder holds no rule files (*.yaml, *.yml other than *_test.yaml)")

// ReadPaths reads rule files and folders as LoadFiles does, so that callers
// can combine them with other sources (e.g. the built-in pack) in one Load.
// A folder without any rule file is an error.
func ReadPaths(paths []string) ([]NamedSource, error) {
	var srcs []NamedSource
	seen := map[string]bool{}
	for _, p := range paths {
		got, _, err := readPath(p, seen)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, got...)
	}
	return srcs, nil
}

// readPath reads the rule file p, or every rule file below the folder p in
// lexical order. Symbolic links are followed, to files and to folders (a
// rules folder mounted through a link, a Kubernetes ConfigMap's files);
// names starting with "." are skipped (.git, a ConfigMap's ..data and
// ..<timestamp> folders, which hold the same files again). A file already
// read, by its real path (seen), is skipped and counted in dups: a file
// named twice, or inside a folder also named, is loaded once.
func readPath(p string, seen map[string]bool) (srcs []NamedSource, dups int, err error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, 0, err
	}
	read := func(name string) error {
		real, err := filepath.EvalSymlinks(name)
		if err != nil {
			return err
		}
		if real, err = filepath.Abs(real); err != nil {
			return err
		}
		if seen[real] {
			dups++
			return nil
		}
		seen[real] = true
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		srcs = append(srcs, NamedSource{Name: name, Data: data})
		return nil
	}
	if !st.IsDir() {
		return srcs, dups, read(p)
	}
	dirs := map[string]bool{} // real paths walked: a link loop is walked once
	var walk func(dir string) error
	walk = func(dir string) error {
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return err
		}
		if dirs[real] {
			return nil
		}
		dirs[real] = true
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			// Not filepath.Join: it would clean ./builtin to builtin, the
			// embedded pack's prefix.
			fp := dir + string(filepath.Separator) + e.Name()
			if strings.HasSuffix(dir, string(filepath.Separator)) {
				fp = dir + e.Name()
			}
			isDir := e.IsDir()
			if e.Type()&fs.ModeSymlink != 0 {
				st, err := os.Stat(fp)
				if err != nil {
					return fmt.Errorf("rule path %s: %w", fp, err) // a broken link
				}
				isDir = st.IsDir()
			}
			switch {
			case isDir:
				err = walk(fp)
			case isRuleFile(e.Name()):
				err = read(fp)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(p); err != nil {
		return nil, 0, err
	}
	if len(srcs) == 0 && dups == 0 {
		return nil, 0, &fs.PathError{Op: "read", Path: p, Err: errNoRuleFiles}
	}
	return srcs, dups, nil
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
	return load(files, opts).finish()
}

// load reads and compiles files; finish turns the result into Load's.
func load(files []NamedSource, opts LoadOptions) *loader {
	if opts.MaxRetention <= 0 {
		opts.MaxRetention = DefaultMaxRetention
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	l := &loader{
		opts:    opts,
		lists:   [2]map[string]*listDef{{}, {}},
		macros:  [2]map[string]*macroDef{{}, {}},
		sigs:    make(map[string]*sigDef),
		ruleID:  make(map[string]*ruleDef),
		defined: make(map[string]int),
		set: &Set{
			SignalsByName: make(map[string]*Signal),
			Lists:         make(map[string][]any),
		},
	}
	for _, src := range files {
		l.readFile(src)
	}
	l.compileAll()
	return l
}

func (l *loader) finish() (*Set, Diagnostics) {
	l.diags.sort()
	l.diags = l.diags.dedup()
	if l.diags.HasErrors() {
		return nil, l.diags
	}
	l.set.BuildIndex()
	return l.set, l.diags
}

// scope is where a file's macro and list names resolve. The user's files
// share one scope and see their own definitions first, then the built-in
// pack's; the pack sees only its own. So a user's file may define a name
// the pack defines (e.g. ct_ok) without a clash, and the pack's rules keep
// their meaning whatever the user defines.
type scope uint8

const (
	scopeUser scope = iota
	scopePack
)

func (f *srcFile) scope() scope {
	if f.builtin {
		return scopePack
	}
	return scopeUser
}

func (l *loader) lookupMacro(sc scope, name string) *macroDef {
	if d := l.macros[sc][name]; d != nil || sc == scopePack {
		return d
	}
	return l.macros[scopePack][name]
}

func (l *loader) lookupList(sc scope, name string) *listDef {
	if d := l.lists[sc][name]; d != nil || sc == scopePack {
		return d
	}
	return l.lists[scopePack][name]
}

// listKey is the key of a list in Set.Lists (what `lists.<name>` reads at
// run time): its name, or builtin.<name> for a pack list that a user's
// list of the same name hides from the user's files.
func (l *loader) listKey(d *listDef) string {
	if d.f.builtin && l.lists[scopeUser][d.name] != nil {
		return BuiltinName + "." + d.name
	}
	return d.name
}

type listDef struct {
	f    *srcFile
	node *yaml.Node // key node
	name string
	vals []any
}

type sigDef struct {
	f    *srcFile
	node *yaml.Node // the signal's map
	name string
}

type ruleDef struct {
	f    *srcFile
	node *yaml.Node
	at   *yaml.Node // where its id is written (clashes point there)
	id   string
}

type loader struct {
	opts   LoadOptions
	diags  Diagnostics
	lists  [2]map[string]*listDef  // by scope
	macros [2]map[string]*macroDef // by scope
	sigs   map[string]*sigDef
	sigOrd []*sigDef
	ruleID map[string]*ruleDef
	rules  []*ruleDef
	sigmas []*sigmaDef // Sigma rules, each a signal and a rule
	set    *Set
	zones  *zoneCache // inZone's locations, shared by the compiled programs
	// defined counts the lists, macros, signals and rules of each file.
	defined map[string]int
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var ruleIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

func (l *loader) readFile(src NamedSource) {
	f := &srcFile{name: src.Name, lines: SplitLines(string(src.Data)), builtin: src.Builtin}
	l.set.Files = append(l.set.Files, src.Name)
	dec := yaml.NewDecoder(bytes.NewReader(src.Data))
	var roots []*yaml.Node
	yamlFailed := false
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			l.diag(SevError, yamlErrPos(f.name, src.Data, err), "%s", yamlErrMsg(err))
			yamlFailed = true
			break
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue
		}
		root := doc.Content[0]
		if exp, wr, loop := aliasCheck(root); loop != nil {
			l.errf(f, loop, "yaml: alias *%s is inside its own anchor &%s", loop.Value, loop.Value)
			continue
		} else if exp > maxExpanded && exp > 10*wr {
			l.errf(f, root, "yaml: document expands to more than %d nodes through aliases (%d written); refused as an alias bomb", maxExpanded, wr)
			continue
		}
		roots = append(roots, root)
	}
	// A file is either Sigma rules (read by package sigma, from the bytes)
	// or ecscorr documents.
	nSigma := 0
	for _, root := range roots {
		if isSigmaDoc(root) {
			nSigma++
		}
	}
	if nSigma > 0 && nSigma == len(roots) {
		if !yamlFailed { // else already reported, with a better position
			l.readSigma(f, src.Data)
		}
		return
	}
	for _, root := range roots {
		if nSigma > 0 && isSigmaDoc(root) {
			l.errf(f, root, "a Sigma rule in a file of ecscorr documents: a file holds either Sigma rules or ecscorr documents, not both")
			continue
		}
		l.readDoc(f, root)
	}
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlErrMsg(err error) string {
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		return "yaml: " + m[2]
	}
	return err.Error()
}

// yamlErrPos locates a yaml.v3 decoding error in data. Its message names
// no column and, as line, where the enclosing construct starts (0-based
// for parser errors), not where the problem is. Invalid UTF-8 is located
// directly; anything else by decoding ever shorter prefixes of data: the
// shortest that fails with the same message ends at the problem.
func yamlErrPos(file string, data []byte, err error) Pos {
	if msg := err.Error(); strings.Contains(msg, "UTF-8") || strings.Contains(msg, "Unicode") {
		if i := invalidUTF8(data); i >= 0 {
			line, col := lineCol(data, i)
			return Pos{File: file, Line: line, Col: col}
		}
	}
	lo := 1
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			lo = max(1, n)
		}
	}
	ends := lineEnds(data) // ends[k-1]: the offset just past line k, as YAML counts lines
	want := err.Error()
	fails := func(n int) bool { return decodeErr(data[:n]) == want }
	lo = min(lo, len(ends))
	if !fails(len(data)) {
		return Pos{File: file, Line: lo, Col: 1}
	}
	// The first line whose end makes the prefix fail ...
	k := lo + sort.Search(len(ends)-lo+1, func(i int) bool { return fails(ends[lo-1+i]) })
	k = min(k, len(ends))
	start := 0
	if k > 1 {
		start = ends[k-2]
	}
	// ... and the first byte of it that does.
	c := start + 1 + sort.Search(ends[k-1]-start, func(i int) bool { return fails(start + 1 + i) })
	c = min(c, ends[k-1])
	_, col := lineCol(data[start:], c-1-start)
	return Pos{File: file, Line: k, Col: col}
}

// decodeErr decodes every document of data and returns the error text.
func decodeErr(data []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return ""
			}
			return err.Error()
		}
	}
}

// invalidUTF8 returns the offset of the first byte of data that is not
// UTF-8, or -1.
func invalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// lineCol converts a byte offset of data to a 1-based line and column (in
// characters, as yaml.v3 counts them).
func lineCol(data []byte, off int) (line, col int) {
	off = max(0, min(off, len(data)))
	// Never inside a rune: a column counts whole characters.
	for off > 0 && off < len(data) && !utf8.RuneStart(data[off]) {
		off--
	}
	lines := SplitLines(string(data[:off]))
	return len(lines), 1 + utf8.RuneCountInString(lines[len(lines)-1])
}

// lineEnds returns the offset just past each line of data (its break
// included), lines counted as SplitLines counts them; the last is len(data).
func lineEnds(data []byte) []int {
	var ends []int
	off := 0
	for _, l := range SplitLines(string(data)) {
		off += len(l)
		switch {
		case off >= len(data):
		case data[off] == '\r' && off+1 < len(data) && data[off+1] == '\n':
			off += 2
		default:
			_, n := utf8.DecodeRune(data[off:])
			off += n
		}
		ends = append(ends, off)
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	return ends
}

// SplitLines splits text into lines the way YAML counts them, so that
// positions match what the parser reports: "\r\n", "\r", "\n" and the
// Unicode breaks NEL, LS and PS each end a line.
func SplitLines(text string) []string {
	var out []string
	start := 0
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		switch r {
		case '\r':
			out = append(out, text[start:i])
			if i+1 < len(text) && text[i+1] == '\n' {
				n = 2
			}
			start = i + n
		case '\n', '\u0085', '\u2028', '\u2029':
			out = append(out, text[start:i])
			start = i + n
		}
		i += n
	}
	return append(out, text[start:])
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
	if prev := l.lists[f.scope()][name]; prev != nil {
		l.errf(f, k, "duplicate list %q (first defined at %s)", name, l.pos(prev.f, prev.node))
		return
	}
	d := &listDef{f: f, node: k, name: name}
	l.lists[f.scope()][name] = d
	l.defined[f.name]++
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
	d.vals = vals
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
	if prev := l.macros[f.scope()][name]; prev != nil {
		l.errf(f, k, "duplicate macro %q (first defined at %s)", name, l.pos(prev.f, prev.node))
		return
	}
	src, ok := l.str(f, v, "macro "+name)
	if !ok {
		return
	}
	l.macros[f.scope()][name] = &macroDef{name: name, src: src, f: f, node: deref(v), key: k}
	l.defined[f.name]++
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
		l.errf(f, nameNode, "duplicate signal %q (first defined at %s)%s", name, l.pos(prev.f, prev.node), packClash(prev.f, f, "signal names"))
		return
	}
	l.defined[f.name]++
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
		l.errf(f, idNode, "duplicate rule id %q (first defined at %s)%s", id, l.pos(prev.f, prev.at), packClash(prev.f, f, "rule ids"))
		return
	}
	l.defined[f.name]++
	d := &ruleDef{f: f, node: n, at: idNode, id: id}
	l.ruleID[id] = d
	l.rules = append(l.rules, d)
}

// packClash explains a clash between a user's file and the built-in pack.
func packClash(a, b *srcFile, what string) string {
	if a.builtin == b.builtin {
		return ""
	}
	return fmt.Sprintf(": %s are global, so a name of the built-in pack cannot be reused (macros and lists can)", what)
}

// scopeLists fills Set.Lists and notes every name of the user's that hides
// one of the pack's.
func (l *loader) scopeLists() {
	for _, sc := range []scope{scopeUser, scopePack} {
		for _, d := range l.lists[sc] {
			l.set.Lists[l.listKey(d)] = d.vals
		}
	}
	for name, d := range l.lists[scopeUser] {
		if p := l.lists[scopePack][name]; p != nil {
			l.diag(SevNote, l.pos(d.f, d.node), "list %s hides the built-in pack's list of that name (%s) in your files; the pack keeps its own", name, l.pos(p.f, p.node))
		}
	}
	for name, d := range l.macros[scopeUser] {
		if p := l.macros[scopePack][name]; p != nil {
			l.diag(SevNote, l.pos(d.f, d.key), "macro %s hides the built-in pack's macro of that name (%s) in your files; the pack keeps its own", name, l.pos(p.f, p.key))
		}
	}
}

func (l *loader) compileAll() {
	l.scopeLists()
	l.checkMacros()
	for _, d := range l.sigOrd {
		if s := l.compileSignal(d); s != nil {
			l.lintSignal(d, s)
			s.Index = len(l.set.Signals)
			l.set.Signals = append(l.set.Signals, s)
			l.set.SignalsByName[s.Name] = s
		}
	}
	// Sigma signals come before the ecscorr rules, which may use them.
	l.sigmaSignals()
	for _, d := range l.rules {
		r, enabled := l.compileRule(d)
		if r != nil {
			l.lintKey(d, r)
		}
		if r != nil && enabled {
			l.set.Rules = append(l.set.Rules, r)
		} else if r != nil {
			l.set.Disabled = append(l.set.Disabled, r)
		}
	}
	l.sigmaRules()
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
