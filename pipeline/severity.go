package pipeline

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Severity is the normalised severity of events and incidents, ordered.
type Severity uint8

const (
	SeverityUnknown Severity = iota
	SeverityInformational
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"unknown", "informational", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", s)
}

// ParseSeverity accepts the names above in any case, plus "info".
func ParseSeverity(s string) (Severity, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	if l == "info" {
		return SeverityInformational, nil
	}
	for i, n := range severityNames {
		if i > 0 && n == l {
			return Severity(i), nil
		}
	}
	return SeverityUnknown, fmt.Errorf("unknown severity %q (want informational, low, medium, high or critical)", s)
}

func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

func (s *Severity) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("severity: %w", err)
	}
	if str == "unknown" || str == "" {
		*s = SeverityUnknown
		return nil
	}
	v, err := ParseSeverity(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// GuardDutySeverity maps GuardDuty's numeric severity: 9+ critical, 7+ high,
// 4+ medium, 1+ low, below that informational.
func GuardDutySeverity(v float64) Severity {
	switch {
	case v >= 9:
		return SeverityCritical
	case v >= 7:
		return SeverityHigh
	case v >= 4:
		return SeverityMedium
	case v >= 1:
		return SeverityLow
	default:
		return SeverityInformational
	}
}

// FalcoSeverity maps Falco priorities (JSON "Warning" or gRPC "WARNING").
func FalcoSeverity(priority string) Severity {
	switch strings.ToLower(priority) {
	case "emergency", "alert", "critical":
		return SeverityCritical
	case "error":
		return SeverityHigh
	case "warning":
		return SeverityMedium
	case "notice":
		return SeverityLow
	case "informational", "info", "debug":
		return SeverityInformational
	}
	return SeverityUnknown
}
