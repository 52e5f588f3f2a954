// Package typo measures how far a misspelt word is from the words it
// may have meant, for the "did you mean" of configuration keys, values,
// program names and command names.
package typo

// maxLen bounds the quadratic work: a word longer than this is never a
// typo worth suggesting for.
const maxLen = 64

// Distance is the Levenshtein distance between a and b, in bytes. Words
// longer than 64 bytes are not compared: their distance is 0 when they
// are equal and the longer length otherwise.
func Distance(a, b string) int {
	if len(a) > maxLen || len(b) > maxLen {
		if a == b {
			return 0
		}
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
