// Package signals proves docs/signals.md: how a signal gets from whoever
// sends it (a terminal's Ctrl+C, kill, a container runtime, an init) to
// the program, through the wrapper that stands between them: make, go run,
// a shell, unshare's PID namespace with the program, a shell, tini or
// dumb-init as its PID 1.
//
// It has no code to import: everything is in its tests, one per row of the
// page, and three of the pitfalls (31 to 33 in docs/pitfalls.md). Each test
// starts the real wrapper around step 04's real binary, built once by
// TestMain, sends the signal the way a user or a runtime does (to the
// group, as a terminal does; to the pid that ps shows first; to the init's
// pid as seen from outside its namespace), and checks what the program
// logged, what its client got and how each process ended. It waits for
// events (a log line, a process's exit, the end of the output), never for
// time.
//
// The rows live here, not beside a step, because none is about one step:
// they are about what runs in front of any of them, and step 04 is only
// the smallest program that logs when a signal reaches it.
package signals
