package supervisor

import (
	"sync"
)

// lineRing keeps the last lines of one program's output for `supervise
// logs`: at most maxLines of them, in at most conf.MaxLogBufferBytes of
// memory, index included. It allocates only as lines arrive, growing by
// doubling, so a program that never writes costs the empty struct.
//
// The output reader adds lines (add), and any number of readers copy them
// out (read) and wait for more (subscribe), concurrently: every method
// takes the ring's lock, which add holds for a copy of the line. Each line
// has a sequence number, increasing by one per line since the ring was
// made; a reader keeps the number of the next line it wants, and learns
// from read how many were evicted before it could read them.
type lineRing struct {
	mu       sync.Mutex
	maxLines int
	maxBytes int // data and index together

	data    []byte      // records, circular; a record never wraps
	end     int         // where the newest record ends in data
	idx     []ringEntry // circular index, of a power of two length
	head    int         // idx position of the oldest entry
	n       int         // entries held
	first   uint64      // sequence number of the oldest entry
	wrapped bool        // the newest records sit below the oldest in data
	subs    []chan struct{}
}

// ringEntry locates one line; flags and length share a word.
type ringEntry struct {
	ts  int64 // Unix nanoseconds
	off uint32
	lf  uint32 // length | flags
}

// Flags of a ring entry.
const (
	ringStderr  uint32 = 1 << 31 // the line is from stderr
	ringPartial uint32 = 1 << 30 // a leading piece of a line cut at procs.MaxLine
	ringDropped uint32 = 1 << 29 // a marker: the line holds how many lines log_rate dropped
	ringLenMask uint32 = 1<<29 - 1
)

func (e ringEntry) len() int { return int(e.lf & ringLenMask) }

// entrySize is the memory of one index slot.
const entrySize = 16

// Initial sizes, doubled as lines arrive.
const (
	ringMinData  = 4 << 10
	ringMinIndex = 16
)

func newLineRing(maxLines, maxBytes int) *lineRing {
	return &lineRing{maxLines: maxLines, maxBytes: maxBytes}
}

// setMaxLines changes the number of lines kept, evicting the oldest when
// it shrinks.
func (r *lineRing) setMaxLines(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxLines = n
	for r.n > max(n, 0) {
		r.evict()
	}
	if n <= 0 {
		r.data, r.idx, r.head, r.wrapped = nil, nil, 0, false
		return
	}
	for r.n > 0 && r.liveBytes() > r.dataLimit() {
		r.evict()
	}
	if len(r.idx) > pow2(n) || len(r.data) > r.dataLimit() {
		r.resize(min(len(r.data), r.dataLimit()), min(len(r.idx), pow2(n)))
	}
}

// add appends a line (flags: ringStderr, ringPartial, ringDropped),
// evicting the oldest lines it needs the room of, and wakes subscribers.
// A line longer than the whole budget is cut to fit.
func (r *lineRing) add(ts int64, flags uint32, line []byte) {
	r.mu.Lock()
	r.addLocked(ts, flags, line)
	r.notifyLocked()
	r.mu.Unlock()
}

// addLocked is add without the wakeup, under the lock.
func (r *lineRing) addLocked(ts int64, flags uint32, line []byte) {
	if r.maxLines <= 0 {
		return
	}
	if r.n >= r.maxLines || (r.n == len(r.idx) && !r.growIndex()) {
		r.evict()
	}
	off, ok := r.place(len(line))
	for !ok {
		switch {
		case r.growData(len(line)):
		case r.n > 0:
			r.evict()
		case len(r.data) < r.dataLimit():
			r.resize(r.dataLimit(), len(r.idx))
		default: // alone, and still too long for the budget: cut it
			line = line[:len(r.data)]
		}
		off, ok = r.place(len(line))
	}
	copy(r.data[off:], line)
	r.idx[(r.head+r.n)&(len(r.idx)-1)] = ringEntry{ts: ts, off: uint32(off), lf: uint32(len(line)) | flags}
	r.n++
	r.end = off + len(line)
}

