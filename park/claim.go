package park

// Claiming a particular orbit, for a pickup the switch places itself (the
// park board's "Retrieve to…"): the phone that answers must take exactly
// the call it was rung for, never another call parked at the same code
// after the first one ended.

// Lookup is the orbit with code in the table of the policy named identity
// (ignoring case), parked or ringing; nil when there is none.
func (l *Lot) Lookup(identity string, code int) *Orbit {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.table(identity, false); t != nil {
		return t.orbits[code]
	}
	return nil
}

// Claim takes o for by as a retrieve does: the code is freed, the timer
// stopped and a ringback in progress cancelled, and EventRetrieve reports
// by as the retriever. Of Claim, Retrieve and an answered ringback racing
// for o, exactly one wins; the others find ErrNoOrbit. Claim fails with
// ErrNoOrbit too when o has already ended, and with ErrClosed after Close.
// It does not look at a policy: whoever asks for the claim decided that by
// may take the call.
func (l *Lot) Claim(o *Orbit, by Party) error {
	l.mu.Lock()
	defer l.unlock()
	if l.closed {
		return ErrClosed
	}
	if l.calls[o.callID] != o {
		return ErrNoOrbit
	}
	l.end(o, StateRetrieved)
	e := o.event(EventRetrieve, "")
	e.By = by
	l.emit(e)
	return nil
}
