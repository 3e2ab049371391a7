package cwlogs

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strconv"

	json "github.com/goccy/go-json"
)

// positionVersion is the version of the Batch.Position encoding.
const positionVersion = 1

// state is what has been read: per log group, per stream.
type state struct {
	groups map[string]*groupPos
}

// groupPos is the position in one log group.
type groupPos struct {
	// cursor is the newest event timestamp read (ms); 0 before any.
	cursor int64
	// floor is the earliest timestamp to read while the cursor is less
	// than lookback past it (0 once it no longer matters).
	floor int64
	// streams holds, per stream read within the lookback, the newest
	// timestamp read and the ids of the events read at it.
	streams map[string]*streamPos
}

type streamPos struct {
	ts  int64
	ids []string
}

func newState() *state { return &state{groups: map[string]*groupPos{}} }

// seen reports whether the event (stream, ts, id) was already read, and
// records it if not. Within a stream CloudWatch Logs returns events in
// timestamp order, so anything before the stream's newest timestamp was
// read, and at that timestamp exactly the ids kept were. The cursor moves
// to ts, but never past the event's ingestion time (the service's clock):
// one agent with a clock ahead must not make the next polls start after
// the other streams' events.
func (g *groupPos) seen(streamName string, ts, ingested int64, id string) bool {
	sp := g.streams[streamName]
	switch {
	case sp == nil:
		g.streams[streamName] = &streamPos{ts: ts, ids: []string{id}}
	case ts < sp.ts:
		return true
	case ts == sp.ts:
		if slices.Contains(sp.ids, id) {
			return true
		}
		sp.ids = append(sp.ids, id)
	default:
		sp.ts, sp.ids = ts, append(sp.ids[:0], id)
	}
	if ingested > 0 {
		g.cursor = max(g.cursor, min(ts, ingested))
	} else {
		g.cursor = max(g.cursor, ts)
	}
	return false
}

// prune forgets streams whose newest event is before from: no query
// starting at from or later can return their events again.
func (g *groupPos) prune(from int64) {
	for n, sp := range g.streams {
		if sp.ts < from {
			delete(g.streams, n)
		}
	}
}

// encode writes the state compactly and deterministically:
// {"v":1,"g":{"<group>":{"c":cursor,"f":floor,"s":{"<stream>":[ts,"id",...]}}}}.
func (s *state) encode(buf []byte) []byte {
	b := bytes.NewBuffer(buf[:0])
	fmt.Fprintf(b, `{"v":%d,"g":{`, positionVersion)
	for i, name := range sortedKeys(s.groups) {
		g := s.groups[name]
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, name)
		b.WriteString(`:{"c":`)
		b.WriteString(strconv.FormatInt(g.cursor, 10))
		if g.floor != 0 {
			b.WriteString(`,"f":`)
			b.WriteString(strconv.FormatInt(g.floor, 10))
		}
		b.WriteString(`,"s":{`)
		for j, sn := range sortedKeys(g.streams) {
			sp := g.streams[sn]
			if j > 0 {
				b.WriteByte(',')
			}
			writeString(b, sn)
			b.WriteString(":[")
			b.WriteString(strconv.FormatInt(sp.ts, 10))
			for _, id := range sp.ids {
				b.WriteByte(',')
				writeString(b, id)
			}
			b.WriteByte(']')
		}
		b.WriteString("}}")
	}
	b.WriteString("}}")
	return b.Bytes()
}

func writeString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// decodeState reads an encoded state; nil or empty is an empty state.
func decodeState(pos []byte) (*state, error) {
	s := newState()
	if len(bytes.TrimSpace(pos)) == 0 {
		return s, nil
	}
	var w struct {
		V int `json:"v"`
		G map[string]struct {
			C int64                        `json:"c"`
			F int64                        `json:"f"`
			S map[string][]json.RawMessage `json:"s"`
		} `json:"g"`
	}
	if err := json.Unmarshal(pos, &w); err != nil {
		return nil, fmt.Errorf("cloudwatch_logs position: %w", err)
	}
	if w.V != positionVersion {
		return nil, fmt.Errorf("cloudwatch_logs position: version %d, want %d", w.V, positionVersion)
	}
	for name, g := range w.G {
		gp := &groupPos{cursor: g.C, floor: g.F, streams: make(map[string]*streamPos, len(g.S))}
		for sn, raw := range g.S {
			if len(raw) < 2 {
				return nil, fmt.Errorf("cloudwatch_logs position: stream %q of %q: want [ts, id...]", sn, name)
			}
			sp := &streamPos{ids: make([]string, len(raw)-1)}
			if err := json.Unmarshal(raw[0], &sp.ts); err != nil {
				return nil, fmt.Errorf("cloudwatch_logs position: stream %q of %q: %w", sn, name, err)
			}
			for i, r := range raw[1:] {
				if err := json.Unmarshal(r, &sp.ids[i]); err != nil {
					return nil, fmt.Errorf("cloudwatch_logs position: stream %q of %q: %w", sn, name, err)
				}
			}
			gp.streams[sn] = sp
		}
		s.groups[name] = gp
	}
	return s, nil
}
