// Package state is the Badger-backed store of the correlator: engine state
// (windows, partial sequences, metric baselines, open incidents, dedup keys,
// the watermark), the container → task map and source checkpoints. The
// engine keeps hot state in memory and writes what changed in one batch per
// checkpoint, so Badger never sits on the per-event path.
package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ecscorr/ecscorr/pipeline"
)

// Kind namespaces keys: the first byte of every key.
type Kind byte

const (
	KindWindow   Kind = 'w' // threshold/temporal windows per rule+key
	KindPartial  Kind = 'p' // sequence partials and metric clocks per rule+key
	KindBaseline Kind = 'b' // metric baselines per rule+key
	KindIncident Kind = 'i' // open incidents by id
	KindDedup    Kind = 'd' // dedup key → incident id
	KindMeta     Kind = 'm' // engine watermark and similar singletons
	// KindPartition holds a correlate instance's partition engines, each
	// in its namespace (Store.Sub): partition 0x00 family 0x00 engine key.
	KindPartition Kind = 'P'

	// Families the pipeline writes (pipeline/state.go).
	KindContainer  = Kind(pipeline.FamilyContainer) // container short id → task ARN
	KindCheckpoint = Kind(pipeline.FamilyPosition)  // source positions and other generic values
	KindSeen       = Kind(pipeline.FamilySeen)      // events already applied
	KindOutbox     = Kind(pipeline.FamilyOutbox)    // incident changes not yet delivered, per stream sink
	KindReport     = Kind(pipeline.FamilyReport)    // the report's incidents, per report sink
	KindRunner     = Kind(pipeline.FamilyRunner)    // the Runner's watermark
	KindSink       = Kind(pipeline.FamilySink)      // what sinks remember

	// The commit journal (commit.go).
	kindJournal Kind = 'J' // journal chunks of a commit too large for one transaction
	kindMarker  Kind = 'K' // the journal's commit marker, written last
)

// Key builds a namespaced key: kind byte, then the parts joined by 0x00.
func Key(kind Kind, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, byte(kind))
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

// Options tunes the store. Zero values give the small-container defaults.
type Options struct {
	Logger *slog.Logger
	// GCInterval is how often value-log GC runs (default 5m; <0 disables).
	GCInterval time.Duration
	// ContainerTTL is how long a container → task link lives (default 7d).
	ContainerTTL time.Duration
	// SyncWrites makes every commit fsync (slow; off by default).
	SyncWrites bool
}

// Store is the Badger database of one correlator.
type Store struct {
	db     *badger.DB
	log    *slog.Logger
	opts   Options
	cancel context.CancelFunc
	done   chan struct{}
	// commitMu serialises commits: the journal holds one commit at a time.
	// A namespace shares its root's.
	commitMu *sync.Mutex
	// ns prefixes every key of a namespace (Sub); nil for the root.
	ns   []byte
	root bool
	// failAt, in tests, makes the journal path stop at a stage (see commit.go).
	failAt commitStage
}

// slogAdapter routes Badger's own logging to slog; only warnings and errors
// pass (Badger is chatty at info level).
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Errorf(f string, v ...any) {
	a.l.Error(fmt.Sprintf(f, v...), "component", "badger")
}
func (a slogAdapter) Warningf(f string, v ...any) {
	a.l.Warn(fmt.Sprintf(f, v...), "component", "badger")
}
func (a slogAdapter) Infof(string, ...any)  {}
func (a slogAdapter) Debugf(string, ...any) {}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.GCInterval == 0 {
		o.GCInterval = 5 * time.Minute
	}
	if o.ContainerTTL <= 0 {
		o.ContainerTTL = 7 * 24 * time.Hour
	}
}

// badgerOptions are tuned for a 512 MiB container (see
// shared/reference/performance.md §1b): small memtables, small caches, small
// tables and value-log files, two compactors, no conflict detection (one
// writer).
func badgerOptions(dir string, o Options) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(slogAdapter{o.Logger}).
		WithLoggingLevel(badger.WARNING).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithBaseTableSize(512 << 10).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithDetectConflicts(false).
		WithSyncWrites(o.SyncWrites).
		WithMetricsEnabled(false)
}

// Open opens (or creates) the store in dir and starts value-log GC.
func Open(dir string, opts Options) (*Store, error) {
	opts.defaults()
	if err := dropEmptyMemtables(dir); err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	db, err := badger.Open(badgerOptions(dir, opts))
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	s := newStore(db, opts)
	if err := s.recover(); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: %s: %w", dir, err)
	}
	if err := s.checkVersion(); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: %s: %w", dir, err)
	}
	if opts.GCInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		s.done = make(chan struct{})
		go s.gcLoop(ctx)
	}
	return s, nil
}

