package typo

import (
	"strings"
	"testing"
)

func TestDistance(t *testing.T) {
	long := strings.Repeat("a", 65)
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"command", "command", 0},
		{"comand", "command", 1},
		{"statuss", "status", 1},
		{"stauts", "status", 2},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
		{long, long, 0},
		{long, "a", 65},
	} {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := Distance(c.b, c.a); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetric)", c.b, c.a, got, c.want)
		}
	}
}