// notifyLocked wakes the subscribers, under the lock.
func (r *lineRing) notifyLocked() {
	for _, c := range r.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// place finds where a record of size l goes, and marks the wrap when it
// goes back to the start of data.
func (r *lineRing) place(l int) (int, bool) {
	if r.n == 0 {
		r.wrapped, r.end = false, 0
		return 0, l <= len(r.data)
	}
	start, end := int(r.idx[r.head].off), r.end
	if r.wrapped {
		return end, start-end >= l
	}
	if len(r.data)-end >= l {
		return end, true
	}
	if start > l { // strictly: a record at 0 must not reach the oldest
		r.wrapped = true
		return 0, true
	}
	return 0, false
}

// evict drops the oldest entry.
func (r *lineRing) evict() {
	if r.n == 0 {
		return
	}
	old := r.idx[r.head].off
	r.head = (r.head + 1) & (len(r.idx) - 1)
	r.n--
	r.first++
	if r.n == 0 {
		r.head, r.wrapped, r.end = 0, false, 0
	} else if r.wrapped && r.idx[r.head].off < old {
		r.wrapped = false // the oldest is now below the wrap
	}
}

// growIndex doubles the index, up to the power of two that holds
// maxLines, within the byte budget, of which it takes half at most: short
// lines are many.
func (r *lineRing) growIndex() bool {
	n := min(max(2*len(r.idx), ringMinIndex), pow2(r.maxLines))
	if n <= len(r.idx) || n*entrySize > r.maxBytes/2 || n*entrySize+len(r.data) > r.maxBytes {
		return false
	}
	r.resize(len(r.data), n)
	return true
}

// growData doubles the data (at least to fit need more bytes), within the
// byte budget.
func (r *lineRing) growData(need int) bool {
	live := r.liveBytes()
	size := max(2*len(r.data), ringMinData)
	for size < live+need {
		size *= 2
	}
	size = min(size, r.dataLimit())
	if size <= len(r.data) || size < live+need {
		return false
	}
	r.resize(size, len(r.idx))
	return true
}

// liveBytes is the data of the entries held.
func (r *lineRing) liveBytes() int {
	live := 0
	for i := 0; i < r.n; i++ {
		live += r.idx[(r.head+i)&(len(r.idx)-1)].len()
	}
	return live
}

// dataLimit is the most data may take: the budget less the room the
// index may grow to.
func (r *lineRing) dataLimit() int {
	return r.maxBytes - max(len(r.idx), min(pow2(r.maxLines), r.maxBytes/2/entrySize))*entrySize
}

// resize copies the entries into new data and index of the given sizes,
// compacted, oldest first. The entries must fit.
func (r *lineRing) resize(dataSize, idxSize int) {
	data := make([]byte, dataSize)
	idx := make([]ringEntry, idxSize)
	off := 0
	for i := 0; i < r.n; i++ {
		e := r.idx[(r.head+i)&(len(r.idx)-1)]
		copy(data[off:], r.data[e.off:int(e.off)+e.len()])
		e.off = uint32(off)
		off += e.len()
		idx[i] = e
	}
	r.data, r.idx, r.head, r.wrapped, r.end = data, idx, 0, false, off
}

// pow2 returns the least power of two at least n (and ringMinIndex).
func pow2(n int) int {
	p := ringMinIndex
	for p < n {
		p *= 2
	}
	return p
}

// bounds returns the sequence numbers of the oldest line held and of the
// next line to come.
func (r *lineRing) bounds() (first, next uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first, r.first + uint64(r.n)
}

// tsAt returns the time of line seq, if it is held.
func (r *lineRing) tsAt(seq uint64) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq < r.first || seq >= r.first+uint64(r.n) {
		return 0, false
	}
	return r.idx[(r.head+int(seq-r.first))&(len(r.idx)-1)].ts, true
}

// firstSince returns the sequence number of the first line held at or
// after ts (the next line to come when there is none), searching by time:
// lines are in time order as long as the clock does not step back.
func (r *lineRing) firstSince(ts int64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	lo, hi := 0, r.n
	for lo < hi {
		m := (lo + hi) / 2
		if r.idx[(r.head+m)&(len(r.idx)-1)].ts < ts {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return r.first + uint64(lo)
}

// read calls fn for the lines from seq from on, oldest first, at most
// maxLines of them, and returns the sequence number of the next line to
// read and how many lines between from and the oldest held were evicted.
// fn runs under the ring's lock: line is valid only during the call.
func (r *lineRing) read(from uint64, maxLines int, fn func(seq uint64, ts int64, flags uint32, line []byte)) (next, skipped uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if from < r.first {
		skipped, from = r.first-from, r.first
	}
	end := r.first + uint64(r.n)
	for ; from < end && maxLines > 0; from++ {
		e := r.idx[(r.head+int(from-r.first))&(len(r.idx)-1)]
		fn(from, e.ts, e.lf&^ringLenMask, r.data[e.off:int(e.off)+e.len()])
		maxLines--
	}
	return from, skipped
}

// subscribe makes add signal c (capacity 1, never blocking) on every line
// until unsubscribe.
func (r *lineRing) subscribe(c chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs = append(r.subs, c)
}

func (r *lineRing) unsubscribe(c chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, s := range r.subs {
		if s == c {
			r.subs = append(r.subs[:i], r.subs[i+1:]...)
			break
		}
	}
	if len(r.subs) == 0 {
		r.subs = nil
	}
}

// memory returns the bytes the ring holds allocated.
func (r *lineRing) memory() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.data) + len(r.idx)*entrySize
}
