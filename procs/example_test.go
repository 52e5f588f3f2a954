package procs_test

import (
	"fmt"

	"github.com/supervise/supervise/procs"
)

func ExampleReaper_Spawn() {
	r, err := procs.NewReaper(procs.ReaperOptions{Subreaper: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	exited := make(chan procs.Exit, 1)
	p, err := r.Spawn(procs.Spec{
		Argv: []string{"sh", "-c", "echo hello; exit 3"},
		Env:  []string{"PATH=/usr/bin:/bin"},
		Stdout: procs.Output{Kind: procs.Lines, OnLine: func(line []byte, partial bool) {
			fmt.Printf("line %q\n", line)
		}},
	}, func(e procs.Exit) { exited <- e }) // forward to the owner's event loop
	if err != nil {
		fmt.Println(err)
		return
	}
	e := <-exited
	<-p.OutputDone()
	fmt.Println(e, e.ShellCode())
	// Output:
	// line "hello"
	// exit 3 3
}

func ExampleSpawnError() {
	r, err := procs.NewReaper(procs.ReaperOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	_, err = r.Spawn(procs.Spec{Argv: []string{"/bin/true"}, Dir: "/nope"}, nil)
	fmt.Println(err)
	// Output: chdir /nope: no such file or directory
}
