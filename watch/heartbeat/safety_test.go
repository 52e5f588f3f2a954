package heartbeat

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/watch/trustedpath"
)

// readWithin runs read(path) and fails the test if it does not return
// within a few seconds (a blocked open or read): unblock then releases it.
func readWithin(t *testing.T, read func(string) (State, error), path string, unblock func()) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := read(path)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		unblock()
		<-done
		t.Fatalf("reading %s blocked", path)
		return nil
	}
}

// TestReadNeverBlocks puts a FIFO, a device and links in the place of a
// heartbeat file: both readers refuse them at once, without reading.
func TestReadNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := Write(good, State{Timestamp: t0, PID: 3}); err != nil {
		t.Fatal(err)
	}

	// A FIFO nobody writes to: a blocking open would wait for a writer.
	lonely := filepath.Join(dir, "lonely")
	if err := syscall.Mkfifo(lonely, 0o644); err != nil {
		t.Fatal(err)
	}
	unblockLonely := func() {
		if f, err := os.OpenFile(lonely, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	}
	// A FIFO with a writer that never writes: the open succeeds, a read
	// would wait forever.
	silent := filepath.Join(dir, "silent")
	if err := syscall.Mkfifo(silent, 0o644); err != nil {
		t.Fatal(err)
	}
	writer, err := os.OpenFile(silent, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	unblockSilent := func() { writer.Write([]byte("x")); writer.Close() }

	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	toGood := filepath.Join(dir, "to-good")
	if err := os.Symlink(good, toGood); err != nil {
		t.Fatal(err)
	}
	toFIFO := filepath.Join(dir, "to-fifo")
	if err := os.Symlink(lonely, toFIFO); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, MaxSize+1), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		path         string
		follow, safe string // what the error says ("" for no error)
		unblock      func()
	}{
		{lonely, "FIFO", "FIFO", unblockLonely},
		{silent, "FIFO", "FIFO", unblockSilent},
		{"/dev/zero", "character device", "character device", func() {}},
		{zero, "character device", "symbolic link", func() {}},
		{toFIFO, "FIFO", "symbolic link", unblockLonely},
		{toGood, "", "symbolic link", func() {}},
		{good, "", "", func() {}},
		{dir, "directory", "directory", func() {}},
	}
	for _, tc := range cases {
		for _, r := range []struct {
			name string
			read func(string) (State, error)
			want string
		}{{"Read", Read, tc.follow}, {"ReadNoFollow", ReadNoFollow, tc.safe}} {
			err := readWithin(t, r.read, tc.path, tc.unblock)
			switch {
			case r.want == "" && err != nil:
				t.Errorf("%s(%s): %v", r.name, tc.path, err)
			case r.want != "" && (!errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), r.want) || !strings.Contains(err.Error(), tc.path)):
				t.Errorf("%s(%s) = %v, want ErrNotRegular naming the path and saying %q", r.name, tc.path, err, r.want)
			}
		}
	}
	for _, read := range []func(string) (State, error){Read, ReadNoFollow} {
		if _, err := read(big); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), big) {
			t.Errorf("oversized file: %v", err)
		}
		if _, err := read(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing file: %v", err)
		}
	}
	if st, err := ReadNoFollow(good); err != nil || st.PID != 3 || !st.Timestamp.Equal(t0) {
		t.Errorf("ReadNoFollow(good) = %+v, %v", st, err)
	}
}

// TestReadFIFOSwappedIn replaces a heartbeat file by a FIFO while readers
// run in a loop: no read may block.
func TestReadFIFOSwappedIn(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hb")
	fifo := filepath.Join(dir, "fifo")
	stop := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				Write(path, State{Timestamp: t0})
				continue
			}
			os.Remove(fifo)
			if syscall.Mkfifo(fifo, 0o644) == nil {
				os.Rename(fifo, path)
			}
		}
	}()
	defer func() {
		close(stop)
		<-swapped
	}()
	var regular, refused int
	for range 2000 {
		err := readWithin(t, ReadNoFollow, path, func() {
			if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		})
		switch {
		case err == nil:
			regular++
		case errors.Is(err, ErrNotRegular):
			refused++
		}
	}
	t.Logf("%d beats read, %d FIFOs refused", regular, refused)
}

func TestWriteRefusesForeignLink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a symbolic link")
	}
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "hbdir")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(link, "hb"), State{Timestamp: t0}); !errors.Is(err, trustedpath.ErrUntrustedLink) {
		t.Errorf("Write through another user's link: %v", err)
	}
	// The writer creates missing directories without following it either.
	var hookErr error
	w := NewWriter(filepath.Join(link, "sub", "hb"), time.Second, WithOnError(func(err error) { hookErr = err }))
	if err := w.Beat(); !errors.Is(err, trustedpath.ErrUntrustedLink) || hookErr != err {
		t.Errorf("Beat through another user's link: %v (hook %v)", err, hookErr)
	}
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Errorf("written through the link: %v", entries)
	}
	// A link of root's own is followed.
	if err := os.Lchown(link, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := NewWriter(filepath.Join(link, "sub", "hb"), time.Second).Beat(); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(filepath.Join(victim, "sub", "hb")); err != nil {
		t.Errorf("beat through root's link: %v", err)
	}
}
