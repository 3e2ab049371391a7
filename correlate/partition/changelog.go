package partition

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// The changelog (the Kafka Streams model, without Kafka transactions).
//
// A correlate instance keeps each owned partition's engines in a namespace
// of its store (Store.Sub). At every commit the Runner asks the Router for
// its changes (CheckpointBatch); the Router then writes each changed
// partition's state changes to the compacted changelog topic, one record
// per engine key (a deletion is a tombstone), on the changelog partition of
// the same number, followed by one marker record per partition naming the
// commit epoch and the events offsets the state holds (every one below
// next, and the few above it already applied: the Runner applies events in
// event-time order, and tells the Router of each one it is done with). Every record
// carries its epoch in a header. The write is acknowledged by all in-sync
// replicas before the Runner commits locally and before the consumer
// offsets are committed: the changelog is never behind the offsets.
//
// kafka-go has no transactions, so the epoch header and the marker stand
// in for them: a record whose epoch is newer than the last marker was
// written by a commit that did not finish (the instance died mid-write) and
// is ignored on restore, its key read at the version before it. The
// instance that restores writes those keys again (repair), so that
// compaction never keeps a torn record as a key's latest; the changelog
// topic's min.compaction.lag.ms must exceed the session timeout, so that
// the version before a torn record is still there when the next owner
// reads it (docs/operations.md).
//
// Restoring reads the changelog partition from its start to its end,
// before the partition's first event. Events at the offsets the marker
// names are already in the state and are skipped; the consumer offsets
// (committed after the changelog) are never above its next. State so restored is exactly
// what the last owner committed, with no event applied twice: a restore
// decides nothing again.

const (
	epochHeader   = "ecscorr-epoch"
	expiresHeader = "ecscorr-expires" // unix seconds after which the key is gone (its TTL)
)

// marker is the last record of a partition's commit.
type marker struct {
	Epoch uint64 `json:"epoch"`
	Next  int64  `json:"next"` // every events offset below it is in the state
	// Done are the offsets at or above Next in the state too: the Runner
	// applies events in event-time order, not offset order.
	Done []int64 `json:"done,omitempty"`
}

// partitionNS is the namespace of partition p's engine for family in the
// instance's store, and the prefix of its keys in the changelog.
func partitionNS(p int, family string) []byte {
	return fmt.Appendf([]byte{byte(state.KindPartition)}, "%d\x00%s\x00", p, family)
}

// markerKey is partition p's marker key: its family is empty, which no
// family is.
func markerKey(p int) []byte { return partitionNS(p, "") }

// changelogWriter collects one commit's changelog records while the
// engines write their changes into the Runner's commit.
type changelogWriter struct {
	w     pipeline.StateWriter
	ns    []byte
	p     int
	epoch []byte
	now   time.Time
	out   *[]kafkago.Message
}

func (c *changelogWriter) headers(ttl time.Duration) []kafkago.Header {
	hs := []kafkago.Header{{Key: epochHeader, Value: c.epoch}, {Key: tickHeader, Value: []byte(strconv.Itoa(c.p))}}
	if ttl > 0 {
		hs = append(hs, kafkago.Header{Key: expiresHeader, Value: strconv.AppendInt(nil, c.now.Add(ttl).Unix(), 10)})
	}
	return hs
}

func (c *changelogWriter) key(k []byte) []byte {
	return append(append(make([]byte, 0, len(c.ns)+len(k)), c.ns...), k...)
}

func (c *changelogWriter) Set(k, v []byte, ttl time.Duration) {
	full := c.key(k)
	c.w.Set(full, v, ttl)
	*c.out = append(*c.out, kafkago.Message{Key: full, Value: bytes.Clone(v), Headers: c.headers(ttl)})
}

func (c *changelogWriter) Delete(k []byte) {
	full := c.key(k)
	c.w.Delete(full)
	*c.out = append(*c.out, kafkago.Message{Key: full, Headers: c.headers(0)})
}

func newChangelogWriter(brokers []string, topic string, t *tls.Config) *kafkago.Writer {
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(brokers...),
		Topic:        topic,
		Balancer:     tickBalancer{kafkago.Murmur2Balancer{Consistent: true}},
		RequiredAcks: kafkago.RequireAll,
		BatchTimeout: time.Millisecond,
		BatchSize:    10000,
		BatchBytes:   16 << 20,
		MaxAttempts:  5,
	}
	if t != nil {
		w.Transport = &kafkago.Transport{TLS: t}
	}
	return w
}

// version is one changelog record of a key.
type version struct {
	epoch   uint64
	val     []byte // nil: deleted
	expires int64  // unix seconds; 0: never
}

// restored is what a changelog partition holds.
type restored struct {
	marker  marker
	keys    map[string]version // every key at its version as of the marker
	torn    []string           // keys whose latest record is newer than the marker
	records int
	maxEp   uint64
}

// readChangelog reads changelog partition p from its start to its end.
func readChangelog(ctx context.Context, brokers []string, topic string, p int, t *tls.Config) (*restored, error) {
	d := &kafkago.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: t}
	conn, err := d.DialLeader(ctx, "tcp", brokers[0], topic, p)
	if err != nil {
		return nil, fmt.Errorf("changelog %s partition %d: %w", topic, p, err)
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		return nil, fmt.Errorf("changelog %s partition %d: offsets: %w", topic, p, err)
	}
	res := &restored{keys: map[string]version{}}
	if last <= first {
		return res, nil
	}
	rd := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: brokers, Topic: topic, Partition: p, Dialer: d,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond,
	})
	defer rd.Close()
	if err := rd.SetOffset(first); err != nil {
		return nil, err
	}
	// cur is each key's latest record; prev its latest of an older epoch
	// (what a torn cur falls back to).
	cur, prev := map[string]version{}, map[string]version{}
	mkKey := markerKey(p)
	keys := mkKey[:len(mkKey)-1] // the partition's keys: P, partition, 0x00
	for {
		m, err := rd.FetchMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("changelog %s partition %d: %w", topic, p, err)
		}
		res.records++
		var v version
		for _, h := range m.Headers {
			switch h.Key {
			case epochHeader:
				v.epoch, _ = strconv.ParseUint(string(h.Value), 10, 64)
			case expiresHeader:
				v.expires, _ = strconv.ParseInt(string(h.Value), 10, 64)
			}
		}
		res.maxEp = max(res.maxEp, v.epoch)
		if bytes.Equal(m.Key, mkKey) {
			var mk marker
			if err := json.Unmarshal(m.Value, &mk); err != nil {
				return nil, fmt.Errorf("changelog %s partition %d offset %d: marker: %w", topic, p, m.Offset, err)
			}
			res.marker = mk
		} else if bytes.HasPrefix(m.Key, keys) {
			if m.Value != nil {
				v.val = m.Value
			}
			k := string(m.Key)
			if c, ok := cur[k]; ok && c.epoch < v.epoch {
				prev[k] = c
			}
			cur[k] = v
		}
		if m.Offset >= last-1 {
			break
		}
	}
	for k, v := range cur {
		if v.epoch > res.marker.Epoch {
			res.torn = append(res.torn, k)
			pv, ok := prev[k]
			if !ok || pv.epoch > res.marker.Epoch {
				continue // created by the torn commit: absent
			}
			v = pv
		}
		if v.val != nil {
			res.keys[k] = v
		}
	}
	return res, nil
}

// errNoChangelog is returned when a changelog is read without a store.
var errNoChangelog = errors.New("partition: a changelog needs the instance's store")
