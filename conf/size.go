package conf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxLogFiles is the largest log_max_files.
const MaxLogFiles = 1000

// sizeUnits are the suffixes ParseSize accepts, longest first within each
// letter. KB, MB and GB are powers of 1024, as supervisord's
// logfile_maxbytes reads them, so a migrated setting keeps its meaning.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"kb", 1 << 10}, {"k", 1 << 10},
	{"mib", 1 << 20}, {"mb", 1 << 20}, {"m", 1 << 20},
	{"gib", 1 << 30}, {"gb", 1 << 30}, {"g", 1 << 30},
	{"tib", 1 << 40}, {"tb", 1 << 40}, {"t", 1 << 40},
	{"b", 1},
}

// ParseSize reads a size in bytes: a number with an optional unit, such as
// "50MB", "1.5 GiB", "512k" or "1000". Units are case-insensitive; K, M, G
// and T (with or without B, or as KiB ...) are powers of 1024. The result
// is rounded down to whole bytes and must not be negative.
func ParseSize(s string) (int64, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(in, u.suffix) {
			in, mult = strings.TrimSpace(strings.TrimSuffix(in, u.suffix)), u.mult
			break
		}
	}
	if in == "" || strings.ContainsAny(in, "+-_") {
		return 0, fmt.Errorf("invalid size %q (use a number of bytes, or a number with KB, MB or GB, like \"50MB\")", s)
	}
	if n, err := strconv.ParseInt(in, 10, 64); err == nil {
		if n > math.MaxInt64/mult {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(in, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid size %q (use a number of bytes, or a number with KB, MB or GB, like \"50MB\")", s)
	}
	b := f * float64(mult)
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(b), nil
}

// FormatSize writes n with the largest unit that divides it exactly
// ("50MB", "1536KB", "100"), in the form ParseSize reads.
func FormatSize(n int64) string {
	if n > 0 {
		for _, u := range []struct {
			s string
			m int64
		}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}} {
			if n%u.m == 0 {
				return strconv.FormatInt(n/u.m, 10) + u.s
			}
		}
	}
	return strconv.FormatInt(n, 10)
}
