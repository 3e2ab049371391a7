package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	json "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// An object is streamed member by member when it starts with Records (the
// CloudTrail S3 layout) or when it is too large to hold: the members that
// hold records (format.ContainerMember) element by element, the size limit
// applying to each record, never to the object around them, whatever the
// order of its members.

// maxMembers bounds the string members kept for context.
const maxMembers = 64

// streamed is what object learns about the object it streams.
type streamed struct {
	startLine int
	head      []byte // the object's first bytes, for error samples
	// members are the object's short string members, which give log
	// events their context; only those before the events array are known
	// when a batch is decoded early.
	members    map[string]string
	containers int // arrays streamed
	tooLarge   string
	// wc is the log events' context, fixed at the first batch; drop says
	// the payload holds no records (a control message).
	wc   *format.WrapContext
	drop bool
	// pending log events, decoded in batches (see flush).
	pending      []format.LogEvent
	pendingPos   []pipeline.Position
	pendingBytes int
	pendingKind  format.Container
}

// object streams the top-level object that starts at the next byte ('{'):
// container members element by element, other members read (each within
// the record size limit) for the context they give. It reports false if
// the stream ended.
func (fr *fileReader) object() bool {
	sc, d := fr.sc, fr.d
	ob := &streamed{startLine: sc.line, head: bytes.Clone(sc.buf[sc.s:min(sc.e, sc.s+sampleLen)])}
	sc.s++ // '{'
	for {
		if d.Err() != nil || fr.tick() != nil {
			return false
		}
		if !sc.skipWS() {
			fr.cutShort(ob, "file ends inside a record")
			return false
		}
		switch sc.peek() {
		case '}':
			sc.s++
			fr.finish(ob)
			return true
		case ',':
			sc.s++
			continue
		case '"':
		default:
			fr.cutShort(ob, fmt.Sprintf("invalid JSON: %q where a member name should be", sc.peek()))
			return true
		}
		raw, st := sc.scalar()
		if st != valOK {
			fr.cutShort(ob, "invalid JSON: member name cut short")
			return st != valEOF
		}
		key := unquote(raw)
		if !sc.skipWS() {
			fr.cutShort(ob, "file ends inside a record")
			return false
		}
		if sc.peek() != ':' {
			fr.cutShort(ob, fmt.Sprintf("invalid JSON: no ':' after member %q", key))
			return true
		}
		sc.s++
		if !sc.skipWS() {
			fr.cutShort(ob, "file ends inside a record")
			return false
		}
		if k, ok := format.ContainerMember(key, ob.members); ok && sc.peek() == '[' {
			sc.s++
			ob.containers++
			end := fr.array(k.Source(), func(v []byte, line, rec int, st valStatus) bool { return fr.element(ob, k, v, line, rec, st) })
			fr.flush(ob)
			switch end {
			case arrayStopped:
				return false
			case arrayCut:
				// The line ended inside the array: the object ends with it.
				return true
			}
			continue
		}
		var v []byte
		if c := sc.peek(); c == '{' || c == '[' {
			v, _, st = sc.value(false)
		} else {
			v, st = sc.scalar()
		}
		switch st {
		case valOK:
			ob.note(key, v)
		case valTooLarge:
			if ob.tooLarge == "" {
				ob.tooLarge = key
			}
		case valBroken:
			fr.cutShort(ob, fmt.Sprintf("invalid JSON: member %q cut short by a line break", key))
			return true
		default:
			fr.cutShort(ob, "file ends inside a record")
			return false
		}
	}
}

// note keeps the short string members, for context.
func (ob *streamed) note(key string, v []byte) {
	if len(v) == 0 || v[0] != '"' || len(v) > 1024 || len(ob.members) >= maxMembers {
		return
	}
	if ob.members == nil {
		ob.members = map[string]string{}
	}
	ob.members[key] = unquote(v)
}

// element handles one element of a streamed container array.
func (fr *fileReader) element(ob *streamed, k format.Container, v []byte, line, rec int, st valStatus) bool {
	if !k.LogEvents() || st != valOK {
		return fr.handle(v, line, rec, st, k.Source())
	}
	d := fr.d
	p := fr.pos(line, rec)
	le, ok := d.ParseLogEvent(v, p)
	if !ok {
		return true
	}
	ob.pending = append(ob.pending, le)
	ob.pendingPos = append(ob.pendingPos, p)
	ob.pendingBytes += len(v)
	ob.pendingKind = k
	if ob.pendingBytes > d.MaxRecordBytes() {
		fr.flush(ob)
	}
	return true
}

// flush decodes the pending log events as one batch, with the context the
// members before them gave.
func (fr *fileReader) flush(ob *streamed) {
	if len(ob.pending) == 0 {
		return
	}
	d := fr.d
	if ob.wc == nil && !ob.drop {
		var ok bool
		ob.wc, ok = d.StreamContext(ob.pendingKind, ob.members, ob.head, fr.pos(ob.startLine, 0))
		ob.drop = !ok
	}
	if !ob.drop {
		d.LogEventBatch(ob.pending, func(i int) pipeline.Position { return ob.pendingPos[i] }, ob.wc)
	}
	clear(ob.pending)
	ob.pending, ob.pendingPos, ob.pendingBytes = ob.pending[:0], ob.pendingPos[:0], 0
}

// finish reports what the end of a streamed object says: an object
// without containers was one record too large to hold.
func (fr *fileReader) finish(ob *streamed) {
	d := fr.d
	p := fr.pos(ob.startLine, 0)
	switch {
	case ob.containers == 0:
		d.Reject(p, format.GuessSource(ob.head), SkipTooLarge, fmt.Sprintf("record exceeds %d bytes; skipped", d.MaxRecordBytes()), ob.head)
	case ob.tooLarge != "":
		d.Reject(p, "", SkipTooLarge, fmt.Sprintf("member %q exceeds %d bytes; skipped", ob.tooLarge, d.MaxRecordBytes()), ob.head)
	}
}

// cutShort reports a streamed object that is not valid JSON; what it held
// before the damage has been read.
func (fr *fileReader) cutShort(ob *streamed, reason string) {
	fr.flush(ob)
	if fr.d.Err() != nil || fr.stopErr != nil {
		return
	}
	if reason == "file ends inside a record" && fr.sc.err != nil && !errors.Is(fr.sc.err, io.EOF) {
		return // a read error is reported once for the file
	}
	fr.d.Reject(fr.pos(ob.startLine, 0), format.GuessSource(ob.head), SkipBadJSON, reason, ob.head)
}

// unquote returns the string a raw JSON string holds ("" for other values).
func unquote(raw []byte) string {
	if s, ok := pipeline.UnquotePlain(raw); ok {
		return s
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}
