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

// fastPathBytes is the most a batch holds in memory to try it as one
// transaction; a larger one streams to the journal as it is built, so a
// commit of any size costs a chunk of memory, not its size.
const fastPathBytes = 1 << 20

// Batch collects writes that commit together, atomically: engine state,
// resolver links, source positions and outbox entries of one checkpoint.
// Badger's WriteBatch is not atomic (it commits on its own as it grows), so
// a small Batch commits in one transaction, and a large one through a redo
// journal: its writes stream into journal chunks as they are added, and the
// commit point is a marker written last, after a sync.
type Batch struct {
	s     *Store
	ops   []op // held while the batch is small
	bytes int
	n     int
	err   error
	// journal mode
	epoch  uint64
	chunk  []byte
	chunks uint32
	wb     *badger.WriteBatch
}

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch { return &Batch{s: s} }

// Begin starts a commit (pipeline.StateStore).
func (s *Store) Begin() pipeline.StateTxn { return s.NewBatch() }

var _ pipeline.StateStore = (*Store)(nil)

// Set adds a write; ttl 0 means no expiry. Keys and values must not be
// modified until Commit.
func (b *Batch) Set(key, val []byte, ttl time.Duration) {
	o := op{key: b.s.key(key), val: val}
	if ttl > 0 {
		o.expires = uint64(time.Now().Add(ttl).Unix())
	}
	b.add(o)
}

// Delete adds a deletion.
func (b *Batch) Delete(key []byte) { b.add(op{del: true, key: b.s.key(key)}) }

func (b *Batch) add(o op) {
	b.n++
	if b.err != nil {
		return
	}
	if b.wb == nil {
		b.ops = append(b.ops, o)
		b.bytes += len(o.key) + len(o.val) + 16
		if b.bytes <= fastPathBytes {
			return
		}
		// Too large to hold: from here on the batch streams to the journal.
		b.epoch = uint64(time.Now().UnixNano())
		b.wb = b.s.db.NewWriteBatch()
		ops := b.ops
		b.ops = nil
		for i := range ops {
			b.journal(&ops[i])
		}
		return
	}
	b.journal(&o)
}

// journal appends one write to the current chunk and writes the chunk out
// when it is full. Chunks are invisible until the marker names them.
func (b *Batch) journal(o *op) {
	b.chunk = appendOp(b.chunk, o)
	if len(b.chunk) >= journalChunkSize {
		b.flushChunk()
	}
}

func (b *Batch) flushChunk() {
	if len(b.chunk) == 0 || b.err != nil {
		return
	}
	if b.s.failAt == stageJournal && b.chunks > 0 {
		b.err = errStopped
		b.wb.Flush()
		return
	}
	if err := b.wb.Set(chunkKey(b.epoch, b.chunks), b.chunk); err != nil {
		b.err = err
		return
	}
	b.chunks++
	b.chunk = nil
}

// Len is the number of writes added.
func (b *Batch) Len() int { return b.n }

// Cancel discards the batch (journal chunks already written are dropped
// as orphans at the next Open, or by the next commit).
func (b *Batch) Cancel() {
	if b.wb != nil {
		b.wb.Cancel()
		b.wb = nil
	}
	b.ops, b.chunk = nil, nil
}

