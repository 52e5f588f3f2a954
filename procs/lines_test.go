package procs

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitLines(t *testing.T) {
	type piece struct {
		n       int // length of the piece
		c       byte
		partial bool
	}
	rep := strings.Repeat
	for _, tc := range []struct {
		name string
		in   string
		want []piece
	}{
		{"empty", "", nil},
		{"one", "x\n", []piece{{1, 'x', false}}},
		{"unterminated", "x", []piece{{1, 'x', false}}},
		{"empty lines", "\n\n", []piece{{0, 0, false}, {0, 0, false}}},
		{"exactly MaxLine", rep("a", MaxLine) + "\n", []piece{{MaxLine, 'a', false}}},
		{"exactly MaxLine at EOF", rep("a", MaxLine), []piece{{MaxLine, 'a', false}}},
		{"MaxLine+1", rep("a", MaxLine+1) + "\n", []piece{{MaxLine, 'a', true}, {1, 'a', false}}},
		{"2*MaxLine", rep("a", 2*MaxLine) + "\n", []piece{{MaxLine, 'a', true}, {MaxLine, 'a', false}}},
		{"2*MaxLine at EOF", rep("a", 2*MaxLine), []piece{{MaxLine, 'a', true}, {MaxLine, 'a', false}}},
		{"long then short", rep("a", 100<<10) + "\nb\n", []piece{{MaxLine, 'a', true}, {100<<10 - MaxLine, 'a', false}, {1, 'b', false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{1 << 20, 1, 16, 4096} {
				var got []piece
				st := &stream{onLine: func(b []byte, partial bool) {
					p := piece{n: len(b), partial: partial}
					if len(b) > 0 {
						p.c = b[0]
						if strings.Count(string(b), string(b[:1])) != len(b) {
							t.Fatalf("mixed piece %q", b)
						}
					}
					got = append(got, p)
				}}
				for in := []byte(tc.in); len(in) > 0; {
					n := min(chunk, len(in))
					st.split(in[:n])
					in = in[n:]
				}
				if len(st.acc) > 0 { // EOF, as lineMux.finish does it
					st.onLine(st.acc, false)
				}
				small := chunk
				if !slices.Equal(got, tc.want) {
					t.Fatalf("chunk=%d: got %v, want %v", small, got, tc.want)
				}
			}
		})
	}
}
