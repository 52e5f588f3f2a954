package main

import (
	"io"
	"sync"
)

// batchWriter is the supervisor's log sink. Writes go straight through,
// except between Batch(true) and Batch(false), when they are gathered and
// written with one system call at the end (or whenever 64 KiB have
// gathered). The output reader brackets each read round with Batch, so a
// program that prints thousands of lines costs a few writes, not one per
// line, while a lone log entry is never delayed.
type batchWriter struct {
	mu    sync.Mutex
	w     io.Writer
	depth int
	buf   []byte
	err   error // the first write error, kept for Sync
}

const batchFlushAt = 64 << 10

func newBatchWriter(w io.Writer) *batchWriter { return &batchWriter{w: w} }

// Write writes p now, or gathers it while a batch is open; a large p (a
// round of program lines gathered by the line writer) is written as it
// is, after what was gathered before it, rather than copied.
func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.depth == 0 {
		return b.w.Write(p)
	}
	if len(p) >= batchFlushAt {
		b.flushLocked()
		n, err := b.w.Write(p)
		if err != nil && b.err == nil {
			b.err = err
		}
		return n, err
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= batchFlushAt {
		b.flushLocked()
	}
	return len(p), nil
}

// Batch opens (begin) or closes a batch; closing the outermost one writes
// what was gathered.
func (b *batchWriter) Batch(begin bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if begin {
		b.depth++
		return
	}
	if b.depth > 0 {
		b.depth--
	}
	if b.depth == 0 {
		b.flushLocked()
	}
}

// Sync writes anything gathered and reports the first write error.
func (b *batchWriter) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	return b.err
}

func (b *batchWriter) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	if _, err := b.w.Write(b.buf); err != nil && b.err == nil {
		b.err = err
	}
	if cap(b.buf) > 4*batchFlushAt {
		b.buf = nil // a burst is over: give the memory back
	} else {
		b.buf = b.buf[:0]
	}
}