// Commit writes the batch: all of it or, on error or crash, none of it.
func (b *Batch) Commit() error {
	s := b.s
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if b.err != nil {
		b.Cancel()
		return fmt.Errorf("state: commit: %w", b.err)
	}
	if b.wb == nil {
		if len(b.ops) == 0 {
			return nil
		}
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
		// Many small writes: journal them after all.
		b.epoch = uint64(time.Now().UnixNano())
		b.wb = s.db.NewWriteBatch()
		ops := b.ops
		b.ops = nil
		for i := range ops {
			b.journal(&ops[i])
		}
	}
	if err := s.commitJournal(b); err != nil {
		return fmt.Errorf("state: commit of %d writes: %w", b.n, err)
	}
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

// commitJournal finishes a journal batch: the last chunk, a sync, the
// marker in one transaction (the commit point), a sync, the writes applied
// chunk by chunk, then the marker and the chunks removed. Open redoes a
// journal whose marker exists and drops chunks without one.
func (s *Store) commitJournal(b *Batch) error {
	b.flushChunk()
	if b.err != nil {
		b.Cancel()
		return b.err
	}
	if err := b.wb.Flush(); err != nil {
		return err
	}
	b.wb = nil
	if err := s.db.Sync(); err != nil {
		return err
	}
	mark := binary.BigEndian.AppendUint64(nil, b.epoch)
	mark = binary.BigEndian.AppendUint32(mark, b.chunks)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(markerKey, mark) }); err != nil {
		return err
	}
	if err := s.db.Sync(); err != nil {
		return err
	}
	if s.failAt == stageMarked {
		return errStopped
	}
	if err := s.applyJournal(b.epoch, b.chunks, s.failAt == stageApplied); err != nil {
		return err
	}
	return s.dropJournal(b.epoch, true)
}

var markerKey = Key(kindMarker)

func chunkKey(epoch uint64, i uint32) []byte {
	k := []byte{byte(kindJournal)}
	k = binary.BigEndian.AppendUint64(k, epoch)
	return binary.BigEndian.AppendUint32(k, i)
}

func appendOp(cur []byte, o *op) []byte {
	if o.del {
		cur = append(cur, 1)
	} else {
		cur = append(cur, 0)
	}
	cur = binary.AppendUvarint(cur, uint64(len(o.key)))
	cur = append(cur, o.key...)
	cur = binary.AppendUvarint(cur, uint64(len(o.val)))
	cur = append(cur, o.val...)
	return binary.AppendUvarint(cur, o.expires)
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

// applyJournal writes the journal's ops, chunk by chunk, in as many
// transactions as they need. That is safe only once the marker is durable:
// a crash half-way is redone by recover.
func (s *Store) applyJournal(epoch uint64, chunks uint32, stopHalfway bool) error {
	wb := s.db.NewWriteBatch()
	for i := range chunks {
		c, ok, err := s.Get(chunkKey(epoch, i))
		if err != nil {
			wb.Cancel()
			return err
		}
		if !ok {
			wb.Cancel()
			return fmt.Errorf("state: commit journal chunk %d of %d missing", i, chunks)
		}
		ops, err := decodeChunk(c, nil)
		if err != nil {
			wb.Cancel()
			return fmt.Errorf("state: %w", err)
		}
		for j := range ops {
			o := &ops[j]
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
		}
		if stopHalfway && i == chunks/2 {
			wb.Flush()
			return errStopped
		}
	}
	return wb.Flush()
}

// dropJournal deletes the marker (first: from then on the chunks are
// garbage) and every chunk.
func (s *Store) dropJournal(epoch uint64, marked bool) error {
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
	if epoch != 0 {
		// Only this commit's chunks: another batch may be building its own.
		prefix = binary.BigEndian.AppendUint64(prefix, epoch)
	}
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
// commit point, and drops chunks of any commit that never reached it.
func (s *Store) recover() error {
	mark, ok, err := s.Get(markerKey)
	if err != nil {
		return err
	}
	if !ok {
		return s.dropJournal(0, false)
	}
	if len(mark) != 12 {
		return errors.New("state: corrupt commit marker")
	}
	epoch := binary.BigEndian.Uint64(mark)
	n := binary.BigEndian.Uint32(mark[8:])
	if err := s.applyJournal(epoch, n, false); err != nil {
		return fmt.Errorf("state: redoing an interrupted commit: %w", err)
	}
	s.log.Info("state: finished a commit that was interrupted", "chunks", n)
	if err := s.dropJournal(epoch, true); err != nil {
		return err
	}
	return s.dropJournal(0, false)
}
