// Package systemd speaks the sd_notify protocol in both directions.
//
// As a client, Notify and its helpers (Ready, Reloading, Stopping, Status,
// WatchdogPing) send one datagram per call to the socket named by
// $NOTIFY_SOCKET, a filesystem path or an abstract name written "@name",
// exactly as systemd's sd_notify(3) does. WatchdogInterval reads
// WATCHDOG_USEC and WATCHDOG_PID the way sd_watchdog_enabled(3) does.
//
// As a server, Listen creates a NOTIFY_SOCKET for one supervised program and
// calls a handler with every datagram that the program sent, attributed by
// the sender's kernel-checked credentials (SO_PASSCRED). The package promises
// that:
//
//   - every file descriptor that arrives with a datagram is closed at once, so
//     systemd-notify's BARRIER=1 handshake returns without waiting;
//   - datagrams from processes the caller does not accept, oversized,
//     empty or malformed datagrams are dropped, never delivered, and never
//     stop the listener; each one, and the descriptors that came with a
//     delivered message, is reported to the error handler with its cause and
//     the sender's pid and uid;
//   - the handlers are called from one goroutine, in arrival order, and never
//     after Listener.Close returns.
//
// Attributing a datagram to a program is done by pid. Run as root,
// systemd-notify reports its parent's pid (the shell or program that ran it)
// in the credentials, not its own; run as another user it reports its own
// pid, which is alive while it waits on its barrier. Accepting the program's
// pid and every descendant of it (IsDescendant) covers both cases.
package systemd
