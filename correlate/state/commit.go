package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ecscorr/ecscorr/pipeline"
)

// FormatVersion is the layout of what this ecscorr writes. A store written
// with another layout is refused rather than misread.
const FormatVersion = 2

var versionKey = Key(KindMeta, "format")

// ErrVersion means the state directory was written by an ecscorr with
// another state layout.
var ErrVersion = errors.New("state format mismatch")

// checkVersion stamps an empty store with FormatVersion and refuses a
// store of any other version. Stores written before the layout was
// versioned have no stamp but hold keys: that is format 1.
func (s *Store) checkVersion() error {
	v, ok, err := s.Get(versionKey)
	if err != nil {
		return err
	}
	if ok {
		if string(v) == fmt.Sprint(FormatVersion) {
			return nil
		}
		return fmt.Errorf("%w: the directory holds state format %s; this ecscorr reads format %d only (use a new --state directory, or remove this one to start over)", ErrVersion, v, FormatVersion)
	}
	empty := true
	err = s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if !empty {
		return fmt.Errorf("%w: the directory holds state format 1 (written by an earlier ecscorr, before state was versioned); this ecscorr reads format %d only (use a new --state directory, or remove this one to start over)", ErrVersion, FormatVersion)
	}
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(versionKey, fmt.Append(nil, FormatVersion))
	})
}

// op is one write of a batch. expires is absolute (Unix seconds, 0 = never),
// fixed when the write was added, so that a journal replayed after a crash
// gives the same expiry.
type op struct {
	del     bool
	key     []byte
	val     []byte
	expires uint64
}

// Batch collects writes that commit together, atomically: engine state,
// resolver links, source positions and outbox entries of one checkpoint.
// Badger's WriteBatch is not atomic (it commits on its own as it grows), so
// a Batch commits in one transaction when it fits in one, and otherwise
// through a redo journal whose marker is written last, after a sync.
type Batch struct {
	s   *Store
	ops []op
}

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch { return &Batch{s: s} }

// Begin starts a commit (pipeline.StateStore).
func (s *Store) Begin() pipeline.StateTxn { return s.NewBatch() }

var _ pipeline.StateStore = (*Store)(nil)

// Set adds a write; ttl 0 means no expiry. Keys and values must not be
// modified until Commit.
func (b *Batch) Set(key, val []byte, ttl time.Duration) {
	o := op{key: key, val: val}
	if ttl > 0 {
		o.expires = uint64(time.Now().Add(ttl).Unix())
	}
	b.ops = append(b.ops, o)
}

// Delete adds a deletion.
func (b *Batch) Delete(key []byte) { b.ops = append(b.ops, op{del: true, key: key}) }

// Len is the number of writes added.
func (b *Batch) Len() int { return len(b.ops) }

// Cancel discards the batch.
func (b *Batch) Cancel() { b.ops = nil }

