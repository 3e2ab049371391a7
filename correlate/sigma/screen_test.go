package sigma

import (
	"encoding/json"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
)

func TestScreenGroups(t *testing.T) {
	for _, c := range []struct {
		name, detection string
		want            [][]string
	}{
		{"equals", "sel:\n    userAgent: 'TruffleHog'\ncondition: sel", [][]string{{`"trufflehog"@userAgent`}}},
		{"not adds nothing", "a:\n    userIdentity.type: Root\nb:\n    eventType: AwsServiceEvent\ncondition: a and not b", [][]string{{`"root"@userIdentity,userIdentity.type`}}},
		{"and of items", "sel:\n    userIdentity.type: AssumedRole\n    userIdentity.sessionContext.sessionIssuer.type: Role\ncondition: sel",
			[][]string{{`"assumedrole"@userIdentity,userIdentity.type`}, {`"role"@userIdentity,userIdentity.sessionContext,userIdentity.sessionContext.sessionIssuer,userIdentity.sessionContext.sessionIssuer.type`}}},
		{"list is or", "sel:\n    eventName:\n        - CreateUser\n        - DeleteUser\ncondition: sel", [][]string{{`"createuser"@eventName`, `"deleteuser"@eventName`}}},
		{"or of selections", "a:\n    x: fooxx\nb:\n    y: barbar\ncondition: a or b", [][]string{{`"fooxx"@x`, `"barbar"@y`}}},
		{"1 of", "sel_a:\n    x: fooxx\nsel_b:\n    y: barbar\ncondition: 1 of sel_*", [][]string{{`"fooxx"@x`, `"barbar"@y`}}},
		{"all of", "sel_a:\n    x: fooxx\nsel_b:\n    y: barbar\ncondition: all of sel_*", [][]string{{`"fooxx"@x`}, {`"barbar"@y`}}},
		{"longest wildcard-free piece", "sel:\n    x|contains: 'ab*cdef?gh'\ncondition: sel", [][]string{{"cdef@x"}}},
		{"split at JSON-escapable bytes", "sel:\n    x: 'arn:aws:iam::*:role/Admin'\ncondition: sel", [][]string{{`"arn:aws:iam::@x`}}},
		{"all", "sel:\n    x|contains|all:\n        - xyzw\n        - qwer\ncondition: sel", [][]string{{"xyzw@x"}, {"qwer@x"}}},
		{"cased is lowered", "sel:\n    x|cased: AbCdE\ncondition: sel", [][]string{{`"abcde"@x`}}},
		{"subsumed literal", "sel:\n    x|contains:\n        - abc\n        - xabcx\ncondition: sel", [][]string{{"abc@x"}}},
		{"not subsumed elsewhere", "a:\n    x|contains: abc\nb:\n    y|contains: xabcx\ncondition: a or b", [][]string{{"abc@x", "xabcx@y"}}},
		{"subsumed by a keyword", "a:\n    x: xabcx\nb:\n    - abc\ncondition: a or b", [][]string{{"abc"}}},
		{"startswith", "sel:\n    x|startswith: 'AKIA'\ncondition: sel", [][]string{{`"akia@x`}}},
		{"endswith", "sel:\n    x|endswith: '.amazonaws.com'\ncondition: sel", [][]string{{`.amazonaws.com"@x`}}},
		{"a boolean's text is bare", "sel:\n    x: 'true'\ncondition: sel", [][]string{{"true@x"}}},
		{"keywords", "keywords:\n    - 'evil.exe'\ncondition: keywords", [][]string{{"evil.exe"}}},
		{"a short value leaves the list unscreened", "sel:\n    x:\n        - ab\n        - abcdef\ncondition: sel", nil},
		{"numeric text", "sel:\n    x: '1.5e3'\ncondition: sel", nil},
		{"number", "sel:\n    x: 1500\ncondition: sel", nil},
		{"regexp", "sel:\n    x|re: '.+:assumed-role/aws:.+'\ncondition: sel", [][]string{{":assumed-role@x"}}},
		{"folded regexp", "sel:\n    x|re|i: 'a.*Trufflehog'\ncondition: sel", [][]string{{"trufflehog@x"}}},
		{"regexp without a literal", "sel:\n    x|re: 'ab|cd'\ncondition: sel", nil},
		{"base64", "sel:\n    x|base64: 'abcdef'\ncondition: sel", nil},
		{"windash", "sel:\n    x|windash: '-abcdef'\ncondition: sel", nil},
		{"neq", "sel:\n    x|neq: 'abcdef'\ncondition: sel", nil},
		{"null", "sel:\n    x: null\ncondition: sel", nil},
		{"exists", "sel:\n    x|exists: true\ncondition: sel", nil},
		{"not alone", "sel:\n    x: abcdef\ncondition: not sel", nil},
		{"or with an unscreened side", "a:\n    x: abcdef\nb:\n    y|re: z\ncondition: a or b", nil},
		{"non-ASCII splits", "sel:\n    x: 'élan'\ncondition: sel", [][]string{{`lan"@x`}}},
		{"non-ASCII", "sel:\n    x: 'éé'\ncondition: sel", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := compileDetection(t, c.detection)
			if got := m.Screen(); !reflect.DeepEqual(got, c.want) {
				t.Errorf("screen %q, want %q", got, c.want)
			}
			if m.HasScreen() != (c.want != nil) {
				t.Errorf("HasScreen %v", m.HasScreen())
			}
		})
	}
}

