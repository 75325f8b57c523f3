package store

import (
	"context"
	"errors"
	"fmt"
)

// Allocate parks o at the next free code of start..end in o.Policy's table
// (SPEC §2): the code after the table's last one (start for the first park,
// or when that falls outside the range), skipping occupied codes, wrapping
// from end to start. Each code is taken with CreateOrbit, so two nodes
// allocating at once never get the same code. It returns the stored orbit,
// or ErrFull when every code is occupied.
func Allocate(ctx context.Context, s Orbits, o Orbit, start, end int) (Orbit, error) {
	if start <= 0 || end < start {
		return Orbit{}, fmt.Errorf("allocate in %q: range %d–%d: %w", o.Policy, start, end, ErrInvalid)
	}
	last, err := s.LastCode(ctx, o.Policy)
	if err != nil {
		return Orbit{}, fmt.Errorf("allocate in %q: %w", o.Policy, err)
	}
	code := start
	if last >= start && last < end {
		code = last + 1
	}
	var occupied map[int]bool // read once, on the first collision
	for range end - start + 1 {
		if !occupied[code] {
			o.Code = code
			created, err := s.CreateOrbit(ctx, o)
			if err == nil {
				// The cursor is a hint and correctness rests on CreateOrbit:
				// the orbit is parked even if it cannot be moved, and the
				// next park then probes a little further.
				_ = s.SetLastCode(ctx, o.Policy, code)
				return created, nil
			}
			if !errors.Is(err, ErrExists) {
				return Orbit{}, fmt.Errorf("allocate in %q: %w", o.Policy, err)
			}
			if occupied == nil {
				list, err := s.ListOrbits(ctx, o.Policy)
				if err != nil {
					return Orbit{}, fmt.Errorf("allocate in %q: %w", o.Policy, err)
				}
				occupied = make(map[int]bool, len(list))
				for _, x := range list {
					occupied[x.Code] = true
				}
			}
		}
		if code++; code > end {
			code = start
		}
	}
	return Orbit{}, fmt.Errorf("allocate in %q: %d–%d: %w", o.Policy, start, end, ErrFull)
}