// Commit writes the batch: all of it or, on error or crash, none of it.
func (b *Batch) Commit() error {
	if len(b.ops) == 0 {
		return nil
	}
	s := b.s
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	err := s.db.Update(func(txn *badger.Txn) error {
		for i := range b.ops {
			if err := applyTxn(txn, &b.ops[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		b.ops = nil
		return nil
	}
	if !errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("state: commit: %w", err)
	}
	if err := s.commitJournal(b.ops); err != nil {
		return fmt.Errorf("state: commit of %d writes: %w", len(b.ops), err)
	}
	b.ops = nil
	return nil
}

func applyTxn(txn *badger.Txn, o *op) error {
	if o.del {
		return txn.Delete(o.key)
	}
	e := badger.NewEntry(o.key, o.val)
	e.ExpiresAt = o.expires
	return txn.SetEntry(e)
}

// commitStage names the steps of a journal commit; tests stop a commit at
// one to prove that a crash there leaves the old or the new state, whole.
type commitStage int

const (
	stageNone        commitStage = iota
	stageJournal                 // some journal chunks written, no marker
	stageMarked                  // marker written, writes not yet applied
	stageApplied                 // some writes applied, marker still there
	stageUnmarked                // marker deleted, chunks still there
	journalChunkSize = 256 << 10 // bytes of encoded writes per chunk: well inside a transaction
)

var errStopped = errors.New("commit stopped (test)")

// commitJournal writes ops as journal chunks, syncs, writes the marker in
// one transaction (the commit point), applies the ops, then removes the
// marker and the chunks. Open redoes a journal whose marker exists and
// drops chunks without one.
func (s *Store) commitJournal(ops []op) error {
	epoch := uint64(time.Now().UnixNano())
	chunks := encodeChunks(ops)
	wb := s.db.NewWriteBatch()
	for i, c := range chunks {
		if err := wb.Set(chunkKey(epoch, uint32(i)), c); err != nil {
			wb.Cancel()
			return err
		}
		if s.failAt == stageJournal && i == len(chunks)/2 {
			wb.Flush()
			return errStopped
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	if err := s.db.Sync(); err != nil {
		return err
	}
	mark := binary.BigEndian.AppendUint64(nil, epoch)
	mark = binary.BigEndian.AppendUint32(mark, uint32(len(chunks)))
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(markerKey, mark) }); err != nil {
		return err
	}
	if err := s.db.Sync(); err != nil {
		return err
	}
	if s.failAt == stageMarked {
		return errStopped
	}
	if err := s.applyOps(ops, s.failAt == stageApplied); err != nil {
		return err
	}
	return s.dropJournal(true)
}

var markerKey = Key(kindMarker)

func chunkKey(epoch uint64, i uint32) []byte {
	k := []byte{byte(kindJournal)}
	k = binary.BigEndian.AppendUint64(k, epoch)
	return binary.BigEndian.AppendUint32(k, i)
}

func encodeChunks(ops []op) [][]byte {
	var chunks [][]byte
	var cur []byte
	for i := range ops {
		o := &ops[i]
		if len(cur) > 0 && len(cur)+len(o.key)+len(o.val)+32 > journalChunkSize {
			chunks = append(chunks, cur)
			cur = nil
		}
		if o.del {
			cur = append(cur, 1)
		} else {
			cur = append(cur, 0)
		}
		cur = binary.AppendUvarint(cur, uint64(len(o.key)))
		cur = append(cur, o.key...)
		cur = binary.AppendUvarint(cur, uint64(len(o.val)))
		cur = append(cur, o.val...)
		cur = binary.AppendUvarint(cur, o.expires)
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

func decodeChunk(b []byte, ops []op) ([]op, error) {
	for len(b) > 0 {
		var o op
		o.del = b[0] == 1
		b = b[1:]
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return nil, errors.New("corrupt journal chunk")
		}
		o.key = b[w : w+int(n)]
		b = b[w+int(n):]
		n, w = binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return nil, errors.New("corrupt journal chunk")
		}
		o.val = b[w : w+int(n)]
		b = b[w+int(n):]
		o.expires, w = binary.Uvarint(b)
		if w <= 0 {
			return nil, errors.New("corrupt journal chunk")
		}
		b = b[w:]
		ops = append(ops, o)
	}
	return ops, nil
}

// applyOps writes ops in as many transactions as they need. That is safe
// only once the marker is durable: a crash half-way is redone by recover.
func (s *Store) applyOps(ops []op, stopHalfway bool) error {
	wb := s.db.NewWriteBatch()
	for i := range ops {
		o := &ops[i]
		var err error
		if o.del {
			err = wb.Delete(o.key)
		} else {
			e := badger.NewEntry(o.key, o.val)
			e.ExpiresAt = o.expires
			err = wb.SetEntry(e)
		}
		if err != nil {
			wb.Cancel()
			return err
		}
		if stopHalfway && i == len(ops)/2 {
			wb.Flush()
			return errStopped
		}
	}
	return wb.Flush()
}

// dropJournal deletes the marker (first: from then on the chunks are
// garbage) and every chunk.
func (s *Store) dropJournal(marked bool) error {
	if marked {
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(markerKey) }); err != nil {
			return err
		}
		if s.failAt == stageUnmarked {
			return errStopped
		}
	}
	var keys [][]byte
	prefix := []byte{byte(kindJournal)}
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = prefix
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	wb := s.db.NewWriteBatch()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			wb.Cancel()
			return err
		}
	}
	return wb.Flush()
}

// recover finishes a journal commit that a crash interrupted after its
// commit point, and drops one interrupted before it.
func (s *Store) recover() error {
	mark, ok, err := s.Get(markerKey)
	if err != nil {
		return err
	}
	if !ok {
		return s.dropJournal(false)
	}
	if len(mark) != 12 {
		return errors.New("state: corrupt commit marker")
	}
	epoch := binary.BigEndian.Uint64(mark)
	n := binary.BigEndian.Uint32(mark[8:])
	var ops []op
	for i := range n {
		c, ok, err := s.Get(chunkKey(epoch, i))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("state: commit journal chunk %d of %d missing", i, n)
		}
		if ops, err = decodeChunk(c, ops); err != nil {
			return fmt.Errorf("state: %w", err)
		}
	}
	if err := s.applyOps(ops, false); err != nil {
		return fmt.Errorf("state: redoing an interrupted commit: %w", err)
	}
	s.log.Info("state: finished a commit that was interrupted", "writes", len(ops))
	return s.dropJournal(true)
}
