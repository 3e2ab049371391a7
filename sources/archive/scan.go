package archive

import (
	"bytes"
	"encoding/binary"
	"io"

	"github.com/ecscorr/ecscorr/pipeline/format"
)

// strSpecial marks the bytes that end a run of plain string content.
var strSpecial = [256]bool{'"': true, '\\': true, '\n': true}

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// hasStrSpecial reports whether any of the 8 bytes in x is '"', '\\' or
// '\n' (the classic SWAR zero-byte test on x XOR each pattern).
func hasStrSpecial(x uint64) bool {
	q := x ^ (lo8 * '"')
	b := x ^ (lo8 * '\\')
	n := x ^ (lo8 * '\n')
	return ((q-lo8)&^q|(b-lo8)&^b|(n-lo8)&^n)&hi8 != 0
}

// scanner cuts a byte stream into top-level JSON values without decoding
// them. It holds at most about max bytes of one value in memory: a longer
// value is consumed and dropped (valTooLarge). It counts lines so that
// errors can name them.
type scanner struct {
	r    io.Reader
	buf  []byte
	s, e int // unread data is buf[s:e]
	line int // 1-based line of buf[s]
	max  int
	err  error // sticky read error; io.EOF at the end
	// The open brackets of the value being scanned, what each expects
	// next and the indentation of its lines (see value).
	stack   []byte
	states  []uint8
	indents []int32
	// cutAtLine says the last value cut (valBroken) was cut at a line break.
	cutAtLine bool
	// nl and col: see skipWS.
	nl  bool
	col int
	// sample keeps the head of a value dropped for being too large.
	sample []byte
}

type valStatus int

const (
	valOK       valStatus = iota
	valTooLarge           // longer than max; consumed and dropped
	valBroken             // cut at a newline where the value cannot go on
	valEOF                // stream ended (or failed) inside the value
	// valHuge: an object longer than max, left unread for the caller to
	// stream member by member (only when asked to).
	valHuge
)

const (
	initialBuf = 512 << 10
	readChunk  = 64 << 10
	sampleLen  = format.SampleLen
)

// newScanner reads r; buf, if not nil, is a spare buffer to reuse.
func newScanner(r io.Reader, max int, buf []byte) *scanner {
	if cap(buf) < readChunk {
		n := initialBuf
		if max+readChunk < n {
			n = max + readChunk
		}
		buf = make([]byte, n)
	}
	return &scanner{r: r, buf: buf[:cap(buf)], line: 1, max: max}
}

