package pipeline

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEventJSONRoundTrip(t *testing.T) {
	loc := time.FixedZone("x", 3600)
	evs := []*Event{
		{ID: "5a1e0c3d-0001", Source: SourceCloudTrail, Type: "ecs.amazonaws.com:ExecuteCommand",
			Time: time.Date(2023, 7, 10, 13, 1, 2, 123456789, loc), Severity: SeverityMedium,
			Entity: Entity{Account: "123837392027", Region: "us-east-1", Cluster: "payments-prod",
				TaskARN: "arn:aws:ecs:us-east-1:123837392027:task/payments-prod/0123456789abcdef0", Principal: "mallory"},
			Raw: []byte(`{"eventID":"5a1e0c3d-0001","n":[1,2.5,"\u00e9"]}`)},
		{ID: "gd@2023-07-10T12:03:00.000Z", Source: SourceGuardDuty, Type: "Execution:Runtime/ReverseShell",
			Time: time.Date(2023, 7, 10, 12, 3, 0, 0, time.UTC), Severity: SeverityHigh, Sample: true, Raw: []byte(`{}`)},
		{ID: "ecs-1", Source: SourceECS, Type: "ECS Task State Change", Time: time.Date(2023, 7, 10, 12, 0, 0, 1, time.UTC),
			Containers: []string{"b1e2d3c4b5a6", "c0ffee"}, Entity: Entity{ContainerID: "b1e2d3c4b5a6"}},
		{ID: "no-raw", Source: SourceFalco, Type: "Terminal shell in container", Time: time.Date(2023, 7, 10, 12, 27, 0, 0, time.UTC)},
	}
	for _, ev := range evs {
		b, err := MarshalEventJSON(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalEventJSON(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		want := *ev
		want.Time = ev.Time.UTC()
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("round trip of %s:\n got %+v\nwant %+v", b, got, &want)
		}
		again, err := MarshalEventJSON(got)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("second encoding differs:\n%s\n%s (%v)", again, b, err)
		}
	}
	b, _ := MarshalEventJSON(evs[0])
	const want = `{"id":"5a1e0c3d-0001","source":"cloudtrail","type":"ecs.amazonaws.com:ExecuteCommand","time":"2023-07-10T12:01:02.123456789Z",` +
		`"entity":{"account":"123837392027","region":"us-east-1","cluster":"payments-prod","task_arn":"arn:aws:ecs:us-east-1:123837392027:task/payments-prod/0123456789abcdef0","principal":"mallory"},` +
		`"severity":"medium","raw":{"eventID":"5a1e0c3d-0001","n":[1,2.5,"\u00e9"]}}`
	if string(b) != want {
		t.Fatalf("wire form\n%s\nwant\n%s", b, want)
	}
}

func TestUnmarshalEventJSONErrors(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{`{"id":"a","source":"cloudtrail","time":"2023-07-10T12:00:00Z"`, "normalised event"},
		{`{"source":"cloudtrail","time":"2023-07-10T12:00:00Z"}`, "no id"},
		{`{"id":"a","source":"syslog","time":"2023-07-10T12:00:00Z"}`, "unknown source"},
		{`{"id":"a","source":"falco"}`, "no time"},
		{`{"id":"a","source":"falco","time":"yesterday"}`, "time"},
		{`{"id":"a","source":"falco","time":"2023-07-10T12:00:00Z","severity":"dire"}`, "unknown severity"},
		{`{"id":"a","source":"falco","time":"2023-07-10T12:00:00Z","raw":{"x":}}`, "normalised event"},
		{`[1]`, "normalised event"},
	} {
		_, err := UnmarshalEventJSON([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want one with %q", c.in, err, c.err)
		}
	}
	// Unknown members are ignored; raw null is no raw.
	ev, err := UnmarshalEventJSON([]byte(`{"id":"a","source":"falco","time":"2023-07-10T12:00:00Z","raw":null,"future":1}`))
	if err != nil || ev.Raw != nil || ev.ID != "a" {
		t.Fatalf("%+v %v", ev, err)
	}
}
