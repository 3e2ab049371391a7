package kafkasrc

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// tp names one partition of one topic.
type tp struct {
	topic string
	part  int
}

// positionV1 is the stored position: for every partition this input has
// read, the offset of the next message to read (Kafka's convention for
// committed offsets). It covers all partitions, not only the batch's, as
// the Runner stores only the newest acknowledged batch's position.
type positionV1 struct {
	V       int                        `json:"v"`
	Offsets map[string]map[int32]int64 `json:"offsets"`
}

func encodePosition(next map[tp]int64) []byte {
	p := positionV1{V: 1, Offsets: make(map[string]map[int32]int64)}
	for k, off := range next {
		m := p.Offsets[k.topic]
		if m == nil {
			m = make(map[int32]int64)
			p.Offsets[k.topic] = m
		}
		m[int32(k.part)] = off
	}
	b, _ := json.Marshal(&p) // maps of strings and ints: cannot fail
	return b
}

func decodePosition(b []byte) (map[tp]int64, error) {
	out := make(map[tp]int64)
	if len(b) == 0 {
		return out, nil
	}
	var p positionV1
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("stored position %.100q: %w", b, err)
	}
	if p.V != 1 {
		return nil, fmt.Errorf("stored position: version %d, want 1", p.V)
	}
	for topic, parts := range p.Offsets {
		for part, off := range parts {
			if part < 0 || off < 0 {
				return nil, fmt.Errorf("stored position: %s/%d at offset %d", topic, part, off)
			}
			out[tp{topic, int(part)}] = off
		}
	}
	return out, nil
}

// RecordPos is where a message was read, as events and skipped records
// name it: kafka://topic/partition/offset.
func RecordPos(topic string, partition int, offset int64) string {
	return "kafka://" + topic + "/" + strconv.Itoa(partition) + "/" + strconv.FormatInt(offset, 10)
}

// ParseRecordPos reads RecordPos's form. stream is its topic/partition
// part (a substring of file).
func ParseRecordPos(file string) (topic string, partition int, offset int64, stream string, ok bool) {
	rest, found := strings.CutPrefix(file, "kafka://")
	if !found {
		return "", 0, 0, "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", 0, 0, "", false
	}
	j := strings.LastIndexByte(rest[:i], '/')
	if j < 0 {
		return "", 0, 0, "", false
	}
	p, err1 := strconv.Atoi(rest[j+1 : i])
	off, err2 := strconv.ParseInt(rest[i+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, "", false
	}
	return rest[:j], p, off, rest[:i], true
}
