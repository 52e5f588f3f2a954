package breaker

import (
	"context"
	"testing"
	"time"
)

func BenchmarkBreakerCall(b *testing.B) {
	br := New(Settings{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Call(ctx, ok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDo(b *testing.B) {
	br := New(Settings{})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Do(ctx, br, fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBreakerCallParallel(b *testing.B) {
	br := New(Settings{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			br.Call(ctx, ok)
		}
	})
}

func BenchmarkMachineAllowSuccess(b *testing.B) {
	m := NewMachine(Settings{})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Allow(now); err != nil {
			b.Fatal(err)
		}
		m.Success(now)
	}
}
