package sigma

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
)

// compileDetection builds a rule around a detection section (indented by
// four spaces in the YAML) and compiles it.
func compileDetection(t *testing.T, detection string) *Matcher {
	t.Helper()
	src := "title: t\nlogsource:\n    product: test\ndetection:\n" + indent(detection) + "\n"
	r, ds := Parse("t.yml", []byte(src))
	if r == nil {
		t.Fatalf("parse:\n%v\nsource:\n%s", ds, src)
	}
	m, err := Compile(r)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return m
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

func doc(t *testing.T, js string) map[string]any {
	t.Helper()
	var d map[string]any
	// As the engine decodes records (integers beyond 2^53 keep their digits).
	if err := pipeline.UnmarshalRecord([]byte(js), &d); err != nil {
		t.Fatalf("bad test JSON %s: %v", js, err)
	}
	return d
}

type matchCase struct {
	doc  string
	want bool
}

func runCases(t *testing.T, name, detection string, cases []matchCase) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		m := compileDetection(t, detection)
		for _, c := range cases {
			if got := m.Match(doc(t, c.doc)); got != c.want {
				t.Errorf("%s\non %s: got %v, want %v", detection, c.doc, got, c.want)
			}
		}
	})
}

func TestPlainValues(t *testing.T) {
	// The specification's own examples (rules specification, Detection).
	runCases(t, "whoami case-insensitive", `
selection:
    Image: 'C:\Windows\System32\whoami.exe'
condition: selection`, []matchCase{
		{`{"Image":"C:\\Windows\\System32\\whoami.exe"}`, true},
		{`{"Image":"c:\\windows\\system32\\WHOAMI.EXE"}`, true},
		{`{"Image":"C:\\Windows\\System32\\whoami.exe "}`, false},
		{`{"Image":"D:\\Windows\\System32\\whoami.exe"}`, false},
		{`{"Other":"C:\\Windows\\System32\\whoami.exe"}`, false},
	})
	runCases(t, "map is AND, list is OR, numbers", `
selection:
    EventLog: Security
    EventID:
        - 517
        - 1102
condition: selection`, []matchCase{
		{`{"EventLog":"Security","EventID":517}`, true},
		{`{"EventLog":"security","EventID":"1102"}`, true},
		{`{"EventLog":"Security","EventID":1102.0}`, true},
		{`{"EventLog":"Security","EventID":4624}`, false},
		{`{"EventLog":"System","EventID":517}`, false},
		{`{"EventID":517}`, false},
		{`{"EventLog":"Security","EventID":"517.0"}`, false}, // a string compares as a string
	})
	runCases(t, "quoted hex stays a string", `
selection:
    TicketOptions: '0x40810000'
    TicketEncryption: '0x17'
condition: selection`, []matchCase{
		{`{"TicketOptions":"0x40810000","TicketEncryption":"0x17"}`, true},
		{`{"TicketOptions":"0X40810000","TicketEncryption":"0X17"}`, true},
		{`{"TicketOptions":"0x40810000","TicketEncryption":23}`, false},
	})
	runCases(t, "booleans compare by string form", `
selection:
    requestParameters.enable: 'false'
    responseElements.publiclyAccessible: true
condition: selection`, []matchCase{
		{`{"requestParameters":{"enable":false},"responseElements":{"publiclyAccessible":true}}`, true},
		{`{"requestParameters":{"enable":"FALSE"},"responseElements":{"publiclyAccessible":"True"}}`, true},
		{`{"requestParameters":{"enable":true},"responseElements":{"publiclyAccessible":true}}`, false},
		{`{"requestParameters":{"enable":0},"responseElements":{"publiclyAccessible":1}}`, false},
	})
	runCases(t, "empty string", `
selection:
    FieldB: ''
condition: selection`, []matchCase{
		{`{"FieldB":""}`, true},
		{`{"FieldB":" "}`, false},
		{`{"FieldB":null}`, false},
		{`{}`, false},
	})
	runCases(t, "list of maps is OR", `
selection:
    - Image|endswith: '\example.exe'
    - Description|contains: 'Test executable'
condition: selection`, []matchCase{
		{`{"Image":"C:\\x\\EXAMPLE.exe"}`, true},
		{`{"Description":"a test executable here"}`, true},
		{`{"Image":"C:\\x\\example.exe.bak","Description":"nothing"}`, false},
	})
}

