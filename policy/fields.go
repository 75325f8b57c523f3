package policy

import "strings"

// FieldErrors checks p as Validate does and returns what is wrong by the
// YAML key of each parameter at fault (pickup_range_end, say), so that a
// form can show each problem next to its field. It is empty for a valid p.
func (p Policy) FieldErrors() map[string]string {
	out := map[string]string{}
	for _, fp := range p.check() {
		if prev, ok := out[fp.field]; ok {
			out[fp.field] = prev + "; " + fp.msg
			continue
		}
		out[fp.field] = fp.msg
	}
	return out
}

// Fields are the YAML keys of a policy's parameters, in the order the
// policy file and the forms list them.
func Fields() []string { return append([]string(nil), policyKeys...) }

// FieldOf names the parameter an edit's error is about: the key of Fields
// the message mentions first (messages start with the parameter they are
// about), "identity" for a name that is taken, or "" when it is about no
// one parameter.
func FieldOf(err error) string {
	msg := err.Error()
	field, at := "", len(msg)
	for _, k := range policyKeys {
		if i := strings.Index(msg, k); i >= 0 && i < at {
			field, at = k, i
		}
	}
	if field == "" && strings.Contains(msg, "already exists") {
		return "identity"
	}
	return field
}
