package procs

import "testing"

// BenchmarkSpawnReap spawns /bin/true and waits for its exit to be
// delivered through the reaper.
func BenchmarkSpawnReap(b *testing.B) {
	r, ol := newTestReaper(b)
	ch := make(chan Exit, 1)
	onExit := func(e Exit) { ch <- e }
	spec := Spec{Argv: []string{"/bin/true"}, Stdout: Output{Kind: Null}, Stderr: Output{Kind: Null}}
	for b.Loop() {
		if _, err := r.Spawn(spec, onExit); err != nil {
			b.Fatal(err)
		}
		if e := <-ch; e.Code() != 0 {
			b.Fatal(e)
		}
	}
	if ol.count() != 0 {
		b.Fatalf("%d unknown exits", ol.count())
	}
}
