package pipeline

import "testing"

func TestParseTaskARN(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		want TaskARN
		str  string
	}{
		{"arn:aws:ecs:us-west-2:111122223333:task/FargateCluster/c13b4cb40f1f4fe4a2971f76ae5a47ad", true,
			TaskARN{"aws", "us-west-2", "111122223333", "FargateCluster", "c13b4cb40f1f4fe4a2971f76ae5a47ad"}, ""},
		{"arn:aws:ecs:us-east-1:012345678910:task/1dc5c17a-422b-4dc4-b493-371970c6c4d6", true,
			TaskARN{"aws", "us-east-1", "012345678910", "", "1dc5c17a-422b-4dc4-b493-371970c6c4d6"}, ""},
		{"arn:aws-cn:ecs:cn-north-1:111122223333:task/prod/abc", true,
			TaskARN{"aws-cn", "cn-north-1", "111122223333", "prod", "abc"}, ""},
		{"arn:aws:ecs:us-west-2:111122223333:cluster/FargateCluster", false, TaskARN{}, ""},
		{"arn:aws:ecs:us-west-2:111122223333:task-definition/web:3", false, TaskARN{}, ""},
		{"arn:aws:ecs:us-west-2:111122223333:task/", false, TaskARN{}, ""},
		{"arn:aws:ecs:us-west-2:111122223333:task/a/b/c", false, TaskARN{}, ""},
		{"arn:aws:ecs::111122223333:task/a/b", false, TaskARN{}, ""},
		{"c13b4cb40f1f4fe4a2971f76ae5a47ad", false, TaskARN{}, ""},
		{"", false, TaskARN{}, ""},
	}
	for _, tc := range tests {
		got, ok := ParseTaskARN(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseTaskARN(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if ok && got.String() != tc.in {
			t.Errorf("round trip %q -> %q", tc.in, got.String())
		}
	}
}

func TestNormalizeTaskRef(t *testing.T) {
	tests := []struct{ ref, region, account, cluster, want string }{
		{"c13b4cb40f1f4fe4a2971f76ae5a47ad", "us-west-2", "111122223333", "prod",
			"arn:aws:ecs:us-west-2:111122223333:task/prod/c13b4cb40f1f4fe4a2971f76ae5a47ad"},
		{"c13b4cb40f1f4fe4a2971f76ae5a47ad", "us-west-2", "111122223333", "arn:aws:ecs:us-west-2:111122223333:cluster/prod",
			"arn:aws:ecs:us-west-2:111122223333:task/prod/c13b4cb40f1f4fe4a2971f76ae5a47ad"},
		{"c13b4cb40f1f4fe4a2971f76ae5a47ad", "us-west-2", "111122223333", "", ""},
		{"arn:aws:ecs:us-west-2:111122223333:task/prod/abc", "eu-west-1", "999", "other",
			"arn:aws:ecs:us-west-2:111122223333:task/prod/abc"},
		{"arn:aws:ecs:us-west-2:111122223333:task/abc", "", "", "",
			"arn:aws:ecs:us-west-2:111122223333:task/abc"},
		{"arn:aws:iam::111122223333:role/x", "us-west-2", "111122223333", "prod", ""},
		{"prod/abc", "us-west-2", "111122223333", "prod", ""},
		{"abc", "us-gov-west-1", "111122223333", "prod", "arn:aws-us-gov:ecs:us-gov-west-1:111122223333:task/prod/abc"},
	}
	for _, tc := range tests {
		if got := NormalizeTaskRef(tc.ref, tc.region, tc.account, tc.cluster); got != tc.want {
			t.Errorf("NormalizeTaskRef(%q, %q, %q, %q) = %q, want %q", tc.ref, tc.region, tc.account, tc.cluster, got, tc.want)
		}
	}
}

func TestBuildTaskARNContainerInsights(t *testing.T) {
	// TaskId + ClusterName + AccountID + Region of the Container Insights
	// documentation sample.
	got := BuildTaskARN("us-west-2", "203383196838", "myCICluster", "7cb28b4e0b3543c8b1d0bba6ff0c5d1e")
	want := "arn:aws:ecs:us-west-2:203383196838:task/myCICluster/7cb28b4e0b3543c8b1d0bba6ff0c5d1e"
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestSeverityMaps(t *testing.T) {
	gd := []struct {
		v    float64
		want Severity
	}{{9.5, SeverityCritical}, {9, SeverityCritical}, {8.9, SeverityHigh}, {7, SeverityHigh}, {6.9, SeverityMedium}, {4, SeverityMedium}, {3.9, SeverityLow}, {1, SeverityLow}, {0.5, SeverityInformational}}
	for _, tc := range gd {
		if got := GuardDutySeverity(tc.v); got != tc.want {
			t.Errorf("GuardDutySeverity(%v) = %v, want %v", tc.v, got, tc.want)
		}
	}
	for in, want := range map[string]Severity{"Critical": SeverityCritical, "WARNING": SeverityMedium, "Notice": SeverityLow, "Error": SeverityHigh, "Debug": SeverityInformational, "odd": SeverityUnknown} {
		if got := FalcoSeverity(in); got != want {
			t.Errorf("FalcoSeverity(%q) = %v, want %v", in, got, want)
		}
	}
	for _, s := range []Severity{SeverityInformational, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical} {
		b, _ := s.MarshalJSON()
		var back Severity
		if err := back.UnmarshalJSON(b); err != nil || back != s {
			t.Errorf("round trip %v: %v %v", s, back, err)
		}
	}
	if _, err := ParseSeverity("severe"); err == nil {
		t.Error("ParseSeverity accepted an unknown name")
	}
}