// dropEmptyMemtables removes memtable files of no bytes. Badger creates
// a memtable's file, then sizes and maps it; a process killed in between
// leaves a file of zero bytes that holds no write, and Badger refuses to
// open the directory over it ("while opening fid: N err: Create a new
// file"), so a SIGKILL at the wrong millisecond would stop every restart.
func dropEmptyMemtables(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if e.IsDir() || filepath.Ext(e.Name()) != ".mem" {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Size() == 0 {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// OpenInMemory opens a store that lives only in memory (tests, replay into
// a sandbox).
func OpenInMemory() (*Store, error) {
	opts := Options{GCInterval: -1}
	opts.defaults()
	db, err := badger.Open(badgerOptions("", opts).WithInMemory(true))
	if err != nil {
		return nil, fmt.Errorf("state: open in memory: %w", err)
	}
	s := newStore(db, opts)
	if err := s.checkVersion(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func newStore(db *badger.DB, opts Options) *Store {
	return &Store{db: db, log: opts.Logger, opts: opts, commitMu: new(sync.Mutex), root: true}
}

func (s *Store) gcLoop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.RunGC(ctx); err != nil {
				s.log.Warn("state: value-log GC", "err", err)
			}
		}
	}
}

// RunGC runs value-log GC until there is nothing left to rewrite.
func (s *Store) RunGC(ctx context.Context) error {
	if s.db.Opts().InMemory {
		return nil
	}
	for ctx.Err() == nil {
		err := s.db.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("state: value-log gc: %w", err)
		}
	}
	return ctx.Err()
}

// Sub returns the namespace ns of s: the same database, with every key
// of every read, write and iteration under the prefix ns (after s's own),
// so that several engines share one store, each seeing only its keys.
// Commits through it are atomic like the root's; Close on it does
// nothing.
func (s *Store) Sub(ns []byte) *Store {
	return &Store{db: s.db, log: s.log, opts: s.opts, commitMu: s.commitMu,
		ns: append(append([]byte(nil), s.ns...), ns...)}
}

func (s *Store) key(k []byte) []byte {
	if len(s.ns) == 0 {
		return k
	}
	return append(append(make([]byte, 0, len(s.ns)+len(k)), s.ns...), k...)
}

// Close stops GC and closes the database (a namespace: nothing).
func (s *Store) Close() error {
	if !s.root {
		return nil
	}
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return nil
}

// Get reads a value; ok is false when the key is absent or expired.
func (s *Store) Get(key []byte) (val []byte, ok bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(s.key(key))
		if err != nil {
			return err
		}
		val, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: get: %w", err)
	}
	return val, true, nil
}

// Put writes one value (ttl 0: no expiry). Prefer a Batch for many.
func (s *Store) Put(key, val []byte, ttl time.Duration) error {
	b := s.NewBatch()
	b.Set(key, val, ttl)
	return b.Commit()
}

// Iterate calls fn for each live key with the prefix, in key order. The
// slices are only valid during the call.
func (s *Store) Iterate(prefix []byte, fn func(key, val []byte) error) error {
	full := s.key(prefix)
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false // values are small: prefetching only costs (performance.md §1b)
		o.Prefix = full
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Seek(full); it.ValidForPrefix(full); it.Next() {
			item := it.Item()
			if err := item.Value(func(v []byte) error { return fn(item.Key()[len(s.ns):], v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: iterate %q: %w", prefix, err)
	}
	return nil
}

// DropPrefix deletes every key with the prefix.
func (s *Store) DropPrefix(prefix []byte) error {
	if err := s.db.DropPrefix(s.key(prefix)); err != nil {
		return fmt.Errorf("state: drop prefix: %w", err)
	}
	return nil
}

// GetContainer implements pipeline.ContainerMap.
func (s *Store) GetContainer(_ context.Context, containerID string) (string, bool, error) {
	v, ok, err := s.Get(Key(KindContainer, containerID))
	if err != nil || !ok {
		return "", ok, err
	}
	return string(v), true, nil
}

// PutCheckpoint stores a generic value (a source position) by name.
func (s *Store) PutCheckpoint(name string, val []byte) error {
	return s.Put(Key(KindCheckpoint, name), val, 0)
}

// GetCheckpoint reads a value stored with PutCheckpoint or with
// Batch.Set(state.Key(state.KindCheckpoint, name), ...).
func (s *Store) GetCheckpoint(name string) ([]byte, bool, error) {
	return s.Get(Key(KindCheckpoint, name))
}
