package conf

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"100", 100}, {"100b", 100}, {"512k", 512 << 10}, {"512KB", 512 << 10}, {"512 KiB", 512 << 10},
		{"50MB", 50 << 20}, {"50mb", 50 << 20}, {" 50 MiB ", 50 << 20}, {"1.5GB", 3 << 29}, {"2G", 2 << 30},
		{"1TB", 1 << 40}, {"0.5k", 512},
	} {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "MB", "-1", "-1MB", "+5", "1_000", "50XB", "1e30GB", "nan", "inf", "9999999999TB", "5 M B"} {
		if n, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, n)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 100: "100", 1024: "1KB", 1536: "1536", 50 << 20: "50MB", 3 << 29: "1536MB", 1 << 40: "1TB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	}
}

func TestLogFileKeys(t *testing.T) {
	cfg := mustParse(t, `
[defaults]
log_max_size = "10MB"
[programs.a]
command = "x"
stdout = "/tmp/a.log"
log_max_files = 0
[programs.b]
command = "x"
log_max_size = 1000
log_buffer = 0
`)
	a, b := cfg.Programs["a"], cfg.Programs["b"]
	if a.LogMaxSize != 10<<20 || a.LogMaxFiles != 0 || a.LogBuffer != DefaultLogBuffer || !a.OwnsFile(a.Stdout) || a.OwnsFile(a.Stderr) {
		t.Errorf("a = %+v", a)
	}
	if b.LogMaxSize != 1000 || b.LogBuffer != 0 || b.LogMaxFiles != DefaultLogMaxFiles || b.OwnsFile(b.Stdout) {
		t.Errorf("b = %+v", b)
	}
	if s := a.Summary(); !strings.Contains(s, "log_max_size 10MB") || !strings.Contains(s, "log_max_files 0") {
		t.Errorf("Summary() = %q", s)
	}
	if d := a.Diff(b); !strings.Contains(strings.Join(d, " "), "log_max_size") {
		t.Errorf("Diff = %v", d)
	}
}

// FuzzParseSize checks that ParseSize never panics, never returns a
// negative size, and reads back what FormatSize writes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"50MB", "1.5 GiB", "0", "-1", "1e3k", "0x10", "9223372036854775807", "8EB", "k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Fatalf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	})
}
