package slack

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/internal/incfield"
)

// Block Kit limits Slack enforces (it refuses a message over any of them
// with invalid_blocks).
const (
	maxBlocks      = 50
	maxSectionText = 3000
	maxHeaderText  = 150
	maxFields      = 10
	maxFieldText   = 2000
	maxBlockID     = 255
	// maxFallback keeps the notification text short; Slack allows 40,000.
	maxFallback = 3000
	// maxLine bounds one evidence line so one long event type cannot use
	// the whole section.
	maxLine = 300
)

// message is a chat.postMessage / webhook payload.
type message struct {
	Channel        string  `json:"channel,omitempty"`
	TS             string  `json:"ts,omitempty"` // chat.update
	ThreadTS       string  `json:"thread_ts,omitempty"`
	ReplyBroadcast bool    `json:"reply_broadcast,omitempty"`
	Text           string  `json:"text"`
	Blocks         []block `json:"blocks"`
	UnfurlLinks    *bool   `json:"unfurl_links,omitempty"`
}

type block struct {
	Type     string `json:"type"`
	BlockID  string `json:"block_id,omitempty"`
	Text     *text  `json:"text,omitempty"`
	Fields   []text `json:"fields,omitempty"`
	Elements []text `json:"elements,omitempty"`
}

type text struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

func mrkdwn(s string) text { return text{Type: "mrkdwn", Text: s} }

func section(s string) block { t := mrkdwn(s); return block{Type: "section", Text: &t} }

// escape makes s literal in mrkdwn: Slack wants &, < and > as entities.
func escape(s string) string {
	return mrkdwnEscaper.Replace(s)
}

