package demotest

// PostJSON sends POST path with a JSON body, as `curl -d body` in a second
// terminal would, waits for the answer and records what the client saw.
func (s *Session) PostJSON(path, body string) Response {
	s.t.Helper()
	s.record("client", "POST "+path+" "+body)
	r, _ := s.P.PostJSON(path, body)
	s.record("client", describeResponse(r))
	return r
}
