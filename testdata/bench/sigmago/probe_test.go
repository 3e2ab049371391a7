package main

import (
	"context"
	"encoding/json"
	"testing"
)

const rulesDir = "../../../correlate/sigma/testdata/aws_cloudtrail"

func loadByName(tb testing.TB) map[string]Rule {
	tb.Helper()
	rules, err := loadRules(rulesDir)
	if err != nil {
		tb.Fatal(err)
	}
	if len(rules) != 57 {
		tb.Fatalf("%d rules, want 57", len(rules))
	}
	m := map[string]Rule{}
	for _, r := range rules {
		if r.Ecscorr == nil {
			tb.Fatalf("%s: ecscorr refused: %s", r.File, r.EcscorrEr)
		}
		m[r.File] = r
	}
	return m
}

// TestProbes pins, on constructed records, each semantic difference the
// corpora show (and the ones the 57 rules could show), so that a change in
// either matcher is noticed. sigmago is the plain sigma-go result (false when
// Matches errs), nullFix the result with `null` spelled "null".
func TestProbes(t *testing.T) {
	rules := loadByName(t)
	for _, p := range []struct {
		name, rule, rec       string
		ecscorr, sigmago      bool
		sigmagoErr            bool
		nullFix, checkNullFix bool
	}{
		// Special Field Values: errorCode: null. Absent and JSON null both match
		// in ecscorr; sigma-go rejects the rule's nil value on every record.
		{"null absent", "aws_cloudtrail_bucket_deleted.yml", `{"eventName":"DeleteBucket"}`, true, false, true, true, true},
		{"null json null", "aws_cloudtrail_bucket_deleted.yml", `{"eventName":"DeleteBucket","errorCode":null}`, true, false, true, true, true},
		{"null present", "aws_cloudtrail_bucket_deleted.yml", `{"eventName":"DeleteBucket","errorCode":"AccessDenied"}`, false, false, true, false, true},
		// sigma-go's "null" string also matches the literal text null; ecscorr (spec) not.
		{"null literal text", "aws_cloudtrail_bucket_deleted.yml", `{"eventName":"DeleteBucket","errorCode":"NULL"}`, false, false, true, true, true},
		// General: case-insensitive values (both).
		{"case", "aws_cloudtrail_bucket_deleted.yml", `{"eventName":"deletebucket","errorCode":"success"}`, true, false, true, true, true},
		// String Wildcard + contains: '*' is a wildcard; sigma-go compares it literally.
		{"wildcard layers", "aws_new_lambda_layer_attached.yml",
			`{"eventSource":"lambda.amazonaws.com","eventName":"UpdateFunctionConfiguration20150331v2","requestParameters":{"layers":["arn:aws:lambda:us-east-1:111122223333:layer:x:1"]}}`, true, false, false, false, false},
		{"wildcard no layers", "aws_new_lambda_layer_attached.yml",
			`{"eventSource":"lambda.amazonaws.com","eventName":"UpdateFunctionConfiguration20150331v2","requestParameters":{"functionName":"f"}}`, false, false, false, false, false},
		// CloudTrail redacts the password as "****": the literal '*' is there, both match.
		{"wildcard redacted", "aws_rds_change_master_password.yml",
			`{"eventSource":"rds.amazonaws.com","eventName":"ModifyDBInstance","responseElements":{"pendingModifiedValues":{"masterUserPassword":"****"}}}`, true, true, false, false, false},
		{"wildcard filter error", "aws_ec2_vm_export_failure.yml",
			`{"eventSource":"ec2.amazonaws.com","eventName":"CreateInstanceExportTask","errorCode":"AccessDenied","errorMessage":"denied"}`, false, true, false, false, false},
		{"wildcard filter success", "aws_ec2_vm_export_failure.yml",
			`{"eventSource":"ec2.amazonaws.com","eventName":"CreateInstanceExportTask","responseElements":{"exportTask":{"state":"active"}}}`, true, true, false, false, false},
		// contains on an object: both search the values inside it.
		{"contains object", "aws_iam_s3browser_templated_s3_bucket_policy_creation.yml",
			`{"eventSource":"iam.amazonaws.com","eventName":"PutUserPolicy","userAgent":"S3 Browser 9.5.5 https://s3browser.com","requestParameters":{"userName":"u","policyName":"p","policyDocument":"{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[\"s3:GetObject\"],\"Resource\":[\"arn:aws:s3:::<YOUR-BUCKET-NAME>/*\"]}]}"}}`, true, true, false, false, false},
		// fieldref (Specific Modifiers): sigma-go has no such modifier.
		{"fieldref equal", "aws_update_login_profile.yml",
			`{"eventSource":"iam.amazonaws.com","eventName":"UpdateLoginProfile","userIdentity":{"arn":"bob"},"requestParameters":{"userName":"bob"}}`, false, false, true, false, false},
		{"fieldref differ", "aws_update_login_profile.yml",
			`{"eventSource":"iam.amazonaws.com","eventName":"UpdateLoginProfile","userIdentity":{"arn":"arn:aws:iam::111122223333:user/alice"},"requestParameters":{"userName":"bob"}}`, true, false, true, false, false},
	} {
		t.Run(p.name, func(t *testing.T) {
			r := rules[p.rule]
			var rec map[string]any
			if err := json.Unmarshal([]byte(p.rec), &rec); err != nil {
				t.Fatal(err)
			}
			if got := r.Ecscorr.Match(rec); got != p.ecscorr {
				t.Errorf("ecscorr %v, want %v", got, p.ecscorr)
			}
			out, err := r.SigmaGo.Matches(context.Background(), rec)
			if (err != nil) != p.sigmagoErr {
				t.Errorf("sigma-go error %v, want error %v", err, p.sigmagoErr)
			}
			if got := err == nil && out.Match; got != p.sigmago {
				t.Errorf("sigma-go %v, want %v", got, p.sigmago)
			}
			if p.checkNullFix {
				out, err := r.NullFix.Matches(context.Background(), rec)
				if got := err == nil && out.Match; got != p.nullFix {
					t.Errorf("sigma-go null as \"null\" %v (%v), want %v", got, err, p.nullFix)
				}
			}
		})
	}
}
