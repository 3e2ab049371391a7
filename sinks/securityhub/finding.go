package securityhub

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/securityhub/types"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/internal/incfield"
)

// ASFF limits (the AwsSecurityFinding model and the user guide).
const (
	maxID          = 512
	maxTitle       = 256
	maxDescription = 1024
	maxRecommend   = 512
	maxResources   = 32
	maxRelated     = 10
	maxTypes       = 50
	maxFieldPairs  = 50
	maxFieldValue  = 2048
	// maxEvidenceFields bounds the ProductFields the evidence takes, so
	// the other fields always fit in the 50.
	maxEvidenceFields = 40
)

// asffTime is the ASFF timestamp format (RFC 3339, milliseconds, UTC).
const asffTime = "2006-01-02T15:04:05.000Z"

// cut shortens s to at most max characters, ending in "…" when cut.
func cut(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

var asffLabel = map[pipeline.Severity]types.SeverityLabel{
	pipeline.SeverityUnknown:       types.SeverityLabelInformational,
	pipeline.SeverityInformational: types.SeverityLabelInformational,
	pipeline.SeverityLow:           types.SeverityLabelLow,
	pipeline.SeverityMedium:        types.SeverityLabelMedium,
	pipeline.SeverityHigh:          types.SeverityLabelHigh,
	pipeline.SeverityCritical:      types.SeverityLabelCritical,
}

// tactics names the ASFF Types path of an ATT&CK technique (by its parent
// id): TTPs for the tactics ASFF lists, Effects for impact techniques.
var tactics = map[string]string{
	"T1190": "TTPs/Initial Access", "T1078": "TTPs/Initial Access", "T1133": "TTPs/Initial Access",
	"T1059": "TTPs/Execution", "T1609": "TTPs/Execution", "T1610": "TTPs/Execution", "T1053": "TTPs/Execution", "T1204": "TTPs/Execution",
	"T1098": "TTPs/Persistence", "T1136": "TTPs/Persistence", "T1525": "TTPs/Persistence", "T1543": "TTPs/Persistence",
	"T1611": "TTPs/Privilege Escalation", "T1068": "TTPs/Privilege Escalation", "T1548": "TTPs/Privilege Escalation",
	"T1562": "TTPs/Defense Evasion", "T1070": "TTPs/Defense Evasion", "T1036": "TTPs/Defense Evasion", "T1027": "TTPs/Defense Evasion",
	"T1552": "TTPs/Credential Access", "T1110": "TTPs/Credential Access", "T1528": "TTPs/Credential Access", "T1003": "TTPs/Credential Access",
	"T1087": "TTPs/Discovery", "T1526": "TTPs/Discovery", "T1046": "TTPs/Discovery", "T1613": "TTPs/Discovery", "T1082": "TTPs/Discovery",
	"T1021": "TTPs/Lateral Movement", "T1550": "TTPs/Lateral Movement",
	"T1530": "TTPs/Collection", "T1005": "TTPs/Collection",
	"T1071": "TTPs/Command and Control", "T1105": "TTPs/Command and Control", "T1090": "TTPs/Command and Control", "T1572": "TTPs/Command and Control",
	"T1496": "Effects/Resource Consumption", "T1485": "Effects/Data Destruction", "T1486": "Effects/Data Destruction",
	"T1498": "Effects/Denial of Service", "T1499": "Effects/Denial of Service", "T1537": "Effects/Data Exfiltration", "T1567": "Effects/Data Exfiltration",
	// Techniques of the SigmaHQ CloudTrail rules. ATT&CK v18's Stealth and
	// Defense Impairment (T1685, T1686) split Defense Evasion, the ASFF
	// category they keep.
	"T1020": "Effects/Data Exfiltration", "T1490": "Effects/Data Destruction", "T1531": "Effects/Denial of Service",
	"T1555": "TTPs/Credential Access", "T1556": "TTPs/Credential Access", "T1565": "Effects/Data Destruction",
	"T1566": "TTPs/Initial Access", "T1580": "TTPs/Discovery", "T1619": "TTPs/Discovery", "T1538": "TTPs/Discovery",
	"T1685": "TTPs/Defense Evasion", "T1686": "TTPs/Defense Evasion", "T1578": "TTPs/Defense Evasion", "T1535": "TTPs/Defense Evasion",
}

// tacticTags maps a Sigma rule's ATT&CK tactic tag (attack.<tactic>) to
// its ASFF category: a technique the table above does not know is filed
// under the rule's tactic when the rule names exactly one that ASFF has.
var tacticTags = map[string]string{
	"attack.initial-access": "TTPs/Initial Access", "attack.execution": "TTPs/Execution", "attack.persistence": "TTPs/Persistence",
	"attack.privilege-escalation": "TTPs/Privilege Escalation", "attack.defense-evasion": "TTPs/Defense Evasion",
	"attack.stealth": "TTPs/Defense Evasion", "attack.defense-impairment": "TTPs/Defense Evasion",
	"attack.credential-access": "TTPs/Credential Access", "attack.discovery": "TTPs/Discovery",
	"attack.lateral-movement": "TTPs/Lateral Movement", "attack.collection": "TTPs/Collection",
	"attack.command-and-control": "TTPs/Command and Control", "attack.exfiltration": "Effects/Data Exfiltration",
}

// findingTypes are the ASFF Types of the incident's techniques; without a
// known one, the namespace of unusual behaviour.
func findingTypes(mitre, tags []string) []string {
	var out []string
	seen := map[string]bool{}
	only := "" // the one ASFF category the tags' tactics name, if one
	for _, t := range tags {
		if c := tacticTags[strings.ToLower(t)]; c != "" {
			if only != "" && only != c {
				only = "-"
				break
			}
			only = c
		}
	}
	for _, id := range mitre {
		parent, _, _ := strings.Cut(id, ".")
		path, ok := tactics[parent]
		if !ok && only != "" && only != "-" {
			path, ok = only, true
		}
		if !ok {
			continue
		}
		t := path + "/" + id
		if !seen[t] && len(out) < maxTypes {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		out = []string{"Unusual Behaviors"}
	}
	return out
}

// confidence grows with the number of sources that agree: one source's
// alert, two that corroborate each other, three or more.
func confidence(evs []pipeline.EventRef) int32 {
	srcs := map[pipeline.Source]bool{}
	for _, e := range evs {
		srcs[e.Source] = true
	}
	switch {
	case len(srcs) >= 3:
		return 95
	case len(srcs) == 2:
		return 80
	}
	return 60
}

// target is where an incident's finding goes: the account it is imported
// into (AwsAccountId and the ProductArn's account) and the Region.
type target struct {
	partition, region, account string
}

func (t target) productArn() string {
	return "arn:" + t.partition + ":securityhub:" + t.region + ":" + t.account + ":product/" + t.account + "/default"
}

// finding builds the ASFF finding of inc. updated is the finding's
// UpdatedAt: later than any earlier import of the same Id.
func (s *Sink) finding(inc *pipeline.Incident, to target, updated time.Time) types.AwsSecurityFinding {
	f := incfield.Of(inc)
	created := inc.FirstSeen.UTC()
	if created.IsZero() || created.After(updated) {
		created = updated
	}
	title := cmp.Or(inc.Title, inc.Rule, inc.ID)
	fd := types.AwsSecurityFinding{
		SchemaVersion: aws.String("2018-10-08"),
		Id:            aws.String(inc.ID),
		ProductArn:    aws.String(to.productArn()),
		ProductName:   aws.String("ecscorr"),
		CompanyName:   aws.String("ecscorr"),
		GeneratorId:   aws.String(cut(cmp.Or(inc.Rule, "ecscorr"), maxID)),
		AwsAccountId:  aws.String(to.account),
		CreatedAt:     aws.String(created.Format(asffTime)),
		UpdatedAt:     aws.String(updated.Format(asffTime)),
		Title:         aws.String(cut(title, maxTitle)),
		Description:   aws.String(cut(cmp.Or(inc.Summary, title), maxDescription)),
		FindingProviderFields: &types.FindingProviderFields{
			Severity:        &types.FindingProviderSeverity{Label: asffLabel[inc.Severity], Original: aws.String(inc.Severity.String())},
			Types:           findingTypes(inc.Mitre, inc.Tags),
			Confidence:      aws.Int32(confidence(inc.Events)),
			RelatedFindings: s.related(inc, to),
		},
		Resources:     resources(f, to),
		ProductFields: productFields(inc),
		RecordState:   types.RecordStateActive,
	}
	if !inc.FirstSeen.IsZero() {
		fd.FirstObservedAt = aws.String(inc.FirstSeen.UTC().Format(asffTime))
	}
	if !inc.LastSeen.IsZero() {
		fd.LastObservedAt = aws.String(inc.LastSeen.UTC().Format(asffTime))
	}
	if inc.Remediation != "" || isURL(inc.Runbook) {
		rec := &types.Recommendation{}
		if inc.Remediation != "" {
			rec.Text = aws.String(cut(inc.Remediation, maxRecommend))
		} else {
			rec.Text = aws.String("See the runbook.")
		}
		if isURL(inc.Runbook) {
			rec.Url = aws.String(inc.Runbook)
		}
		fd.Remediation = &types.Remediation{Recommendation: rec}
	}
	if s.sourceURL != "" {
		fd.SourceUrl = aws.String(strings.ReplaceAll(s.sourceURL, "{id}", inc.ID))
	}
	if inc.Status == pipeline.IncidentResolved {
		fd.RecordState = types.RecordStateArchived
		fd.Workflow = &types.Workflow{Status: types.WorkflowStatusResolved}
	}
	return fd
}

func isURL(s string) bool { return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") }

// resources are the task, its cluster, service and task definition, and
// the IAM principal, as far as known; an incident about none of them (a
// drift of account settings) is about its account.
func resources(f incfield.Fields, to target) []types.Resource {
	region := cmp.Or(f.Region, to.region)
	part := types.Partition(cmp.Or(f.Partition, to.partition))
	res := func(typ, id string) types.Resource {
		return types.Resource{Type: aws.String(typ), Id: aws.String(id), Partition: part, Region: aws.String(region)}
	}
	var out []types.Resource
	clusterArn := f.ClusterARN()
	if f.TaskARN != "" {
		r := res("AwsEcsTask", f.TaskARN)
		d := &types.AwsEcsTaskDetails{}
		if clusterArn != "" {
			d.ClusterArn = aws.String(clusterArn)
		}
		if f.TaskDefinitionARN != "" {
			d.TaskDefinitionArn = aws.String(f.TaskDefinitionARN)
		}
		if f.Service != "" {
			d.Group = aws.String("service:" + f.Service)
		}
		if d.ClusterArn != nil || d.TaskDefinitionArn != nil || d.Group != nil {
			r.Details = &types.ResourceDetails{AwsEcsTask: d}
		}
		out = append(out, r)
	}
	if clusterArn != "" {
		out = append(out, res("AwsEcsCluster", clusterArn))
		if f.Service != "" {
			out = append(out, res("AwsEcsService", strings.Replace(clusterArn, ":cluster/", ":service/", 1)+"/"+f.Service))
		}
	}
	if f.TaskDefinitionARN != "" {
		out = append(out, res("AwsEcsTaskDefinition", f.TaskDefinitionARN))
	}
	if typ, id := principal(f.Principal); id != "" {
		out = append(out, res(typ, id))
	}
	if len(out) == 0 {
		out = append(out, res("AwsAccount", "AWS::::Account:"+to.account))
	}
	return out[:min(len(out), maxResources)]
}

// principal turns a caller ARN into the IAM resource behind it: an
// assumed-role session into its role, a user into the user.
func principal(arn string) (typ, id string) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return "", ""
	}
	part, acct, res := parts[1], parts[4], parts[5]
	switch {
	case parts[2] == "sts" && strings.HasPrefix(res, "assumed-role/"):
		role, _, _ := strings.Cut(strings.TrimPrefix(res, "assumed-role/"), "/")
		return "AwsIamRole", "arn:" + part + ":iam::" + acct + ":role/" + role
	case parts[2] == "iam" && strings.HasPrefix(res, "role/"):
		return "AwsIamRole", arn
	case parts[2] == "iam" && strings.HasPrefix(res, "user/"):
		return "AwsIamUser", arn
	}
	return "", ""
}

// related references the GuardDuty findings among the evidence, by the
// ids GuardDuty imports them with into Security Hub; they are not
// imported again.
func (s *Sink) related(inc *pipeline.Incident, to target) []types.RelatedFinding {
	var out []types.RelatedFinding
	seen := map[string]bool{}
	f := incfield.Of(inc)
	region := cmp.Or(f.Region, to.region)
	for _, e := range inc.Events {
		if e.Source != pipeline.SourceGuardDuty || len(out) == maxRelated {
			continue
		}
		// A GuardDuty event id is the finding id and its version.
		id, _, _ := strings.Cut(e.ID, "@")
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		if !strings.HasPrefix(id, "arn:") {
			if det := s.detectors[cmp.Or(f.Account, to.account)+"/"+region]; det != "" {
				id = "arn:" + to.partition + ":guardduty:" + region + ":" + cmp.Or(f.Account, to.account) + ":detector/" + det + "/finding/" + id
			}
		}
		out = append(out, types.RelatedFinding{ProductArn: aws.String("arn:" + to.partition + ":securityhub:" + region + "::product/aws/guardduty"), Id: aws.String(id)})
	}
	return out
}

// productFields carry what ASFF has no field for: the rule, count and
// status, the ATT&CK ids, and the evidence timeline (a line per event, as
// many fields as it takes up to a bound, then how many more).
func productFields(inc *pipeline.Incident) map[string]string {
	pf := map[string]string{
		"ecscorr/Rule":   cut(inc.Rule, maxFieldValue),
		"ecscorr/Count":  strconv.Itoa(inc.Count),
		"ecscorr/Status": string(inc.Status),
	}
	if len(inc.Mitre) > 0 {
		pf["ecscorr/MitreTechniques"] = cut(strings.Join(inc.Mitre, ","), maxFieldValue)
	}
	if len(inc.Tags) > 0 {
		pf["ecscorr/Tags"] = cut(strings.Join(inc.Tags, ","), maxFieldValue)
	}
	if inc.ResolvedBy != nil {
		pf["ecscorr/ResolvedBy"] = cut(string(inc.ResolvedBy.Source)+" "+inc.ResolvedBy.Type+" "+inc.ResolvedBy.ID, maxFieldValue)
	}
	var b strings.Builder
	n, shown, size := 0, 0, 0 // fields done, lines shown, characters in b
	flush := func() {
		n++
		pf[fmt.Sprintf("ecscorr/Evidence/%02d", n)] = b.String()
		b.Reset()
		size = 0
	}
	add := func(line string) {
		if b.Len() > 0 {
			b.WriteByte('\n')
			size++
		}
		b.WriteString(line)
		size += utf8.RuneCountInString(line)
	}
	for _, e := range inc.Events {
		line := e.Time.UTC().Format(time.RFC3339) + " " + string(e.Source) + " " + e.Type + " " + e.ID
		if e.Step != "" {
			line += " (" + e.Step + ")"
		}
		line = cut(line, 500)
		if b.Len() > 0 && size+1+utf8.RuneCountInString(line) > maxFieldValue {
			if n == maxEvidenceFields-2 {
				break // the last field takes the rest of this one and the count
			}
			flush()
		}
		add(line)
		shown++
	}
	if more := len(inc.Events) - shown + inc.EventsDropped; more > 0 {
		tail := fmt.Sprintf("… and %d more", more)
		if size+1+utf8.RuneCountInString(tail) > maxFieldValue {
			flush()
		}
		add(tail)
	}
	if b.Len() > 0 {
		flush()
	}
	return pf
}