// fill reads more data after buf[e], moving or growing the buffer as
// needed. It reports false when nothing more can be read.
func (sc *scanner) fill() bool {
	if sc.err != nil {
		return false
	}
	if sc.s == sc.e {
		sc.s, sc.e = 0, 0
	}
	if len(sc.buf)-sc.e < readChunk/4 {
		if sc.s > 0 {
			n := copy(sc.buf, sc.buf[sc.s:sc.e])
			sc.s, sc.e = 0, n
		}
		if len(sc.buf)-sc.e < readChunk/4 {
			// Grow geometrically, but never much past what one value may use.
			n := min(2*len(sc.buf)+readChunk, sc.max+2*readChunk)
			n = max(n, sc.e-sc.s+readChunk)
			nb := make([]byte, n)
			copy(nb, sc.buf[sc.s:sc.e])
			sc.e -= sc.s
			sc.s = 0
			sc.buf = nb
		}
	}
	for tries := 0; tries < 100; tries++ {
		n, err := sc.r.Read(sc.buf[sc.e:])
		sc.e += n
		if err != nil {
			sc.err = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	sc.err = io.ErrNoProgress
	return false
}

// skipWS skips whitespace (and a UTF-8 byte order mark) and reports
// whether a byte is available. nl says whether it crossed a line break,
// and then col is the column of the next byte.
func (sc *scanner) skipWS() bool {
	sc.nl = false
	for {
		for sc.s < sc.e {
			switch sc.buf[sc.s] {
			case '\n':
				sc.line++
				sc.nl, sc.col = true, -1
			case ' ', '\t', '\r':
				sc.col++
			case 0xEF:
				if sc.e-sc.s >= 3 && sc.buf[sc.s+1] == 0xBB && sc.buf[sc.s+2] == 0xBF {
					sc.s += 2
				} else {
					return true
				}
			default:
				return true
			}
			sc.s++
		}
		if !sc.fill() {
			return false
		}
	}
}

// peek returns the next byte; skipWS must have reported true.
func (sc *scanner) peek() byte { return sc.buf[sc.s] }

// ensure tries to have n bytes buffered.
func (sc *scanner) ensure(n int) bool {
	for sc.e-sc.s < n {
		if !sc.fill() {
			return false
		}
	}
	return true
}

// skipLine drops the rest of the current line (the newline stays) and
// returns its head, for error samples.
func (sc *scanner) skipLine() []byte {
	var head []byte
	for {
		i := bytes.IndexByte(sc.buf[sc.s:sc.e], '\n')
		end := sc.e
		if i >= 0 {
			end = sc.s + i
		}
		if len(head) < sampleLen {
			head = append(head, sc.buf[sc.s:min(end, sc.s+sampleLen-len(head))]...)
		}
		sc.s = end
		if i >= 0 || !sc.fill() {
			return head
		}
	}
}

// restOfLineBlank reports whether only whitespace follows on this line.
func (sc *scanner) restOfLineBlank() bool {
	for {
		for i := sc.s; i < sc.e; i++ {
			switch sc.buf[i] {
			case '\n':
				return true
			case ' ', '\t', '\r':
			default:
				return false
			}
		}
		// Only whitespace buffered: look further (bounded by the buffer).
		if sc.e-sc.s > readChunk || !sc.fill() {
			return true
		}
	}
}

// nextLine returns the next non-blank line (without its newline and
// trailing whitespace) in line mode. The slice aliases the buffer. With
// stream, a line longer than max that starts an object is left unread
// (valHuge).
func (sc *scanner) nextLine(stream bool) (b []byte, line int, st valStatus) {
	line = sc.line
	from := 0
	for {
		i := bytes.IndexByte(sc.buf[sc.s+from:sc.e], '\n')
		if i >= 0 {
			end := sc.s + from + i
			if stream && end-sc.s > sc.max && sc.buf[sc.s] == '{' {
				return nil, line, valHuge
			}
			b = bytes.TrimRight(sc.buf[sc.s:end], " \t\r")
			sc.s = end
			return b, line, valOK
		}
		from = sc.e - sc.s
		if from > sc.max {
			if stream && sc.buf[sc.s] == '{' {
				return nil, line, valHuge
			}
			sc.sample = append(sc.sample[:0], sc.buf[sc.s:sc.s+min(from, sampleLen)]...)
			sc.skipLine()
			return nil, line, valTooLarge
		}
		if !sc.fill() {
			b = bytes.TrimRight(sc.buf[sc.s:sc.e], " \t\r")
			sc.s = sc.e
			if sc.err != io.EOF {
				return b, line, valEOF
			}
			return b, line, valOK
		}
	}
}

// Frame states of value's bracket tracking: what may come next.
const (
	stKey   uint8 = iota // an object member name (or '}')
	stColon              // ':' after a member name
	stValue              // a value (or ']' right after '[')
	stNext               // ',' or the closing bracket
)

// Frame indentation: the column of the first line of a frame's contents
// once known, else one of these.
const (
	indentNone    = -2 // nothing inside the frame yet
	indentCompact = -1 // its contents start on its opening line
)

// value consumes the JSON value that starts at the next byte ('{' or '[')
// and returns it (aliasing the buffer, valid until the next call) with the
// line it starts on. It balances brackets and strings and tracks what may
// come next in each; full validation is the decoder's job.
//
// A record cut short (a truncated line or copy) must not swallow the next
// record, so a value is cut (valBroken, the rest left unread) where no
// value can go on:
//   - a raw newline inside a string;
//   - a '{' or '[' where no value may start (after a member, instead of a
//     member name): the next record;
//   - a line that starts below the indentation of the frame it would be
//     in (pretty-printed input: formatters indent every level deeper), or
//     below its parent's when it is the frame's first line;
//   - a '{' or '[' at column 0, unless it is an element of an array of a
//     pretty-printed value (Python's indent=0): formatters never put a
//     member's value flush left, so this is the next record of a JSON
//     lines file after a damaged one.
//
// After a cut, cutAtLine says whether the cut fell at a line break.
// With stream, an object longer than max is left unread (valHuge) for the
// caller to stream.
func (sc *scanner) value(stream bool) (v []byte, line int, st valStatus) {
	line = sc.line
	sc.stack = sc.stack[:0]
	sc.states = sc.states[:0]
	sc.indents = sc.indents[:0]
	sc.cutAtLine = false
	// p is the absolute scan position in buf; the value starts at sc.s.
	// Locals keep the hot loop in registers; they are reloaded after fill,
	// which may move the data.
	p := sc.s
	buf := sc.buf[:sc.e]
	dropping := false
	inStr := false
	for {
		if p >= len(buf) {
			if !dropping && p-sc.s > sc.max {
				if stream && sc.buf[sc.s] == '{' {
					sc.line = line
					return nil, line, valHuge
				}
				dropping = true
				sc.sample = append(sc.sample[:0], sc.buf[sc.s:sc.s+min(p-sc.s, sampleLen)]...)
			}
			if dropping {
				sc.s = p
			}
			i := p - sc.s
			if !sc.fill() {
				v = sc.buf[sc.s : sc.s+i]
				sc.s += i
				return v, line, valEOF
			}
			buf, p = sc.buf[:sc.e], sc.s+i
			continue
		}
		if inStr {
			// Strings are short in logs: 8 bytes at a time, then a table,
			// beats calls to bytes.IndexByte here.
			for p+8 <= len(buf) && !hasStrSpecial(binary.LittleEndian.Uint64(buf[p:])) {
				p += 8
			}
			for p < len(buf) && !strSpecial[buf[p]] {
				p++
			}
			if p >= len(buf) {
				continue
			}
			switch buf[p] {
			case '"':
				inStr = false
				p++
			case '\\':
				if p+1 >= len(buf) {
					// The escaped byte is not read yet.
					i := p - sc.s
					if !sc.fill() {
						v = sc.buf[sc.s : sc.s+i]
						sc.s += i
						return v, line, valEOF
					}
					buf, p = sc.buf[:sc.e], sc.s+i
					continue
				}
				if buf[p+1] == '\n' {
					// A newline cannot be escaped either.
					sc.cutAtLine = true
					return sc.cut(p+1-sc.s, line, dropping)
				}
				p += 2
			default: // a raw newline cannot be inside a JSON string
				sc.cutAtLine = true
				return sc.cut(p-sc.s, line, dropping)
			}
			continue
		}
		c := buf[p]
		n := len(sc.stack) - 1 // the innermost frame, -1 before the value starts
		if n >= 0 && sc.indents[n] == indentNone && c > ' ' {
			sc.indents[n] = indentCompact
		}
		switch c {
		case '"':
			inStr = true
			if n >= 0 {
				if sc.stack[n] == '{' && sc.states[n] == stKey {
					sc.states[n] = stColon
				} else {
					sc.states[n] = stNext
				}
			}
		case '{', '[':
			if n >= 0 && sc.states[n] != stValue {
				// Where no value may start: the next record.
				return sc.cut(p-sc.s, line, dropping)
			}
			if n >= 0 {
				sc.states[n] = stNext
			}
			sc.stack = append(sc.stack, c)
			if c == '{' {
				sc.states = append(sc.states, stKey)
			} else {
				sc.states = append(sc.states, stValue)
			}
			sc.indents = append(sc.indents, indentNone)
		case '}', ']':
			if n < 0 || sc.stack[n] != c-2 { // '}'-2 is '{', ']'-2 is '['
				// Closes what the value did not open: the value was cut
				// short and this closes the array around it.
				return sc.cut(p-sc.s, line, dropping)
			}
			sc.stack = sc.stack[:n]
			sc.states = sc.states[:n]
			sc.indents = sc.indents[:n]
			if n == 0 {
				p++
				if stream && !dropping && p-sc.s > sc.max && sc.buf[sc.s] == '{' {
					// Buffered whole thanks to the buffer's slack, but over
					// the limit all the same: stream it like a longer one.
					sc.line = line
					return nil, line, valHuge
				}
				v = sc.buf[sc.s:p]
				sc.s = p
				if dropping {
					return nil, line, valTooLarge
				}
				return v, line, valOK
			}
			sc.states[n-1] = stNext
		case ':':
			sc.states[n] = stValue
		case ',':
			if sc.stack[n] == '{' {
				sc.states[n] = stKey
			} else {
				sc.states[n] = stValue
			}
		case ' ', '\t', '\r':
		case '\n':
			// Look at how the next line starts.
			q := p + 1
			for {
				for q < len(buf) && (buf[q] == ' ' || buf[q] == '\t' || buf[q] == '\r') {
					q++
				}
				if q < len(buf) || q-p > readChunk/2 {
					break
				}
				i, j := p-sc.s, q-sc.s
				if !sc.fill() {
					break
				}
				buf, p, q = sc.buf[:sc.e], sc.s+i, sc.s+j
			}
			if q < len(buf) && sc.lineBreaks(buf[q], q-p-1) {
				sc.cutAtLine = true
				return sc.cut(p-sc.s, line, dropping)
			}
			sc.line++
		default:
			if n >= 0 && sc.states[n] == stValue {
				sc.states[n] = stNext
			}
		}
		p++
	}
}

// cut ends a damaged value before offset i (left unread).
func (sc *scanner) cut(i, line int, dropping bool) ([]byte, int, valStatus) {
	v := sc.buf[sc.s : sc.s+i]
	if dropping {
		v = sc.sample
	}
	sc.s += i
	return v, line, valBroken
}

// lineBreaks reports whether a line inside a value that starts with c at
// column col cannot belong to it (see value).
func (sc *scanner) lineBreaks(c byte, col int) bool {
	if c == '}' || c == ']' {
		return false
	}
	n := len(sc.stack) - 1
	// Lines are never shallower than the innermost known indentation
	// around them (for a frame's first line: its parent's).
	first := sc.indents[n] == indentNone
	from := n
	if first {
		from = n - 1
	}
	for i := from; i >= 0; i-- {
		if ind := sc.indents[i]; ind >= 0 {
			if col < int(ind) {
				return true
			}
			break
		}
	}
	if first {
		sc.indents[n] = int32(col)
	}
	if col == 0 && (c == '{' || c == '[') {
		inArray := sc.stack[n] == '[' && sc.states[n] == stValue
		return !inArray || sc.indents[0] == indentCompact
	}
	return false
}

// startsWithRecords reports whether the next value is an object whose
// first member is "Records" holding an array (the CloudTrail S3 object
// layout), which is streamed without trying to hold it whole.
func (sc *scanner) startsWithRecords() bool {
	sc.ensure(128)
	b := sc.buf[sc.s:sc.e]
	j := 0
	ws := func() {
		for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\r' || b[j] == '\n') {
			j++
		}
	}
	if j >= len(b) || b[j] != '{' {
		return false
	}
	j++
	ws()
	if !bytes.HasPrefix(b[j:], []byte(`"Records"`)) {
		return false
	}
	j += len(`"Records"`)
	ws()
	if j >= len(b) || b[j] != ':' {
		return false
	}
	j++
	ws()
	return j < len(b) && b[j] == '['
}

// scalar consumes the string, number or literal that starts at the next
// byte and returns it (aliasing the buffer). A string longer than max is
// consumed and dropped (valTooLarge); a raw newline in a string cuts it
// (valBroken).
func (sc *scanner) scalar() (v []byte, st valStatus) {
	p := sc.s
	if sc.buf[p] != '"' {
		// A number or literal ends at a delimiter; it is short.
		for {
			for p < sc.e {
				switch sc.buf[p] {
				case ',', '}', ']', ' ', '\t', '\r', '\n', ':', '"', '{', '[':
					v = sc.buf[sc.s:p]
					sc.s = p
					return v, valOK
				}
				p++
				if p-sc.s > sampleLen {
					// Not a JSON scalar: let the caller reject it.
					v = sc.buf[sc.s:p]
					sc.s = p
					return v, valBroken
				}
			}
			i := p - sc.s
			if !sc.fill() {
				v = sc.buf[sc.s : sc.s+i]
				sc.s += i
				return v, valEOF
			}
			p = sc.s + i
		}
	}
	p++
	dropping := false
	for {
		for p < sc.e && !strSpecial[sc.buf[p]] {
			p++
		}
		if p < sc.e {
			switch sc.buf[p] {
			case '"':
				p++
				v = sc.buf[sc.s:p]
				sc.s = p
				if dropping {
					return nil, valTooLarge
				}
				return v, valOK
			case '\\':
				if p+1 < sc.e {
					p += 2
					continue
				}
			default: // raw newline
				v = sc.buf[sc.s:p]
				sc.s = p
				return v, valBroken
			}
		}
		if !dropping && p-sc.s > sc.max {
			dropping = true
			sc.sample = append(sc.sample[:0], sc.buf[sc.s:sc.s+min(p-sc.s, sampleLen)]...)
		}
		if dropping {
			sc.s = p
		}
		i := p - sc.s
		if !sc.fill() {
			v = sc.buf[sc.s : sc.s+i]
			sc.s += i
			return v, valEOF
		}
		p = sc.s + i
	}
}
