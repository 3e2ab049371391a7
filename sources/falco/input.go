package falco

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// DefaultMaxBatch is the default cap on the records of one Batch.
const DefaultMaxBatch = 1000

// posPrefix marks a spool position (the logical offset after a batch).
const posPrefix = "spool1:"

func encodePos(off int64) []byte {
	return strconv.AppendInt([]byte(posPrefix), off, 10)
}

func decodePos(pos []byte) (int64, error) {
	if len(pos) == 0 {
		return 0, nil
	}
	s, ok := strings.CutPrefix(string(pos), posPrefix)
	if !ok {
		return 0, fmt.Errorf("not a falco spool position: %q", pos)
	}
	off, err := strconv.ParseInt(s, 10, 64)
	if err != nil || off < 0 {
		return 0, fmt.Errorf("bad falco spool position %q", pos)
	}
	return off, nil
}

// badFunc serialises calls to a Bad callback: handlers call it from many
// goroutines.
type badFunc struct {
	mu  sync.Mutex
	bad func(format.RecordError)
}

func (b *badFunc) report(e format.RecordError) {
	if b.bad == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bad(e)
}

// validate decodes a received document (one alert or an array of them)
// and returns the raw bytes of each Falco alert in it and the rejected
// records. Anything that is not a Falco alert is rejected.
func validate(data []byte, pos pipeline.Position) (alerts [][]byte, rejected []format.RecordError) {
	d := format.NewDecoder(format.DecoderOptions{
		Emit: func(ev *pipeline.Event) error {
			if ev.Source != pipeline.SourceFalco {
				sample := ev.Raw
				if len(sample) > format.SampleLen {
					sample = sample[:format.SampleLen]
				}
				rejected = append(rejected, format.RecordError{Pos: ev.Pos, Source: ev.Source, Reason: fmt.Sprintf("not a Falco alert (a %s record)", ev.Source), Sample: sample})
				return nil
			}
			alerts = append(alerts, ev.Raw)
			return nil
		},
		Bad:    func(e format.RecordError) { rejected = append(rejected, e) },
		Latest: time.Now().Add(format.MaxClockSkew),
	})
	d.Decode(data, pos)
	return alerts, rejected
}

// spoolReader is the Read side both inputs share: batches from the spool,
// decoded with format.Decoder.
type spoolReader struct {
	name   string
	scheme string
	dir    string
	sopts  SpoolOptions
	max    int
	log    *slog.Logger
	bad    *badFunc

	spool *Spool
	dec   *format.Decoder
	evs   []*pipeline.Event
	cur   spoolRec

	mu     sync.Mutex
	rewind int64 // offset of the oldest nacked batch; -1: none
}

func (r *spoolReader) open(pos []byte) error {
	off, err := decodePos(pos)
	if err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	if r.dir == "" {
		return fmt.Errorf("%s: no spool directory", r.name)
	}
	sopts := r.sopts
	sopts.Logger = r.log
	sp, err := OpenSpool(r.dir, off, sopts)
	if err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	r.spool, r.rewind = sp, -1
	if r.max <= 0 {
		r.max = DefaultMaxBatch
	}
	r.dec = format.NewDecoder(format.DecoderOptions{
		Emit: func(ev *pipeline.Event) error {
			ev.Received = r.cur.received
			r.evs = append(r.evs, ev)
			return nil
		},
		Bad: r.bad.report,
	})
	return nil
}

// read returns the next batch of the spool.
func (r *spoolReader) read(ctx context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	if r.spool == nil {
		return pipeline.Batch{}, nil, fmt.Errorf("%s: read before open", r.name)
	}
	r.mu.Lock()
	if r.rewind >= 0 {
		r.spool.rewind(r.rewind)
		r.rewind = -1
	}
	r.mu.Unlock()
	recs, err := r.spool.next(ctx, r.max, 4<<20)
	if err != nil {
		if errors.Is(err, errSpoolClosed) && ctx.Err() != nil {
			err = ctx.Err()
		}
		return pipeline.Batch{}, nil, err
	}
	r.evs = make([]*pipeline.Event, 0, len(recs))
	r.dec.SetLatest(time.Now().Add(format.MaxClockSkew))
	for _, rec := range recs {
		r.cur = rec
		r.dec.Decode(rec.payload, pipeline.Position{File: r.scheme + "://" + rec.seg + "@" + strconv.FormatInt(rec.off, 10)})
	}
	start, end := recs[0].off, recs[len(recs)-1].end
	b := pipeline.Batch{Events: r.evs, Position: encodePos(end)}
	r.evs = nil
	return b, func(_ context.Context, err error) error {
		if err != nil {
			r.mu.Lock()
			if r.rewind < 0 || start < r.rewind {
				r.rewind = start
			}
			r.mu.Unlock()
			return nil
		}
		r.spool.ack(end)
		return nil
	}, nil
}

func (r *spoolReader) close() error {
	if r.spool == nil {
		return nil
	}
	return r.spool.Close()
}
