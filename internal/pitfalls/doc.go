// Package pitfalls proves the graceful-shutdown pitfalls that no step of
// the walkthrough shows by itself, against net/http and os/signal directly.
// It has no code to import: everything is in its tests, one test per
// pitfall, named after it, and listed in docs/pitfalls.md.
//
// The tests that need a process of their own (a signal that cannot be
// caught, log.Fatal skipping deferred calls, an orchestrator's SIGKILL, a
// goroutine lost at exit, a deadline cancelled before it starts)
// re-execute the test binary as a small program, as the steps' tests do;
// see main_test.go. The tests that need time to pass (a shutdown without
// a deadline, the five-second rule for new connections) run in a
// testing/synctest bubble, on a fake clock, over in-memory connections.
// One builds a snippet exactly as an article prints it, kept in testdata,
// and reads what the compiler says of it.
package pitfalls
