package cases

import "strings"

// Tactics in ATT&CK's kill-chain order; a case lists the ones it covers in
// this order. stealth and defense-impairment are the two tactics ATT&CK v18
// split defense-evasion into; the Sigma rules use them, the pack still tags
// the older techniques (T1562), which map to defense-evasion.
var tacticOrder = []string{
	"reconnaissance", "resource-development", "initial-access", "execution", "persistence",
	"privilege-escalation", "defense-evasion", "stealth", "defense-impairment", "credential-access",
	"discovery", "lateral-movement", "collection", "command-and-control", "exfiltration", "impact",
}

// techniqueTactics maps the techniques the built-in pack and the bundled
// Sigma rules use (rules/builtin, correlate/sigma/testdata) to their
// tactics. A sub-technique not listed takes its parent's tactics; a
// technique not listed covers no tactic (it is still listed in
// Case.Techniques).
var techniqueTactics = map[string][]string{
	"T1003": {"credential-access"},
	"T1005": {"collection"},
	"T1020": {"exfiltration"},
	"T1021": {"lateral-movement"},
	"T1046": {"discovery"},
	"T1059": {"execution"},
	"T1070": {"defense-evasion"},
	"T1071": {"command-and-control"},
	"T1078": {"defense-evasion", "persistence", "privilege-escalation", "initial-access"},
	"T1087": {"discovery"},
	"T1098": {"persistence", "privilege-escalation"},
	"T1105": {"command-and-control"},
	"T1110": {"credential-access"},
	"T1136": {"persistence"},
	"T1190": {"initial-access"},
	"T1204": {"execution"},
	"T1211": {"defense-evasion"},
	"T1485": {"impact"},
	"T1486": {"impact"},
	"T1490": {"impact"},
	"T1496": {"impact"},
	"T1525": {"persistence"},
	"T1531": {"impact"},
	"T1537": {"exfiltration"},
	"T1548": {"privilege-escalation", "defense-evasion"},
	"T1550": {"defense-evasion", "lateral-movement"},
	"T1552": {"credential-access"},
	"T1555": {"credential-access"},
	"T1556": {"credential-access", "defense-evasion", "persistence"},
	"T1560": {"collection"},
	"T1562": {"defense-evasion"},
	"T1565": {"impact"},
	"T1566": {"initial-access"},
	"T1580": {"discovery"},
	"T1608": {"resource-development"},
	"T1609": {"execution"},
	"T1610": {"defense-evasion", "execution"},
	"T1611": {"privilege-escalation"},
	"T1612": {"defense-evasion"},
	"T1613": {"discovery"},
	"T1619": {"discovery"},
	// ATT&CK v18 techniques, tagged so by the Sigma rules that use them.
	"T1685": {"defense-impairment"},
	"T1686": {"defense-impairment"},
}

// TacticsOf returns the tactics of a technique id ("T1059.004" → execution),
// nil when the table does not know it.
func TacticsOf(technique string) []string {
	t := strings.ToUpper(strings.TrimSpace(technique))
	if ts, ok := techniqueTactics[t]; ok {
		return ts
	}
	if i := strings.IndexByte(t, '.'); i > 0 {
		return techniqueTactics[t[:i]]
	}
	return nil
}

// tacticFromTag reads a Sigma-style tactic tag ("attack.persistence").
func tacticFromTag(tag string) (string, bool) {
	name, ok := strings.CutPrefix(strings.ToLower(tag), "attack.")
	if !ok {
		return "", false
	}
	name = strings.ReplaceAll(name, "_", "-")
	for _, t := range tacticOrder {
		if t == name {
			return t, true
		}
	}
	return "", false
}
