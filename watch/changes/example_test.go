package changes_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/supervise/supervise/watch/changes"
)

func ExampleWatcher() {
	dir, err := os.MkdirTemp("", "example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.toml")
	os.WriteFile(path, []byte("old"), 0o644)

	reports := make(chan changes.Change, 10)
	w, err := changes.New(func(c changes.Change) { reports <- c })
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	if _, err := w.AddFile(path); err != nil {
		fmt.Println(err)
		return
	}

	// A write in place in two steps is one change, reported at the close.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	f.WriteString("[programs.web]\n")
	f.WriteString(`command = ["web"]` + "\n")
	f.Close()
	c := <-reports
	data, _ := os.ReadFile(c.Path)
	fmt.Printf("%s %s: %d bytes\n", c.Op, filepath.Base(c.Path), len(data))

	// An atomic save is a replacement.
	os.WriteFile(path+".tmp", []byte("new"), 0o644)
	os.Rename(path+".tmp", path)
	c = <-reports
	fmt.Println(c.Op, filepath.Base(c.Path))
	// Output:
	// written app.toml: 33 bytes
	// replaced app.toml
}
