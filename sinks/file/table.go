package file

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/ecscorr/ecscorr/pipeline"
)

// TableWidth is the width of the table (a terminal's, and what a
// responder pastes into a ticket).
const TableWidth = 120

// TableOptions shape the table.
type TableOptions struct {
	// Width is the narrow table's width (default TableWidth).
	Width int
	// Wide writes one line per incident with every column in full (title,
	// key, summary, remediation), as wide as they are.
	Wide bool
	// Explain, when set, gives lines written under each incident (why it
	// fired: replay --explain).
	Explain func(pipeline.Incident) []string
	// Keep leaves the incidents in the order given (cases order them);
	// otherwise they are sorted by severity, then first seen, then id.
	Keep bool
}

// tableHead is the narrow table's header; each incident is one line of
// these columns and its title below, indented, wrapped to TableWidth.
const tableHead = "SEVERITY  FIRST SEEN (UTC)     LAST SEEN  EVENTS  STATUS    RULE  KEY"

// titleIndent is where the title lines start.
const titleIndent = 10

// maxTitleLines bounds a title; a longer one is shortened in the middle,
// so that its end (often what it is about) stays.
const maxTitleLines = 3

// TableRows renders incs as the table's header and one block per incident
// (lines joined by "\n", no trailing newline), in the table's order.
func TableRows(incs []pipeline.Incident, o TableOptions) (header string, rows []string, order []pipeline.Incident) {
	order = slices.Clone(incs)
	if !o.Keep {
		slices.SortStableFunc(order, func(a, b pipeline.Incident) int {
			return cmp.Or(cmp.Compare(b.Severity, a.Severity), a.FirstSeen.Compare(b.FirstSeen), cmp.Compare(a.ID, b.ID))
		})
	}
	if o.Wide {
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEVERITY\tFIRST SEEN (UTC)\tLAST SEEN (UTC)\tRULE\tKEY\tEVENTS\tSTATUS\tTITLE\tSUMMARY\tREMEDIATION")
		for _, inc := range order {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", strings.ToUpper(inc.Severity.String()),
				inc.FirstSeen.UTC().Format("2006-01-02 15:04:05"), inc.LastSeen.UTC().Format("2006-01-02 15:04:05"),
				inc.Rule, KeyString(inc.Key), len(inc.Events)+inc.EventsDropped, inc.Status,
				oneLine(inc.Title), oneLine(inc.Summary), oneLine(inc.Remediation))
		}
		tw.Flush()
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		rows = lines[1:]
		if o.Explain != nil {
			for i, inc := range order {
				for _, l := range o.Explain(inc) {
					rows[i] += "\n" + strings.Repeat(" ", titleIndent) + l
				}
			}
		}
		return lines[0], rows, order
	}
	width := o.Width
	if width <= 0 {
		width = TableWidth
	}
	for _, inc := range order {
		last := inc.LastSeen.UTC().Format("15:04:05")
		if inc.LastSeen.UTC().Format("2006-01-02") != inc.FirstSeen.UTC().Format("2006-01-02") {
			last = inc.LastSeen.UTC().Format("01-02 15:04")
		}
		if inc.LastSeen.IsZero() {
			last = "-"
		}
		head := fmt.Sprintf("%-8s  %-19s  %-9s  %6d  %-8s  ", strings.ToUpper(inc.Severity.String()),
			inc.FirstSeen.UTC().Format("2006-01-02 15:04:05"), last, len(inc.Events)+inc.EventsDropped, inc.Status)
		// The rule in full; the key (its task is also in most titles) in
		// what is left, shortened in the middle.
		rest := width - utf8.RuneCountInString(head) - utf8.RuneCountInString(inc.Rule) - 2
		var b strings.Builder
		b.WriteString(head)
		b.WriteString(inc.Rule)
		if k := KeyString(inc.Key); k != "" && rest >= 12 {
			b.WriteString("  " + ShortenMiddle(k, rest))
		}
		for _, l := range Wrap(oneLine(inc.Title), width-titleIndent, maxTitleLines) {
			b.WriteString("\n" + strings.Repeat(" ", titleIndent) + l)
		}
		if o.Explain != nil {
			for _, l := range o.Explain(inc) {
				// Continuation lines of one explanation line indent further.
				for j, w := range Wrap(l, width-titleIndent-4, maxTitleLines) {
					pad := titleIndent
					if j > 0 {
						pad += 4
					}
					b.WriteString("\n" + strings.Repeat(" ", pad) + w)
				}
			}
		}
		rows = append(rows, b.String())
	}
	return tableHead, rows, order
}

// WriteTableOpts writes the table of incs.
func WriteTableOpts(w io.Writer, incs []pipeline.Incident, o TableOptions) error {
	if len(incs) == 0 {
		_, err := fmt.Fprintln(w, "no incidents")
		return err
	}
	head, rows, _ := TableRows(incs, o)
	var b strings.Builder
	b.WriteString(head + "\n")
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ShortenMiddle returns s, or when it is longer than n runes its start and
// its end around "…", n runes in all.
func ShortenMiddle(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 1 {
		return s
	}
	if n < 5 {
		return string(r[:n])
	}
	head := (n - 1) / 2
	tail := n - 1 - head
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// Wrap breaks s into lines of at most width runes at spaces (a word
// longer than a line is cut where the line ends). When that takes more
// than maxLines lines, the text is shortened in the middle first, so that
// the lines keep its start and its end.
func Wrap(s string, width, maxLines int) []string {
	lines := wrap(s, width)
	if maxLines <= 0 || len(lines) <= maxLines {
		return lines
	}
	// Shorten by what does not fit, then again if breaking at spaces
	// still needs an extra line.
	n := utf8.RuneCountInString(s)
	for budget := width * maxLines; budget > width; budget -= width / 4 {
		lines = wrap(ShortenMiddle(s, min(n, budget)), width)
		if len(lines) <= maxLines {
			return lines
		}
	}
	return wrap(ShortenMiddle(s, width), width)
}

func wrap(s string, width int) []string {
	var lines []string
	var cur []rune
	for _, word := range strings.Fields(s) {
		w := []rune(word)
		for len(w) > 0 {
			switch {
			case len(cur) == 0 && len(w) <= width:
				cur, w = append(cur, w...), nil
			case len(cur) > 0 && len(cur)+1+len(w) <= width:
				cur = append(append(cur, ' '), w...)
				w = nil
			case len(cur) > 0:
				lines, cur = append(lines, string(cur)), nil
			default: // a word longer than a line
				lines, w = append(lines, string(w[:width])), w[width:]
			}
		}
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	return lines
}
