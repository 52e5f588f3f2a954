package procs

import (
	"syscall"
	"testing"
)

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

// BenchmarkSpawnOnly measures Spawn alone (the parent's side of starting a
// program), next to a bare os.StartProcess of the same binary.
func BenchmarkSpawnOnly(b *testing.B) {
	r, _ := newTestReaper(b)
	spec := Spec{Argv: []string{"/bin/sleep", "1000"}, Stdout: Output{Kind: Null}, Stderr: Output{Kind: Null}}
	var ps []*Process
	b.Run("procs.Spawn", func(b *testing.B) {
		for b.Loop() {
			p, err := r.Spawn(spec, func(Exit) {})
			if err != nil {
				b.Fatal(err)
			}
			ps = append(ps, p)
		}
	})
	for _, p := range ps {
		p.SignalGroup(syscall.SIGKILL)
	}
	for _, p := range ps {
		<-p.Done()
	}
}
