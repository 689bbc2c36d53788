package demotest

// Client records a line of what the client did or saw, for a session whose
// client is more than one request and its answer: an event stream, a
// WebSocket.
func (s *Session) Client(text string) { s.record("client", text) }
