// Package changes reports complete changes of files: a file is reported
// when whoever changed it is done, never while it is half written. It is
// meant for configuration files (a main file, included files, env files),
// where applying a truncated file is worse than applying it a moment late.
//
// A [Watcher] uses one inotify instance, one watch per directory, and
// filters the events on names. It watches single files ([Watcher.AddFile])
// and the entries of a directory that match a pattern
// ([Watcher.AddGlob], e.g. "conf.d/*.toml"). It reports each change as a
// [Change] to a callback; it does not wait for quiet periods or merge
// reports over time, which is the consumer's choice. A change may be
// reported more than once (a re-read that finds the same bytes is the
// consumer's to skip), and a change made just before AddFile in a
// directory that was already watched may be reported after it; a completed
// change is never left unreported unless the kernel gives no event for it
// (see Limits).
//
// # Which events are a change, and why
//
// The watch of a directory asks for IN_CLOSE_WRITE, IN_MOVED_TO,
// IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_DELETE_SELF and IN_MOVE_SELF
// (plus IN_UNMOUNT, IN_IGNORED and IN_Q_OVERFLOW, which inotify always
// sends). For a watched name:
//
//   - IN_CLOSE_WRITE is [Written]: a writer closed the file. A write in
//     place (`{ sleep 1; cat new; } > f`) is reported here, once, at the
//     end. IN_MODIFY is not asked for at all: it comes at the truncation
//     and at every write(2), when the content is partial.
//   - IN_MOVED_TO is [Replaced]: rename(2) put a whole file on the name (an
//     atomic save, `mv`, `sed -i`, `ln -sf`).
//   - IN_CREATE is [Replaced] only when the new file is already complete:
//     a symbolic link, a hard link, a FIFO or device node, or a regular file
//     that nobody holds open for writing and that is not empty with a single
//     link. A file created by open(2) (`>`, `cp`, `touch`, an editor) is
//     open for writing when its IN_CREATE is read, and is reported by its
//     IN_CLOSE_WRITE instead. Whether anyone holds the file open for
//     writing is asked of the kernel with a read lease (F_SETLEASE
//     F_RDLCK), which is refused while a writer has the file open; the
//     lease is dropped at once. Where leases are not available (not the
//     file's owner and not root, or a file system without them) only a
//     hard link (more than one link) is reported at IN_CREATE.
//   - IN_DELETE and IN_MOVED_FROM are [Removed].
//
// Symbolic links are followed and watched link by link: each link on a
// watched path (a link at the name, or a directory on the way that is a
// link) is a watched name in its own directory, and so is the file it
// finally resolves to, in that file's own directory. A link created,
// renamed over or removed re-resolves the path, and the result is
// reported: [Replaced] when the path now leads to a different (or a new)
// complete file, [Removed] when it leads nowhere. This is how a
// Kubernetes ConfigMap update is seen: the kubelet renames a new "..data"
// link over the old one, and the events name "..data", never the file.
// The same re-resolution follows a missing directory on the path (it is
// awaited in its nearest existing ancestor) and a watched directory that
// is removed, renamed or unmounted (IN_DELETE_SELF, IN_MOVE_SELF,
// IN_UNMOUNT): when it comes back, whatever is there is reported.
//
// An event-queue overflow (IN_Q_OVERFLOW) loses events: every watched path
// is re-resolved and reported as [Rescan] if it exists (or [Removed] if it
// existed and is gone), since any of them may have changed.
//
// # Globs
//
// A pattern matches the names of one directory with filepath.Match; only
// the last element of the pattern may hold wildcards. Names that begin
// with a dot match only a pattern that does, as in a shell (so editors'
// temporary files and Kubernetes' "..data" are not matches). Directories
// never match. A new match is reported as Written or Replaced by the rules
// above; a match that goes away as Removed.
//
// # Limits
//
// A file kept open for writing is not reported until it is closed. A
// change without a close or a rename, such as truncate(2) by path or a
// write through a shared mapping, is not seen. Renaming an ancestor of a
// watched directory (not the directory itself) is not seen either. A
// regular file made by mknod(2), empty, is reported only when something
// closes it after writing. The Watcher keeps every watched path in a list
// and scans it for each event: it is made for tens of files, not
// thousands.
package changes