var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// length is how long Slack may count s: in UTF-16 units, which are never
// fewer than characters, so a text within a limit either way is within it
// (an emoji outside the BMP counts twice).
func length(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// fit escapes raw for mrkdwn (or, with plain, leaves it as it is) and cuts
// it to at most max in length, ending in "…" when cut; an entity is never
// split.
func fit(raw string, max int, plain bool) string {
	out := raw
	if !plain {
		out = escape(raw)
	}
	if length(out) <= max {
		return out
	}
	var b strings.Builder
	n := 0
	for _, r := range raw {
		piece := string(r)
		if !plain {
			piece = escape(piece)
		}
		if n+length(piece) > max-1 {
			break
		}
		b.WriteString(piece)
		n += length(piece)
	}
	b.WriteString("…")
	return b.String()
}

var severityEmoji = map[pipeline.Severity]string{
	pipeline.SeverityCritical:      "🔴",
	pipeline.SeverityHigh:          "🟠",
	pipeline.SeverityMedium:        "🟡",
	pipeline.SeverityLow:           "🔵",
	pipeline.SeverityInformational: "⚪",
}

func sevLabel(s pipeline.Severity) string { return strings.ToUpper(s.String()) }

// headerText is the first line a responder sees on a phone.
func headerText(inc *pipeline.Incident) string {
	h := severityEmoji[inc.Severity] + " " + sevLabel(inc.Severity) + ": " + inc.Title
	if inc.Status == pipeline.IncidentResolved {
		h = "✅ RESOLVED (" + strings.ToLower(sevLabel(inc.Severity)) + "): " + inc.Title
	}
	return strings.TrimSpace(h)
}

const evTime = "01-02 15:04:05"

// entityKeys are the key names the message shows under their own labels.
var entityKeys = map[string]bool{
	"task_arn": true, "service": true, "cluster": true, "account": true, "region": true, "principal": true,
	"task_definition_arn": true, "container_id": true,
}

// alertBlocks is the full message of an incident in its current state:
// the first post, and what chat.update turns it into.
func alertBlocks(inc *pipeline.Incident, maxEvidence int) (string, []block) {
	f := incfield.Of(inc)
	blocks := []block{{Type: "header", BlockID: blockID("inc:", inc.ID), Text: &text{Type: "plain_text", Text: fit(headerText(inc), maxHeaderText, true), Emoji: true}}}

	var fields []text
	add := func(name, val string, code bool) {
		if val == "" || len(fields) == maxFields {
			return
		}
		v := fit(val, maxFieldText-len(name)-8, false)
		if code {
			v = "`" + v + "`"
		}
		fields = append(fields, mrkdwn("*"+name+"*\n"+v))
	}
	status := string(inc.Status)
	if inc.Status == pipeline.IncidentResolved && inc.ResolvedAt != nil {
		status += " " + utc(*inc.ResolvedAt)
	}
	add("Severity", sevLabel(inc.Severity), false)
	add("Status", status, false)
	add("Task", cmp.Or(f.TaskID, f.TaskARN), true)
	add("Service", f.Service, false)
	add("Cluster", f.Cluster, false)
	add("Account", f.Account, false)
	add("Region", f.Region, false)
	add("Principal", f.Principal, true)
	// The rest of the key (a rule's own by names, a Sigma correlation's
	// group-by fields such as userIdentity.arn): what the incident is about.
	var rest []string
	for k, v := range inc.Key {
		if v != "" && !entityKeys[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		if len(fields) < maxFields-1 { // keep room for Seen
			add(k, inc.Key[k], true)
		}
	}
	seen := fmt.Sprintf("%d× %s → %s", inc.Count, utc(inc.FirstSeen), utc(inc.LastSeen))
	add("Seen", seen, false)
	if len(fields) > 0 {
		blocks = append(blocks, block{Type: "section", Fields: fields})
	}
	if inc.Summary != "" {
		blocks = append(blocks, section(fit(inc.Summary, maxSectionText, false)))
	}
	if ev := evidenceText("*Evidence* (UTC)", inc.Events, inc.EventsDropped, maxEvidence); ev != "" {
		blocks = append(blocks, section(ev))
	}
	if len(inc.Mitre) > 0 {
		blocks = append(blocks, section(fitList("*MITRE ATT&amp;CK* ", mitreLinks(inc.Mitre), maxSectionText)))
	}
	if inc.Remediation != "" {
		const pre, post = "*Remediation*\n```", "```"
		blocks = append(blocks, section(pre+fit(inc.Remediation, maxSectionText-len(pre)-len(post), false)+post))
	}
	ctx := []text{mrkdwn(fit("rule `"+inc.Rule+"` · incident `"+inc.ID+"`", maxFieldText, false))}
	if strings.HasPrefix(inc.Runbook, "https://") || strings.HasPrefix(inc.Runbook, "http://") {
		ctx = append(ctx, mrkdwn("<"+escape(inc.Runbook)+"|runbook>"))
	}
	blocks = append(blocks, block{Type: "context", Elements: ctx})
	return fallback(inc, f), capBlocks(blocks)
}

// fallback is the notification text (and what clients without Block Kit
// show).
func fallback(inc *pipeline.Incident, f incfield.Fields) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s (%s)", sevLabel(inc.Severity), inc.Title, inc.Status)
	for _, kv := range [][2]string{{"task", cmp.Or(f.TaskID, f.TaskARN)}, {"cluster", f.Cluster}, {"account", f.Account}, {"region", f.Region}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	return fit(b.String(), maxFallback, false)
}

// evidenceText lists events, one line each, oldest first, as many as fit
// in a section (and at most max); the rest, with the evidence the engine
// dropped, are counted in a last "and N more" line.
func evidenceText(title string, evs []pipeline.EventRef, dropped, max int) string {
	if len(evs) == 0 && dropped == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(title)
	shown := 0
	for _, e := range evs {
		line := "\n`" + e.Time.UTC().Format(evTime) + "` *" + string(e.Source) + "* " + fit(evWhat(e), maxLine, false)
		more := len(evs) - shown - 1 + dropped
		// Room for this line and, if any remain after it, the tail.
		need := length(line)
		if more > 0 {
			need += length(moreLine(more))
		}
		if shown == max || length(b.String())+need > maxSectionText {
			break
		}
		b.WriteString(line)
		shown++
	}
	if more := len(evs) - shown + dropped; more > 0 {
		b.WriteString(moreLine(more))
	}
	return b.String()
}

func moreLine(n int) string { return fmt.Sprintf("\n_… and %d more_", n) }

func evWhat(e pipeline.EventRef) string {
	if e.Step != "" {
		return e.Type + " (" + e.Step + ")"
	}
	return e.Type
}

var mitreID = regexp.MustCompile(`^T\d{4}(\.\d{3})?$`)

// mitreLinks links each technique id to its ATT&CK page.
func mitreLinks(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if !mitreID.MatchString(id) {
			out[i] = escape(id)
			continue
		}
		out[i] = "<https://attack.mitre.org/techniques/" + strings.Replace(id, ".", "/", 1) + "/|" + id + ">"
	}
	return out
}

// fitList joins items after prefix, as many as fit in max.
func fitList(prefix string, items []string, max int) string {
	s := prefix
	for i, it := range items {
		sep := ""
		if i > 0 {
			sep = ", "
		}
		tail := ""
		if rest := len(items) - i - 1; rest > 0 {
			tail = moreLine(rest)
		}
		if length(s+sep+it+tail) > max {
			return s + moreLine(len(items)-i)
		}
		s += sep + it
	}
	return s
}

// capBlocks keeps a message within the block limit, the context last.
func capBlocks(bs []block) []block {
	if len(bs) <= maxBlocks {
		return bs
	}
	return append(bs[:maxBlocks-1], bs[len(bs)-1])
}

// updateBlocks is the short follow-up of a change: what changed since prev
// was posted, and the evidence that came since.
func updateBlocks(inc *pipeline.Incident, prev *posted, maxEvidence int) (string, []block) {
	var what []string
	if inc.Severity != prev.Severity {
		what = append(what, fmt.Sprintf("severity %s → *%s*", sevLabel(prev.Severity), sevLabel(inc.Severity)))
	}
	if inc.Status != prev.Status {
		s := "*" + string(inc.Status) + "*"
		if inc.Status == pipeline.IncidentResolved && inc.ResolvedBy != nil {
			s += " by " + escape(string(inc.ResolvedBy.Source)+" "+inc.ResolvedBy.Type)
		}
		what = append(what, "status "+s)
	}
	what = append(what, fmt.Sprintf("count %d", inc.Count), "last seen "+utc(inc.LastSeen))
	head := severityEmoji[inc.Severity] + " *Update*: " + strings.Join(what, " · ")
	if inc.Status == pipeline.IncidentResolved {
		head = "✅ *Resolved*: " + strings.Join(what, " · ")
	}
	blocks := []block{section(fit(head, maxSectionText, true))}
	blocks[0].BlockID = blockID("upd:", inc.ID)
	var fresh []pipeline.EventRef
	for _, e := range inc.Events {
		if e.Time.After(prev.At) {
			fresh = append(fresh, e)
		}
	}
	if ev := evidenceText("*New evidence* (UTC)", fresh, 0, min(maxEvidence, 5)); ev != "" {
		blocks = append(blocks, section(ev))
	}
	blocks = append(blocks, block{Type: "context", Elements: []text{mrkdwn(fit(inc.Title+" · incident `"+inc.ID+"`", maxFieldText, false))}})
	fb := fmt.Sprintf("Update [%s] %s (%s): count %d", sevLabel(inc.Severity), inc.Title, inc.Status, inc.Count)
	return fit(fb, maxFallback, false), blocks
}

// blockID names a block after its incident, within Slack's 255 bytes.
func blockID(prefix, id string) string {
	b := prefix + id
	if len(b) > maxBlockID {
		b = b[:maxBlockID]
	}
	return b
}

// utc is a time in the message's format.
func utc(t time.Time) string { return t.UTC().Format(evTime) + "Z" }