func TestWildcardsAndEscapes(t *testing.T) {
	runCases(t, "? is one character, * any run", `
selection:
    a: 'prog?.exe'
    b: 'antivirus_V*.exe'
condition: selection`, []matchCase{
		{`{"a":"progA.exe","b":"antivirus_V1.exe"}`, true},
		{`{"a":"PROGb.EXE","b":"antivirus_V21.2.1.exe"}`, true},
		{`{"a":"prog.exe","b":"antivirus_V1.exe"}`, false},
		{`{"a":"progAB.exe","b":"antivirus_V1.exe"}`, false},
		{`{"a":"progé.exe","b":"antivirus_V.exe"}`, true}, // ? is a character, not a byte
	})
	// The escaping table of the specification.
	for _, c := range []struct {
		rule    string
		matches []string
		not     []string
	}{
		{`'a\b'`, []string{`a\b`}, []string{`a\\b`}},             // plain backslash
		{`'a\\b'`, []string{`a\b`}, []string{`a\\b`}},            // doubled backslash is one
		{`'a\*'`, []string{`a*`}, []string{`ab`, `a`}},           // escaped wildcard
		{`'a\?'`, []string{`a?`}, []string{`ab`}},                // escaped ?
		{`'a\\*'`, []string{`a\`, `a\anything`}, []string{`ab`}}, // backslash then wildcard
		{`'a\\\*'`, []string{`a\*`}, []string{`a\x`, `a\`}},      // backslash and plain *
		{`'a\\\\b'`, []string{`a\\b`}, []string{`a\b`}},          // four are two
		{`'a\\\b'`, []string{`a\\b`}, []string{`a\b`}},           // three are two
		{`'*\*'`, []string{`x*`, `*`}, []string{`x`}},            // contains a literal star
		{`'C:\*'`, []string{`C:*`}, []string{`C:\x`}},            // spec: \* is a plain star
		{`'\\server\share*'`, []string{`\server\shareX`}, []string{`\\server\share`}},
	} {
		var cases []matchCase
		for _, s := range c.matches {
			b, _ := json.Marshal(map[string]string{"f": s})
			cases = append(cases, matchCase{string(b), true})
		}
		for _, s := range c.not {
			b, _ := json.Marshal(map[string]string{"f": s})
			cases = append(cases, matchCase{string(b), false})
		}
		runCases(t, "escape "+c.rule, "sel:\n    f: "+c.rule+"\ncondition: sel", cases)
	}
}

func TestStringModifiers(t *testing.T) {
	runCases(t, "contains", `
sel:
    f|contains: 'Failed Auth'
condition: sel`, []matchCase{
		{`{"f":"xx failed authentication"}`, true},
		{`{"f":"Failed Auth"}`, true},
		{`{"f":"Failed  Auth"}`, false},
	})
	runCases(t, "startswith endswith", `
sel:
    a|startswith: 'Update'
    b|endswith: '.EXE'
condition: sel`, []matchCase{
		{`{"a":"UpdateFunctionConfiguration20150331v2","b":"c:\\cmd.exe"}`, true},
		{`{"a":"update","b":".exe"}`, true},
		{`{"a":"xUpdate","b":"c:\\cmd.exe"}`, false},
		{`{"a":"Update","b":"c:\\cmd.exe.txt"}`, false},
	})
	runCases(t, "contains with inner wildcard", `
sel:
    f|contains: 'a*b?c'
condition: sel`, []matchCase{
		{`{"f":"xxAzzzBqCyy"}`, true},
		{`{"f":"abXc"}`, true},
		{`{"f":"abc"}`, false},
	})
	runCases(t, "contains * means any string", `
sel:
    errorMessage|contains: '*'
condition: sel`, []matchCase{
		{`{"errorMessage":""}`, true},
		{`{"errorMessage":"x"}`, true},
		{`{"errorMessage":null}`, false},
		{`{}`, false},
	})
	runCases(t, "all", `
sel:
    CommandLine|contains|all:
        - 'OabVirtualDirectory'
        - ' -ExternalUrl '
condition: sel`, []matchCase{
		{`{"CommandLine":"Set-OabVirtualDirectory -ExternalUrl http://x"}`, true},
		{`{"CommandLine":"Set-OabVirtualDirectory"}`, false},
		{`{"CommandLine":" -ExternalUrl "}`, false},
	})
	runCases(t, "cased", `
sel:
    f|cased: 'CaseSensitive'
    g|contains|cased: 'Evil'
condition: sel`, []matchCase{
		{`{"f":"CaseSensitive","g":"xEvilx"}`, true},
		{`{"f":"casesensitive","g":"xEvilx"}`, false},
		{`{"f":"CaseSensitive","g":"xevilx"}`, false},
	})
	runCases(t, "unicode case folding", `
sel:
    f: 'ÉCOLE'
condition: sel`, []matchCase{
		{`{"f":"école"}`, true},
		{`{"f":"ecole"}`, false},
	})
	runCases(t, "windash: every dash is any of - / – — ―", `
sel:
    CommandLine|windash|contains:
        - ' -s '
        - ' -f '
condition: sel`, []matchCase{
		{`{"CommandLine":"psexec -s cmd"}`, true},
		{`{"CommandLine":"psexec /s cmd"}`, true},
		{`{"CommandLine":"psexec –s cmd"}`, true},
		{`{"CommandLine":"psexec —f cmd"}`, true},
		{`{"CommandLine":"psexec ―F cmd"}`, true},
		{`{"CommandLine":"psexec s cmd"}`, false},
		{`{"CommandLine":"psexec \\s cmd"}`, false},
	})
	runCases(t, "windash with two dashes makes all permutations", `
sel:
    f|windash: '-a-b'
condition: sel`, []matchCase{
		{`{"f":"-a/b"}`, true},
		{`{"f":"/a—b"}`, true},
		{`{"f":"–a–b"}`, true},
		{`{"f":"-ab"}`, false},
	})
}

func TestRegexModifier(t *testing.T) {
	runCases(t, "re is case-sensitive and unanchored", `
sel:
    userIdentity.arn|re: '.+:assumed-role/aws:.+'
condition: sel`, []matchCase{
		{`{"userIdentity":{"arn":"arn:aws:sts::1:assumed-role/aws:ec2-instance/i-1"}}`, true},
		{`{"userIdentity":{"arn":"arn:aws:sts::1:assumed-role/AWS:ec2-instance/i-1"}}`, false},
		{`{"userIdentity":{"arn":"arn:aws:sts::1:assumed-role/x/i-1"}}`, false},
	})
	runCases(t, "re|i", `
sel:
    f|re|i: '^evil[0-9]+$'
condition: sel`, []matchCase{
		{`{"f":"EVIL42"}`, true},
		{`{"f":"evil"}`, false},
		{`{"f":"x evil42"}`, false},
	})
	runCases(t, "re|m: ^ and $ at lines", `
sel:
    f|re|m: '^b$'
condition: sel`, []matchCase{
		{`{"f":"a\nb\nc"}`, true},
		{`{"f":"ab"}`, false},
	})
	runCases(t, "re without m: ^ is the start of text", `
sel:
    f|re: '^b$'
condition: sel`, []matchCase{
		{`{"f":"a\nb\nc"}`, false},
		{`{"f":"b"}`, true},
	})
	runCases(t, "re|s: dot matches newline", `
sel:
    f|re|s: 'a.c'
condition: sel`, []matchCase{
		{`{"f":"a\nc"}`, true},
	})
	runCases(t, "re without s", `
sel:
    f|re: 'a.c'
condition: sel`, []matchCase{
		{`{"f":"a\nc"}`, false},
		{`{"f":"abc"}`, true},
	})
	runCases(t, "re on a number uses its string form", `
sel:
    f|re: '^4[0-9]{3}$'
condition: sel`, []matchCase{
		{`{"f":4624}`, true},
		{`{"f":"4624"}`, true},
		{`{"f":624}`, false},
	})
}

func TestEncodingModifiers(t *testing.T) {
	// Appendix examples: cmd > 63 00 6d 00 64 00, 00 63 00 6d 00 64, FF FE 63 00 6d 00 64 00.
	for _, c := range []struct{ mod, want string }{
		{"utf16le", "c\x00m\x00d\x00"},
		{"wide", "c\x00m\x00d\x00"},
		{"utf16be", "\x00c\x00m\x00d"},
		{"utf16", "\xff\xfec\x00m\x00d\x00"},
	} {
		vs, err := transform(c.mod, []pattern{parsePattern("cmd")})
		if err != nil || len(vs) != 1 || vs[0].literal() != c.want {
			t.Errorf("%s(cmd) = %q, %v; want %q", c.mod, vs, err, c.want)
		}
	}
	for _, c := range []struct {
		mod, value string
		want       []string
	}{
		{"base64", "http://", []string{"aHR0cDovLw=="}},
		// pySigma's base64offset test values.
		{"base64offset", "http://", []string{"aHR0cDovL", "h0dHA6Ly", "odHRwOi8v"}},
		{"base64offset", "/bin/bash", []string{"L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"}},
	} {
		vs, err := transform(c.mod, []pattern{parsePattern(c.value)})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range vs {
			got = append(got, v.literal())
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s(%s) = %q, want %q", c.mod, c.value, got, c.want)
		}
	}
	// Every offset variant is found inside the encoding of the value at
	// offsets 0, 1 and 2 of a longer text.
	m := compileDetection(t, "sel:\n    f|base64offset|contains: 'http://'\ncondition: sel")
	for _, prefix := range []string{"", "a", "ab", "abc"} {
		enc := base64.StdEncoding.EncodeToString([]byte(prefix + "http://evil.example/x"))
		if !m.Match(map[string]any{"f": enc}) {
			t.Errorf("base64offset misses %q (%s)", prefix+"http://...", enc)
		}
	}
	if m.Match(map[string]any{"f": base64.StdEncoding.EncodeToString([]byte("https://evil.example"))}) {
		t.Error("base64offset matched https://")
	}
	runCases(t, "wide then base64offset", `
sel:
    f|wide|base64offset|contains: 'cmd'
condition: sel`, []matchCase{
		{`{"f":"` + base64.StdEncoding.EncodeToString([]byte("x\x00cmd"[:0]+"x\x00c\x00m\x00d\x00")) + `"}`, true},
		{`{"f":"` + base64.StdEncoding.EncodeToString([]byte("c\x00m\x00d\x00")) + `"}`, true},
		{`{"f":"` + base64.StdEncoding.EncodeToString([]byte("cmd")) + `"}`, false},
	})
	runCases(t, "utf16le matches raw bytes", `
sel:
    f|utf16le|contains: 'cmd'
condition: sel`, []matchCase{
		{`{"f":"x\u0000C\u0000M\u0000D\u0000y"}`, true},
		{`{"f":"cmd"}`, false},
	})
}

func TestCIDRAndNumeric(t *testing.T) {
	runCases(t, "cidr v4 (appendix example) and v6", `
sel:
    DestinationIp|cidr:
        - 10.0.0.0/8
        - 2001:db8::/32
condition: sel`, []matchCase{
		{`{"DestinationIp":"10.1.2.3"}`, true},
		{`{"DestinationIp":"::ffff:10.1.2.3"}`, true},
		{`{"DestinationIp":"2001:db8:1::1"}`, true},
		{`{"DestinationIp":"2001:db9::1"}`, false},
		{`{"DestinationIp":"11.0.0.1"}`, false},
		{`{"DestinationIp":"AWS Internal"}`, false},
		{`{"DestinationIp":["192.168.0.1","10.0.0.9"]}`, true},
	})
	runCases(t, "lt lte gt gte", `
lt:
    n|lt: 10
lte:
    n|lte: 10
gt:
    n|gt: 10
gte:
    n|gte: 10.5
condition: (lt and lte) or (gt and gte)`, []matchCase{
		{`{"n":9}`, true},
		{`{"n":"9.99"}`, true},
		{`{"n":10}`, false},
		{`{"n":10.5}`, true},
		{`{"n":10.4}`, false},
		{`{"n":"11"}`, true},
		{`{"n":"eleven"}`, false},
		{`{"n":true}`, false},
		{`{}`, false},
	})
	runCases(t, "lte includes the bound", `
sel:
    n|lte: 10
condition: sel`, []matchCase{{`{"n":10}`, true}, {`{"n":11}`, false}})
	runCases(t, "neq", `
sel:
    f|neq:
        - a
        - b
condition: sel`, []matchCase{
		{`{"f":"c"}`, true},
		{`{"f":"A"}`, false},
		{`{"f":"b"}`, false},
		{`{}`, true}, // an absent field differs from every value (docs/rules.md)
	})
	// The choices docs/rules.md states where the spec is silent.
	runCases(t, "numbers in strings: numeric under gt, text otherwise", `
gt:
    port|gt: 80
eq:
    port: 443
condition: gt and eq`, []matchCase{
		{`{"port":"443"}`, true},
		{`{"port":443}`, true},
		{`{"port":"0443"}`, false}, // gt holds, 443 is compared as text
		{`{"port":"79"}`, false},
	})
	runCases(t, "case folding is per rune", `
sel:
    name: 'STRASSE ÉTÉ'
condition: sel`, []matchCase{
		{`{"name":"strasse été"}`, true},
		{`{"name":"straße été"}`, false},
	})
}

func TestNullExistsFieldref(t *testing.T) {
	// Specification examples: null, and null as its own selection.
	runCases(t, "null is absent or null", `
selection:
    EventID: 4738
filter:
    PasswordLastSet: null
condition: selection and not filter`, []matchCase{
		{`{"EventID":4738,"PasswordLastSet":"2020"}`, true},
		{`{"EventID":4738,"PasswordLastSet":""}`, true},
		{`{"EventID":4738,"PasswordLastSet":null}`, false},
		{`{"EventID":4738}`, false},
	})
	runCases(t, "selection_main and 1 of selection_empty*", `
selection_main:
    FieldA: 'something'
selection_empty1:
    FieldB: ''
selection_empty2:
    FieldB: null
condition: selection_main and 1 of selection_empty*`, []matchCase{
		{`{"FieldA":"something","FieldB":""}`, true},
		{`{"FieldA":"something"}`, true},
		{`{"FieldA":"something","FieldB":null}`, true},
		{`{"FieldA":"something","FieldB":"x"}`, false},
	})
	runCases(t, "exists true (spec example) counts null as present", `
selection:
    EventID: 4738
    PasswordLastSet|exists: true
condition: selection`, []matchCase{
		{`{"EventID":4738,"PasswordLastSet":"x"}`, true},
		{`{"EventID":4738,"PasswordLastSet":null}`, true},
		{`{"EventID":4738,"PasswordLastSet":""}`, true},
		{`{"EventID":4738}`, false},
	})
	runCases(t, "exists false, nested", `
sel:
    a.b|exists: false
condition: sel`, []matchCase{
		{`{"a":{"c":1}}`, true},
		{`{"a":"b"}`, true},
		{`{}`, true},
		{`{"a":{"b":0}}`, false},
		{`{"a":[{"c":1},{"b":false}]}`, false},
	})
	runCases(t, "exists: an empty value is present (\"be it empty or null\")", `
sel:
    resources|exists: true
condition: sel`, []matchCase{
		{`{"resources":[]}`, true},
		{`{"resources":{}}`, true},
		{`{"resources":[{"ARN":"x"}]}`, true},
		{`{"resources":null}`, true},
		{`{"other":[]}`, false},
	})
	runCases(t, "exists nested: through arrays, an empty leaf present", `
sel:
    a.b|exists: true
condition: sel`, []matchCase{
		{`{"a":{"b":[]}}`, true},
		{`{"a":[{"c":1},{"b":[]}]}`, true},
		{`{"a.b":[]}`, true},
		{`{"a":[]}`, false},
		{`{"a":[{"c":1}]}`, false},
		{`{"a":{"c":{"b":1}}}`, false},
	})
	// null is "absent or null"; an empty array holds no value, as null
	// does, so it is null too (and present, like null).
	runCases(t, "null and an empty array", `
sel:
    resources: null
condition: sel`, []matchCase{
		{`{"resources":[]}`, true},
		{`{}`, true},
		{`{"resources":[{"ARN":"x"}]}`, false},
		{`{"resources":""}`, false},
	})
	runCases(t, "fieldref list: ORed", `
sel:
    userIdentity.userName|fieldref:
        - requestParameters.userName
        - requestParameters.roleName
condition: sel`, []matchCase{
		{`{"userIdentity":{"userName":"Bob"},"requestParameters":{"userName":"bob"}}`, true},
		{`{"userIdentity":{"userName":"Bob"},"requestParameters":{"roleName":"BOB"}}`, true},
		{`{"userIdentity":{"userName":"Bob"},"requestParameters":{"userName":"alice","roleName":"bob"}}`, true},
		{`{"userIdentity":{"userName":"Bob"},"requestParameters":{"userName":"alice","roleName":"carol"}}`, false},
		{`{"userIdentity":{"userName":"Bob"}}`, false},
	})
	runCases(t, "fieldref list with all: ANDed", `
sel:
    userIdentity.userName|fieldref|all:
        - requestParameters.userName
        - requestParameters.roleName
condition: sel`, []matchCase{
		{`{"userIdentity":{"userName":"Bob"},"requestParameters":{"userName":"bob","roleName":"Bob"}}`, true},
		{`{"userIdentity":{"userName":"Bob"},"requestParameters":{"userName":"bob"}}`, false},
		{`{"userIdentity":{"userName":"Bob"},"requestParameters":{"userName":"bob","roleName":"x"}}`, false},
	})
	runCases(t, "fieldref list with neq: differs from every one", `
sel:
    userIdentity.userName|fieldref|neq:
        - requestParameters.userName
        - requestParameters.roleName
condition: sel`, []matchCase{
		{`{"userIdentity":{"userName":"Bob"},"requestParameters":{"userName":"alice","roleName":"carol"}}`, true},
		{`{"userIdentity":{"userName":"Bob"},"requestParameters":{"roleName":"bob"}}`, false},
	})
	// JSON integers beyond 2^53 (float64 would round 9007199254740993 to
	// ...992) compare by their digits: equal, ordered, as text.
	runCases(t, "long integers: equality", `
sel:
    requestParameters.n: 9007199254740993
condition: sel`, []matchCase{
		{`{"requestParameters":{"n":9007199254740993}}`, true},
		{`{"requestParameters":{"n":9007199254740992}}`, false},
		{`{"requestParameters":{"n":"9007199254740993"}}`, true},
	})
	runCases(t, "long integers: a short literal, a long value", `
sel:
    n: 9007199254740992
condition: sel`, []matchCase{
		{`{"n":9007199254740992}`, true},
		{`{"n":9007199254740993}`, false},
		{`{"n":9223372036854775807}`, false},
	})
	runCases(t, "long integers: as text", `
sel:
    n|endswith: '0993'
condition: sel`, []matchCase{
		{`{"n":9007199254740993}`, true},
		{`{"n":[1,-9223372036854770993]}`, true},
		{`{"n":9007199254740992}`, false},
	})
	runCases(t, "long integers: gt", `
sel:
    n|gt: 9007199254740992
condition: sel`, []matchCase{
		{`{"n":9007199254740993}`, true},
		{`{"n":9007199254740992}`, false},
		{`{"n":"9007199254740993"}`, true},
		{`{"n":9223372036854775807}`, true},
		{`{"n":18446744073709551615}`, true},
		{`{"n":-9223372036854775808}`, false},
		{`{"n":1e300}`, true},
	})
	runCases(t, "long integers: lte a long literal", `
sel:
    n|lte: 9223372036854775807
condition: sel`, []matchCase{
		{`{"n":9223372036854775807}`, true},
		{`{"n":9223372036854775806}`, true},
		{`{"n":9223372036854777856}`, false},
		{`{"n":1.5}`, true},
	})
	runCases(t, "long integers: keyword search", `
keywords:
    - '9007199254740993'
condition: keywords`, []matchCase{
		{`{"a":{"b":9007199254740993}}`, true},
		{`{"a":{"b":9007199254740992}}`, false},
	})
	runCases(t, "fieldref", `
sel:
    userIdentity.arn|fieldref: requestParameters.userName
condition: sel`, []matchCase{
		{`{"userIdentity":{"arn":"Bob"},"requestParameters":{"userName":"bob"}}`, true},
		{`{"userIdentity":{"arn":"arn:aws:iam::1:user/bob"},"requestParameters":{"userName":"bob"}}`, false},
		{`{"userIdentity":{"arn":"bob"}}`, false},
	})
	runCases(t, "fieldref|endswith", `
sel:
    userIdentity.arn|fieldref|endswith: requestParameters.userName
condition: sel`, []matchCase{
		{`{"userIdentity":{"arn":"arn:aws:iam::1:user/bob"},"requestParameters":{"userName":"Bob"}}`, true},
		{`{"userIdentity":{"arn":"arn:aws:iam::1:user/alice"},"requestParameters":{"userName":"bob"}}`, false},
	})
	runCases(t, "without fieldref the value is a literal", `
sel:
    userIdentity.arn|contains: responseElements.accessKey.userName
condition: sel`, []matchCase{
		{`{"userIdentity":{"arn":"bob"},"responseElements":{"accessKey":{"userName":"bob"}}}`, false},
		{`{"userIdentity":{"arn":"x responseElements.accessKey.userName"}}`, true},
	})
}

func TestNestedFieldsAndArrays(t *testing.T) {
	runCases(t, "dots reach into objects and through arrays", `
sel:
    requestParameters.containerDefinitions.command|contains: '$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'
condition: sel`, []matchCase{
		{`{"requestParameters":{"containerDefinitions":[{"command":["sh","-c","curl 169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]}]}}`, true},
		{`{"requestParameters":{"containerDefinitions":[{"command":["sh"]},{"command":"x $aws_container_credentials_relative_uri"}]}}`, true},
		{`{"requestParameters":{"containerDefinitions":[{"command":["sh"]},{"image":"$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"}]}}`, false},
		{`{"requestParameters":{"containerDefinitions":[]}}`, false},
		{`{"requestParameters":"$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"}`, false},
	})
	runCases(t, "flattened dotted keys resolve too", `
sel:
    dns.question.name: 'sigmahq'
condition: sel`, []matchCase{
		{`{"dns":{"question":{"name":"SigmaHQ"}}}`, true},
		{`{"dns.question.name":"sigmahq"}`, true},
		{`{"dns":{"question.name":"sigmahq"}}`, true},
		{`{"dns":{"question":{"name":"other"}}}`, false},
	})
	runCases(t, "a string compared with an object matches one of its values", `
sel:
    requestParameters|contains: 'Suspended'
condition: sel`, []matchCase{
		{`{"requestParameters":{"bucketName":"b","VersioningConfiguration":{"Status":"Suspended"}}}`, true},
		{`{"requestParameters":{"bucketName":"b","VersioningConfiguration":{"Status":"Enabled"}}}`, false},
		{`{"requestParameters":{"Suspended":"Enabled"}}`, false}, // keys are not values
	})
	runCases(t, "null through arrays: absent in one element", `
sel:
    a.b: null
condition: sel`, []matchCase{
		{`{"a":[{"b":1},{}]}`, true},
		{`{"a":[{"b":1},{"b":null}]}`, true},
		{`{"a":[{"b":1}]}`, false},
		{`{"a":[]}`, true},
		{`{"a":{"b":[]}}`, true},
		{`{"a":{"b":[1]}}`, false},
	})
	runCases(t, "all through an array: each value in some element", `
sel:
    tags|all:
        - a
        - b
condition: sel`, []matchCase{
		{`{"tags":["b","x","A"]}`, true},
		{`{"tags":["a"]}`, false},
	})
}

func TestKeywords(t *testing.T) {
	runCases(t, "keyword list is OR over every value (spec example)", `
keywords:
    - 'EVILSERVICE'
    - 'svchost.exe -n evil'
condition: keywords`, []matchCase{
		{`{"msg":"service evilservice started"}`, true},
		{`{"a":{"b":["x","run svchost.exe -n evil now"]}}`, true},
		{`{"EVILSERVICE":"key only"}`, false},
		{`{"msg":"evil service"}`, false},
	})
	runCases(t, "|all keywords (spec example)", `
keywords_cmdlet:
    '|all':
        - 'OabVirtualDirectory'
        - ' -ExternalUrl '
condition: keywords_cmdlet`, []matchCase{
		{`{"a":"Set-OabVirtualDirectory -ExternalUrl x"}`, true},
		{`{"a":"Set-OabVirtualDirectory","b":"x -ExternalUrl y"}`, true},
		{`{"a":"Set-OabVirtualDirectory"}`, false},
	})
	runCases(t, "keyword numbers and booleans by string form", `
keywords:
    - 4624
condition: keywords`, []matchCase{
		{`{"id":4624}`, true},
		{`{"id":"x-4624-y"}`, true},
		{`{"id":4625}`, false},
	})
	m := compileDetection(t, "keywords:\n    - evil\ncondition: keywords")
	if !m.FullScan() {
		t.Error("keyword rule: FullScan() = false")
	}
}

func TestRegexPrefilterFolding(t *testing.T) {
	// RE2's (?i) folds k with the Kelvin sign; the literal prefilter must not
	// reject what the regexp accepts.
	runCases(t, "re|i with k", `
sel:
    f|re|i: 'kms:x'
condition: sel`, []matchCase{
		{`{"f":"\u212Ams:X"}`, true},
		{`{"f":"KMS:X"}`, true},
		{`{"f":"kms:y"}`, false},
	})
}