func TestNeedleAgainstLowerContains(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alpha := []byte("aAbBrRoOlLeE_:-x9")
	for i := 0; i < 20000; i++ {
		hay := make([]byte, r.IntN(40))
		for j := range hay {
			hay[j] = alpha[r.IntN(len(alpha))]
		}
		lit := make([]byte, 1+r.IntN(4))
		for j := range lit {
			lit[j] = alpha[r.IntN(len(alpha))]
		}
		low := strings.ToLower(string(lit))
		n := newNeedle(low)
		want := strings.Contains(strings.ToLower(string(hay)), low)
		if got := n.in(hay); got != want {
			t.Fatalf("%q in %q: got %v, want %v", low, hay, got, want)
		}
	}
}

func TestScreenable(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want bool
	}{
		{`{"a":"plain ASCII, with \"escapes\" and \\ and \/"}`, true},
		{`{"a":"caf` + "\u00e9" + `, not ASCII, long enough for a word"}`, false},
		{`{"a":"\u0041"}`, false},
		{`{"a":"\\u0041"}`, false}, // conservative: an escaped backslash before u
		{``, true},
	} {
		if got := screenable([]byte(c.raw)); got != c.want {
			t.Errorf("Screenable(%s) = %v, want %v", c.raw, got, c.want)
		}
	}
	// Each kind of byte at every offset of the 8-byte words it reads.
	for _, c := range []struct {
		piece string
		want  bool
	}{{`\u0041`, false}, {`\u00e9`, false}, {`\\u`, false}, {`\n`, true}, {`\\`, true}, {"\u00e9", false}, {"\x7f", true}, {`\`, true}} {
		for pre := 0; pre < 17; pre++ {
			for post := 0; post < 9; post++ {
				b := strings.Repeat("a", pre) + c.piece + strings.Repeat("z", post)
				if got := screenable([]byte(b)); got != c.want {
					t.Errorf("screenable(%q) = %v, want %v", b, got, c.want)
				}
			}
		}
	}
}

// raws are the two forms a screen reads a record in: indexed (its
// top-level members known) and not.
func raws(t *testing.T, b []byte) []*Raw {
	t.Helper()
	members, end, ok := pipeline.IndexObject(b, nil)
	if !ok || end != len(b) {
		t.Fatalf("IndexObject(%s): %v at %d", b, ok, end)
	}
	var whole, indexed Raw
	whole.Reset(pipeline.RawRecord{Data: b})
	indexed.Reset(pipeline.RawRecord{Data: b, Members: members})
	return []*Raw{&whole, &indexed}
}

// Escapes and non-ASCII text defeat a byte search, and the screen lets
// such records through rather than reject a match; booleans, arrays and
// nested objects it reads as they are.
func TestScreenPassesWhatItCannotRead(t *testing.T) {
	for _, c := range []struct{ detection, rec string }{
		{"sel:\n    userAgent: 'TruffleHog'\ncondition: sel", `{"userAgent":"Truffle\u0048og"}`},
		{"sel:\n    userIdentity.type: Root\ncondition: sel", `{"eventName":"x","userIdentity":{"type":"Roo\u0074"}}`},
		{"sel:\n    x: kube\ncondition: sel", `{"x":"\u212aube"}`},
		{"sel:\n    x: kube\ncondition: sel", "{\"x\":\"\u212aube\"}"},
		{"sel:\n    x: iota\ncondition: sel", "{\"x\":\"\u0130ota\"}"},
		{"sel:\n    - Trufflehog\ncondition: sel", `{"a":{"b":["Truffle\u0048og"]}}`},
		{"sel:\n    a.b: thing\ncondition: sel", `{"a\u002eb":"thing"}`},
		{"sel:\n    x: 'true'\ncondition: sel", `{"x":true}`},
		{"sel:\n    x: root\ncondition: sel", `{"x":["a","ROOT"]}`},
		{"sel:\n    x.y: root\ncondition: sel", `{"x":{"z":1,"y":"rOOt"}}`},
	} {
		m := compileDetection(t, c.detection)
		if !m.HasScreen() {
			t.Fatalf("%s: no screen", c.detection)
		}
		if !m.Match(doc(t, c.rec)) {
			t.Fatalf("%s does not match %s", c.detection, c.rec)
		}
		for i, r := range raws(t, []byte(c.rec)) {
			if !m.MayMatchRaw(r) {
				t.Errorf("%s: screen %q rejects %s (form %d)", c.detection, m.Screen(), c.rec, i)
			}
		}
	}
}

// screenCorpus is every record the screen tests read: the demo's, the
// Invictus, Panther and Stratus CloudTrail samples.
func screenCorpus(t *testing.T) []map[string]any {
	t.Helper()
	recs := demoRecords(t)
	if files, _ := filepath.Glob(filepath.Join(thirdParty, "invictus/*.json")); len(files) > 0 {
		recs = append(recs, readRecords(t, files)...)
	}
	recs = append(recs, pantherRecords(t)...)
	return append(recs, stratusRecords(t)...)
}

// A screen is a necessary condition: on every record of every corpus, a
// rule that matches passes its screen, indexed or not, including when the
// record's letters change case. On the CloudTrail corpora, the screens of
// the rules that no event type dispatches reject most records.
func TestScreenNeverRejectsAMatch(t *testing.T) {
	ms := loadSigmaHQ(t)
	recs := screenCorpus(t)
	screened := 0
	for _, m := range ms {
		if m.HasScreen() {
			screened++
		}
	}
	if screened != 57 {
		t.Errorf("%d of 57 rules have a screen", screened)
	}
	flip := func(b []byte, upper bool) []byte {
		out := make([]byte, len(b))
		for i, c := range b {
			switch {
			case upper && 'a' <= c && c <= 'z':
				c -= 'a' - 'A'
			case !upper && 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			}
			out[i] = c
		}
		return out
	}
	rejected, matched := map[string]int{}, 0
	for _, rec := range recs {
		raw, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		type form struct {
			doc  map[string]any
			raws []*Raw
			desc string
		}
		forms := []form{{rec, raws(t, raw), "as is"}}
		anyMatch := false
		for _, m := range ms {
			if m.Match(rec) {
				anyMatch = true
				break
			}
		}
		// Case-changed forms of the records some rule matches: a record
		// no rule matches as is could match changed only through values
		// compared with |cased, which only narrows.
		for _, up := range []bool{true, false} {
			if !anyMatch {
				break
			}
			var d map[string]any
			f := flip(raw, up)
			if json.Unmarshal(f, &d) == nil {
				forms = append(forms, form{d, raws(t, f), "case-changed"})
			}
		}
		for base, m := range ms {
			for fi, f := range forms {
				match := m.Match(f.doc)
				if match && fi == 0 {
					matched++
				}
				for ri, r := range f.raws {
					pass := m.MayMatchRaw(r)
					if match && !pass {
						t.Errorf("%s matches the %s record but its screen %q rejects it (form %d): %s", base, f.desc, m.Screen(), ri, raw)
					}
					if !pass && fi == 0 && ri == 1 {
						rejected[base]++
					}
				}
			}
		}
	}
	if matched == 0 {
		t.Fatal("no rule matched any record: the test checks nothing")
	}
	for _, base := range []string{"aws_cloudtrail_pua_trufflehog.yml", "aws_root_account_usage.yml", "aws_sts_assumerole_misuse.yml", "aws_cloudtrail_imds_malicious_usage.yml"} {
		if rejected[base]*10 < len(recs)*9 {
			t.Errorf("%s's screen %q rejects %d of %d records, want at least 90%%", base, ms[base].Screen(), rejected[base], len(recs))
		}
	}
}

// A ScreenSet answers as its matchers' own screens do, on the corpora read
// twice (the second pass answered from the memo) for the four rules no
// event type dispatches (what MayMatch screens together) with no memo, a
// full one and one slot that every value collides in; and once, with no
// memo, for the 57 SigmaHQ rules at once (more needles than bits: some are
// screened alone).
func TestScreenSetAnswersAsEachScreen(t *testing.T) {
	ms := loadSigmaHQ(t)
	recs := screenCorpus(t)
	var all, anyType []*Matcher
	for _, base := range slices.Sorted(maps.Keys(ms)) {
		all = append(all, ms[base])
		switch base {
		case "aws_cloudtrail_pua_trufflehog.yml", "aws_root_account_usage.yml", "aws_sts_assumerole_misuse.yml", "aws_cloudtrail_imds_malicious_usage.yml":
			anyType = append(anyType, ms[base])
		}
	}
	raws := make([][]byte, len(recs))
	for i, rec := range recs {
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		raws[i] = b
	}
	// What a byte search cannot read: an escaped key (it may name any
	// key), a \u escape and non-ASCII text in a long value.
	long := strings.Repeat("x", memoMin)
	raws = append(raws,
		[]byte(`{"eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","user\u0041gent":"TruffleHog"}`),
		[]byte(`{"eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","userAgent":"Truffle\u0048og `+long+`"}`),
		[]byte(`{"eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root `+long+` é"}}`),
		[]byte(`{"eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","userAgent":"TruffleHog"}`),
	)
	for _, set := range []struct {
		name string
		ms   []*Matcher
	}{{"57 rules", all}, {"4 any-type rules", anyType}} {
		reg := NewScreenKeys()
		ss := NewScreenSet(set.ms, reg)
		// Another set with the same needles (another event type's) shares
		// its keys, and so what a memo found.
		if again := NewScreenSet(slices.Clone(set.ms), reg); len(again.keys) != len(ss.keys) || again.keys[0].screenKey != ss.keys[0].screenKey {
			t.Fatalf("%s: a second set does not share the first's screen keys", set.name)
		}
		together := 0
		for _, g := range ss.groups {
			if g != nil {
				together++
			}
		}
		if together < 4 {
			t.Fatalf("%s: only %d matchers screened together", set.name, together)
		}
		type memoCase struct {
			name string
			m    *Memo
		}
		memos := []memoCase{{"no memo", nil}, {"memo", NewMemo()}, {"one-slot memo", &Memo{seed: maphash.MakeSeed(), slots: make([]memoSlot, 1)}}}
		rounds := 2
		if len(set.ms) > len(anyType) {
			// The 57 rules' screens cost the most to check: once, with
			// no memo (the set's bits and fallbacks); the four take
			// every memo case.
			memos, rounds = memos[:1], 1
		}
		for _, memo := range memos {
			var plain, r Raw
			r.UseMemo(memo.m)
			pass := make([]bool, len(set.ms))
			verdicts := map[bool]int{}
			for round := range rounds {
				for _, raw := range raws {
					members, _, _ := pipeline.IndexObject(raw, nil)
					forms := []pipeline.RawRecord{{Data: raw, Members: members}}
					if memo.m == nil && round == 0 {
						forms = append(forms, pipeline.RawRecord{Data: raw}) // not indexed: each alone
					}
					for _, rec := range forms {
						plain.Reset(rec)
						r.Reset(rec)
						ss.Pass(&r, pass)
						for i, m := range set.ms {
							want := m.MayMatchRaw(&plain)
							if pass[i] != want {
								t.Fatalf("%s, %s, round %d: matcher %s passes %v, its screen %v: %s", set.name, memo.name, round, m.rule.ID, pass[i], want, raw)
							}
							verdicts[want]++
						}
					}
				}
			}
			if verdicts[true] == 0 || verdicts[false] == 0 {
				t.Fatalf("%s, %s: verdicts %v: the test checks one answer only", set.name, memo.name, verdicts)
			}
			if memo.m != nil {
				used := 0
				for _, sl := range memo.m.slots {
					for _, o := range sl.owners {
						if o != nil {
							used++
						}
					}
				}
				if used == 0 {
					t.Fatalf("%s, %s: holds nothing: never used", set.name, memo.name)
				}
			}
		}
	}
}

// TestScreenSetKeyChains covers the members a set compares with its keys
// by length: keys of one length that share a first byte, keys past
// longKey (one chain for all lengths), and records holding look-alikes.
func TestScreenSetKeyChains(t *testing.T) {
	long1 := strings.Repeat("k", longKey+4)
	long2 := strings.Repeat("k", longKey+9)
	ms := []*Matcher{
		compileDetection(t, "selection:\n    userAgent: TruffleHog\ncondition: selection"),
		compileDetection(t, "selection:\n    userAgenT2|contains: kali\ncondition: selection"),
		compileDetection(t, "selection:\n    usedAgent|contains: parrot\ncondition: selection"),
		compileDetection(t, "selection:\n    "+long1+": alpha\ncondition: selection"),
		compileDetection(t, "selection:\n    "+long2+"|contains: beta\ncondition: selection"),
	}
	ss := NewScreenSet(ms, NewScreenKeys())
	for i, g := range ss.groups {
		if g == nil {
			t.Fatalf("matcher %d is screened alone: the test would not reach the chains", i)
		}
	}
	cases := []struct {
		rec  string
		want []bool
	}{
		{`{"userAgent":"TruffleHog"}`, []bool{true, false, false, false, false}},
		{`{"usedAgent":"TruffleHog","userAgenX":"TruffleHog"}`, []bool{false, false, false, false, false}},
		{`{"usedAgent":"a parrot os","userAgenT2":"kali linux"}`, []bool{false, true, true, false, false}},
		{`{"` + long2 + `":"alpha","` + long1 + `":"beta"}`, []bool{false, false, false, false, false}},
		{`{"` + long1 + `":"ALPHA","` + long2 + `":"xbetax"}`, []bool{false, false, false, true, true}},
		{`{"` + long1[1:] + `":"alpha","":"beta"}`, []bool{false, false, false, false, false}},
	}
	for _, c := range cases {
		members, _, ok := pipeline.IndexObject([]byte(c.rec), nil)
		if !ok {
			t.Fatalf("bad test record %s", c.rec)
		}
		var plain, r Raw
		rec := pipeline.RawRecord{Data: []byte(c.rec), Members: members}
		plain.Reset(rec)
		r.Reset(rec)
		pass := make([]bool, len(ms))
		ss.Pass(&r, pass)
		for i, m := range ms {
			if want := m.MayMatchRaw(&plain); pass[i] != want || pass[i] != c.want[i] {
				t.Errorf("%s: matcher %d passes %v, its screen alone %v, want %v", c.rec, i, pass[i], want, c.want[i])
			}
		}
	}
}
