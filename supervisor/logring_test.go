package supervisor

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// ringLines returns the lines a ring holds, with their sequence numbers.
func ringLines(r *lineRing) (seqs []uint64, lines []string) {
	r.read(0, 1<<30, func(seq uint64, _ int64, _ uint32, line []byte) {
		seqs = append(seqs, seq)
		lines = append(lines, string(line))
	})
	return seqs, lines
}

func TestRingKeepsLastLines(t *testing.T) {
	r := newLineRing(1000, 1<<20)
	if m := r.memory(); m != 0 {
		t.Fatalf("an empty ring holds %d bytes", m)
	}
	line := func(i int) string { return fmt.Sprintf("%099d", i) }
	for i := 0; i < 10000; i++ {
		r.add(int64(i), 0, []byte(line(i)))
	}
	seqs, lines := ringLines(r)
	if len(lines) != 1000 || seqs[0] != 9000 || lines[0] != line(9000) || lines[999] != line(9999) {
		t.Fatalf("held %d lines, first %d %q", len(lines), seqs[0], lines[0][:10])
	}
	if m := r.memory(); m > 1000*100*2+1024*entrySize {
		t.Errorf("1000 lines of 100 bytes take %d bytes", m)
	}
	first, next := r.bounds()
	if first != 9000 || next != 10000 {
		t.Errorf("bounds %d %d", first, next)
	}
	// A reader that fell behind learns how many it lost.
	n, skipped := r.read(8500, 10, func(uint64, int64, uint32, []byte) {})
	if skipped != 500 || n != 9010 {
		t.Errorf("read from 8500: next %d skipped %d", n, skipped)
	}
	if got := r.firstSince(9500); got != 9500 {
		t.Errorf("firstSince(9500) = %d", got)
	}
	if got := r.firstSince(1 << 40); got != 10000 {
		t.Errorf("firstSince(future) = %d", got)
	}
}

func TestRingByteBudget(t *testing.T) {
	r := newLineRing(1000, 1<<20)
	big := bytes.Repeat([]byte("x"), 64<<10)
	for i := 0; i < 100; i++ {
		big[0] = byte('a' + i%26)
		r.add(int64(i), ringStderr, big)
	}
	if m := r.memory(); m > 1<<20 {
		t.Fatalf("ring holds %d bytes, over its budget", m)
	}
	_, lines := ringLines(r)
	if len(lines) < 12 || len(lines) > 16 {
		t.Fatalf("held %d lines of 64 KiB in 1 MiB", len(lines))
	}
	if lines[len(lines)-1][0] != byte('a'+99%26) {
		t.Fatal("the newest line is not the last added")
	}
	r.setMaxLines(3)
	if _, lines := ringLines(r); len(lines) != 3 {
		t.Fatalf("after setMaxLines(3): %d lines", len(lines))
	}
	r.setMaxLines(0)
	r.add(1, 0, []byte("dropped"))
	if _, lines := ringLines(r); len(lines) != 0 || r.memory() != 0 {
		t.Fatalf("a disabled ring holds %d lines, %d bytes", len(lines), r.memory())
	}
}

func TestRingFlagsAndSubscribers(t *testing.T) {
	r := newLineRing(10, 1<<20)
	c := make(chan struct{}, 1)
	r.subscribe(c)
	r.add(5, ringStderr|ringPartial, []byte("cut"))
	select {
	case <-c:
	default:
		t.Fatal("no wakeup on a new line")
	}
	r.unsubscribe(c)
	r.add(6, 0, []byte("x"))
	select {
	case <-c:
		t.Fatal("a wakeup after unsubscribe")
	default:
	}
	var flags []uint32
	r.read(0, 10, func(_ uint64, ts int64, f uint32, _ []byte) { flags = append(flags, f) })
	if len(flags) != 2 || flags[0] != ringStderr|ringPartial || flags[1] != 0 {
		t.Fatalf("flags %x", flags)
	}
}

// TestRingModel checks the ring against a plain list of every line added:
// it always holds a suffix of them, with their sequence numbers, within
// its line and byte limits, and never fewer lines than fit in half the
// byte budget.
func TestRingModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		maxLines := rapid.IntRange(1, 300).Draw(t, "maxLines")
		maxBytes := rapid.IntRange(1<<10, 64<<10).Draw(t, "maxBytes")
		r := newLineRing(maxLines, maxBytes)
		var all []string
		avail := 0 // lines added that no limit has evicted yet
		ops := rapid.IntRange(1, 400).Draw(t, "ops")
		for i := 0; i < ops; i++ {
			if rapid.IntRange(0, 50).Draw(t, "op") == 0 {
				maxLines = rapid.IntRange(1, 300).Draw(t, "newMax")
				r.setMaxLines(maxLines)
				_, held := ringLines(r)
				avail = min(len(held), maxLines)
			} else {
				avail = min(avail+1, maxLines)
				n := rapid.IntRange(0, min(700, maxBytes/4)).Draw(t, "len")
				l := strings.Repeat(string(rune('a'+len(all)%26)), n)
				r.add(int64(len(all)), 0, []byte(l))
				all = append(all, l)
			}
			seqs, lines := ringLines(r)
			if len(lines) > maxLines {
				t.Fatalf("%d lines held, limit %d", len(lines), maxLines)
			}
			if m := r.memory(); m > maxBytes {
				t.Fatalf("%d bytes held, budget %d", m, maxBytes)
			}
			start := len(all) - len(lines)
			for j, l := range lines {
				if l != all[start+j] || seqs[j] != uint64(start+j) {
					t.Fatalf("line %d (seq %d) = %.10q, want seq %d %.10q", j, seqs[j], l, start+j, all[start+j])
				}
			}
			// Lines that together take less than a quarter of the budget
			// are always kept (up to maxLines).
			want, size := 0, 0
			for k := len(all) - 1; k >= 0 && want < avail; k-- {
				if size += len(all[k]); size > maxBytes/4-64*entrySize {
					break
				}
				want++
			}
			if len(lines) < want {
				t.Fatalf("%d lines held, %d fit easily", len(lines), want)
			}
		}
	})
}

func BenchmarkRingAdd(b *testing.B) {
	r := newLineRing(1000, 1<<20)
	line := bytes.Repeat([]byte("x"), 99)
	b.SetBytes(100)
	for i := 0; i < b.N; i++ {
		r.add(int64(i), 0, line)
	}
}
