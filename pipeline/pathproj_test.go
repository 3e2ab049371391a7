package pipeline

import (
	"encoding/json"
	"reflect"
	"testing"
)

// A path projection holds exactly what the paths reach, the same whether
// it copies, borrows, or starts from an indexed object.
func TestPathProjection(t *testing.T) {
	doc := `{"eventName":"AssumeRole","userIdentity":{"type":"AssumedRole","arn":"arn:x","sessionContext":{"attributes":{"mfa":"false"},"sessionIssuer":{"type":"Role","arn":"arn:r"}}},` +
		`"user\u0041gent":"aws-cli","resources":[{"ARN":"a1","type":"t"},{"ARN":"a2"},"s"],"userIdentity.type":"flat","requestParameters":{"k":[1,2]},"n":null}`
	paths := [][]string{
		{"eventName"},
		{"userIdentity", "type"},
		{"userIdentity", "sessionContext", "sessionIssuer", "type"},
		{"userIdentity.type"},
		{"userAgent"},
		{"resources", "ARN"},
		{"requestParameters"}, // whole
		{"n"},
		{"missing", "x"},
	}
	want := `{"eventName":"AssumeRole","n":null,"requestParameters":{"k":[1,2]},"resources":[{"ARN":"a1"},{"ARN":"a2"},"s"],` +
		`"userAgent":"aws-cli","userIdentity":{"sessionContext":{"sessionIssuer":{"type":"Role"}},"type":"AssumedRole"},"userIdentity.type":"flat"}`
	pp := NewPathProjection(paths)
	got, ok := pp.Project([]byte(doc))
	if !ok {
		t.Fatal("Project failed")
	}
	if b, _ := json.Marshal(got); string(b) != want {
		t.Errorf("Project:\n got %s\nwant %s", b, want)
	}
	var sc ProjScratch
	for range 2 { // the scratch is reused
		borrowed, ok := pp.ProjectBorrowed([]byte(doc), &sc)
		if !ok || !reflect.DeepEqual(borrowed, got) {
			t.Errorf("ProjectBorrowed = %v, %v", borrowed, ok)
		}
	}
	members, end, ok := IndexObject([]byte(doc+`,{"next":1}`), nil)
	if !ok || end != len(doc) || len(members) != 7 {
		t.Fatalf("IndexObject: %d members, end %d (want %d), %v", len(members), end, len(doc), ok)
	}
	fromMembers, ok := pp.ProjectMembers(members, &sc)
	if !ok || !reflect.DeepEqual(fromMembers, got) {
		t.Errorf("ProjectMembers = %v, %v", fromMembers, ok)
	}
	for _, bad := range []string{`{"eventName":}`, `{"userIdentity":{"type":"x"`, `[1]`, `{"a" 1}`} {
		if _, ok := pp.Project([]byte(bad)); ok {
			t.Errorf("Project(%q) accepted malformed input", bad)
		}
		if _, _, ok := IndexObject([]byte(bad), nil); ok {
			t.Errorf("IndexObject(%q) accepted malformed input", bad)
		}
	}
}
