package demotest

// As records a line of what another actor did or saw, such as one of
// several clients, named in at most six letters ("watch", "sleep").
func (s *Session) As(who, text string) { s.record(who, text) }
