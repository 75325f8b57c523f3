// Package policy models call park policies with the semantics of Microsoft
// Teams TeamsCallParkPolicy: the policies themselves, their assignment to
// users and groups, the precedence that picks a user's effective policy, and
// strict loading of the policy file.
package policy

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// GlobalIdentity names the org-wide default policy, which always exists.
const GlobalIdentity = "Global"

// Limits of the policy parameters, as Teams enforces them.
const (
	MinPickupCode         = 10
	MaxPickupCode         = 9999
	MinParkTimeoutSeconds = 120
	MaxParkTimeoutSeconds = 1800
)

// Policy is one call park policy (Teams TeamsCallParkPolicy parameters).
type Policy struct {
	Identity           string `yaml:"identity" json:"identity" check:"required"`
	Description        string `yaml:"description" json:"description"`
	AllowCallPark      bool   `yaml:"allow_call_park" json:"allow_call_park"`
	PickupRangeStart   int    `yaml:"pickup_range_start" json:"pickup_range_start"`
	PickupRangeEnd     int    `yaml:"pickup_range_end" json:"pickup_range_end"`
	ParkTimeoutSeconds int    `yaml:"park_timeout_seconds" json:"park_timeout_seconds"`
}

// Default returns a policy named identity with the Teams defaults: call park
// not allowed, codes 10–99, a 300 s timeout.
func Default(identity string) Policy {
	return Policy{
		Identity:           identity,
		AllowCallPark:      false,
		PickupRangeStart:   10,
		PickupRangeEnd:     99,
		ParkTimeoutSeconds: 300,
	}
}

// UnmarshalYAML decodes a policy, with the Teams defaults for the
// parameters it leaves out.
func (p *Policy) UnmarshalYAML(n *yaml.Node) error {
	type plain Policy // the same fields, without this method
	v := plain(Default(""))
	if err := n.Decode(&v); err != nil {
		return err
	}
	*p = Policy(v)
	return nil
}

// ParkTimeout is how long a call stays parked before it rings back.
func (p Policy) ParkTimeout() time.Duration {
	return time.Duration(p.ParkTimeoutSeconds) * time.Second
}

// InRange reports whether code lies in the pickup range.
func (p Policy) InRange(code int) bool {
	return code >= p.PickupRangeStart && code <= p.PickupRangeEnd
}

// Validate checks the parameter ranges; the error says what to change.
func (p Policy) Validate() error {
	fps := p.check()
	if len(fps) == 0 {
		return nil
	}
	msgs := make([]string, len(fps))
	for i, fp := range fps {
		msgs[i] = fp.msg
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// fieldProblem is a problem with one parameter, named by its YAML key so a
// loader can point at its line.
type fieldProblem struct {
	field string
	msg   string
}

func (p Policy) check() []fieldProblem {
	var out []fieldProblem
	add := func(field, format string, args ...any) {
		out = append(out, fieldProblem{field, fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(p.Identity) == "" {
		add("identity", "identity is empty: give the policy a name")
	}
	if p.PickupRangeStart < MinPickupCode || p.PickupRangeStart > MaxPickupCode {
		add("pickup_range_start", "pickup_range_start %d is out of range: use %d–%d",
			p.PickupRangeStart, MinPickupCode, MaxPickupCode)
	}
	if p.PickupRangeEnd < MinPickupCode || p.PickupRangeEnd > MaxPickupCode || p.PickupRangeEnd <= p.PickupRangeStart {
		add("pickup_range_end", "pickup_range_end %d is out of range: use %d–%d and more than pickup_range_start (%d)",
			p.PickupRangeEnd, MinPickupCode, MaxPickupCode, p.PickupRangeStart)
	}
	if p.ParkTimeoutSeconds < MinParkTimeoutSeconds || p.ParkTimeoutSeconds > MaxParkTimeoutSeconds {
		add("park_timeout_seconds", "park_timeout_seconds %d is out of range: use %d–%d (2 to 30 minutes)",
			p.ParkTimeoutSeconds, MinParkTimeoutSeconds, MaxParkTimeoutSeconds)
	}
	return out
}
