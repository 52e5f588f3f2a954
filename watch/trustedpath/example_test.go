package trustedpath_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/supervise/supervise/watch/trustedpath"
)

func ExampleMkdirAll() {
	base, err := os.MkdirTemp("", "example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(base)

	dir := filepath.Join(base, "run", "supervise")
	if err := trustedpath.MkdirAll(dir, 0o700); err != nil {
		fmt.Println(err)
		return
	}
	os.Chmod(dir, 0o700) // whatever the umask
	fmt.Println("private:", trustedpath.CheckPrivateDir(dir) == nil)

	os.Chmod(dir, 0o755)
	err = trustedpath.CheckPrivateDir(dir)
	fmt.Println("private after chmod 755:", !errors.Is(err, trustedpath.ErrNotPrivate))
	// Output:
	// private: true
	// private after chmod 755: false
}
