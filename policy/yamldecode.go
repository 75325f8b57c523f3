package policy

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decode checks the mapping n (a document node as Document returns it, or a
// mapping; nil or null is an empty mapping) against the struct dst points
// to, then decodes into dst with yaml.v3 what passed. A value with a problem
// is left out, so its field keeps what dst held (a default); the returned
// Keys say where each key was and which ones were bad, for the checks made
// after decoding. what names the mapping in messages ("the top level").
//
// The struct's fields say what the mapping holds:
//
//   - `yaml:"name"` is the key (fields without one, or with "-", are none);
//   - `check:"required"` makes a missing key a problem; `check:"secret"`
//     on a list of mappings keeps an entry that is a single value out of
//     its message (a bare webhook URL holds the channel's token);
//   - string takes any single value as written (null is ""), int a whole
//     number, bool true or false, and a type that implements
//     encoding.TextUnmarshaler a single value it accepts (its error is the
//     problem's message);
//   - a slice of those is a list; a struct is a nested mapping, named in
//     messages by its dotted path; a slice of structs is a list of
//     mappings, and `entry:"user"` names one of them.
//
// Keys are checked here rather than with yaml.v3's KnownFields so that a
// typo is answered with the nearest key and the list of valid ones, and a
// repeated key with the line of the first.
func (d *NodeDecoder) Decode(n *yaml.Node, what string, dst any) Keys {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("policy: Decode into %T, not a pointer to a struct", dst))
	}
	n = resolve(n)
	clean, k := d.mapping(n, what, "", v.Elem().Type())
	if clean == nil || n == nil {
		return k
	}
	// The checks pass only what yaml.v3 decodes into these types, so an
	// error here is a mistake in them, still reported rather than lost.
	if err := clean.Decode(dst); err != nil {
		d.Addf(k.line, "%s cannot be decoded (%v)", what, err)
	}
	return k
}

// Keys tells which keys a decoded mapping held and where, so that checks
// made after decoding can point at the right line.
type Keys struct {
	line     int
	text     string // a list entry that is a single value, as written
	keys     map[string]*yaml.Node
	bad      map[string]bool
	sections map[string]Keys
	entries  map[string][]Keys
}

// Line returns the line of key name, or the line of the mapping itself when
// the key is absent (a check on a defaulted value then points at its owner).
func (k Keys) Line(name string) int {
	if n := k.keys[name]; n != nil {
		return n.Line
	}
	return k.line
}

// Start returns the line of the mapping, or of the list entry, itself.
func (k Keys) Start() int { return k.line }

// Text returns a list entry that is a single value as written.
func (k Keys) Text() string { return k.text }

// Has reports whether the mapping held key name.
func (k Keys) Has(name string) bool { return k.keys[name] != nil }

// Bad reports whether key name already has a problem (a wrong type, or
// required and missing); later checks skip it to avoid a second, misleading
// report about the default left in its place. A list is bad when one of
// its values is; its other values are decoded all the same.
func (k Keys) Bad(name string) bool { return k.bad[name] }

// Section returns the keys of the nested mapping under key name.
func (k Keys) Section(name string) Keys { return k.sections[name] }

// Entry returns the keys of the i-th decoded entry of list name: the i-th
// element of the decoded slice (entries with a problem of their own are
// decoded; those that were not a mapping, or not a single value, are not).
func (k Keys) Entry(name string, i int) Keys {
	if es := k.entries[name]; i >= 0 && i < len(es) {
		return es[i]
	}
	return Keys{}
}

// valueKind is what a field's YAML value must be.
type valueKind int

const (
	kindString  valueKind = iota // any scalar, as written
	kindText                     // a scalar an encoding.TextUnmarshaler accepts
	kindInt                      // a whole number
	kindBool                     // true or false
	kindSection                  // a nested mapping
	kindList                     // a list of scalars
	kindEntries                  // a list of mappings
)

// field is one key of a tagged struct.
type field struct {
	name     string
	kind     valueKind
	elem     valueKind    // kind of a list's values
	typ      reflect.Type // the field's type, or its slice's element type
	required bool
	secret   bool   // an entry's single value is never quoted
	entry    string // what one entry of a list of mappings is called
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// kindOf classifies the Go type a value decodes into.
func kindOf(t reflect.Type) valueKind {
	switch {
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		return kindText
	case t.Kind() == reflect.String:
		return kindString
	case t.Kind() == reflect.Int:
		return kindInt
	case t.Kind() == reflect.Bool:
		return kindBool
	case t.Kind() == reflect.Struct:
		return kindSection
	case t.Kind() == reflect.Slice:
		switch kindOf(t.Elem()) {
		case kindSection:
			return kindEntries
		case kindString, kindText:
			return kindList
		}
	}
	panic(fmt.Sprintf("policy: no YAML check for values of type %s", t))
}

// fieldsOf lists the keys of struct type t in field order, the order in
// which messages list valid keys.
func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		check := sf.Tag.Get("check")
		f := field{name: name, kind: kindOf(sf.Type), typ: sf.Type,
			required: check == "required", secret: check == "secret", entry: sf.Tag.Get("entry")}
		if f.kind == kindList || f.kind == kindEntries {
			f.typ = sf.Type.Elem()
			f.elem = kindOf(f.typ)
		}
		if f.entry == "" {
			f.entry = name + " entry"
		}
		fs = append(fs, f)
	}
	return fs
}

// mapping checks the mapping n against struct type t and returns a copy of
// it holding only the keys that passed, with the Keys found. The copy is nil
// when n is neither a mapping nor null. path is the dotted path of n
// from the top ("" there).
func (d *NodeDecoder) mapping(n *yaml.Node, what, path string, t reflect.Type) (*yaml.Node, Keys) {
	fields := fieldsOf(t)
	k := Keys{keys: map[string]*yaml.Node{}, bad: map[string]bool{}, sections: map[string]Keys{}, entries: map[string][]Keys{}}
	clean := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if n != nil {
		k.line, clean.Line, clean.Column = n.Line, n.Line, n.Column
	}
	if n != nil && n.Kind != yaml.MappingNode && !isNull(n) {
		d.Addf(n.Line, "%s must be a mapping of key: value lines, not %s", what, describe(n))
		for _, f := range fields {
			k.bad[f.name] = true
		}
		return nil, k
	}
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := resolve(n.Content[i]), resolve(n.Content[i+1])
			f, ok := d.key(key, what, fields, k)
			if !ok {
				continue
			}
			k.keys[f.name] = key
			v, good := d.value(val, f, path, k)
			if !good {
				k.bad[f.name] = true
			}
			if v != nil {
				clean.Content = append(clean.Content, key, v)
			}
		}
	}
	for _, f := range fields {
		if f.required && k.keys[f.name] == nil {
			d.Addf(k.line, "%s has no %s: add the %s key", what, f.name, f.name)
			k.bad[f.name] = true
		}
	}
	return clean, k
}

// key finds the field of a key, reporting keys that are not plain names,
// unknown or repeated.
func (d *NodeDecoder) key(key *yaml.Node, what string, fields []field, k Keys) (field, bool) {
	if key.Kind != yaml.ScalarNode {
		d.Addf(key.Line, "%s has a key that is %s: keys must be plain names", what, describe(key))
		return field{}, false
	}
	name := key.Value
	for _, f := range fields {
		if f.name != name {
			continue
		}
		if first := k.keys[name]; first != nil {
			d.Addf(key.Line, "%s is given twice in %s (first at line %d): keep only one", name, what, first.Line)
			return field{}, false
		}
		return f, true
	}
	d.Addf(key.Line, "unknown key %q in %s: %s", name, what, suggestKey(name, fields))
	return field{}, false
}

// value checks the value of field f and returns what yaml.v3 may decode
// (nil to leave the field as it was) and whether it passed; the keys of
// nested mappings go into k.
func (d *NodeDecoder) value(n *yaml.Node, f field, path string, k Keys) (*yaml.Node, bool) {
	sub := f.name
	if path != "" {
		sub = path + "." + f.name
	}
	switch f.kind {
	case kindSection:
		clean, sk := d.mapping(n, sub, sub, f.typ)
		k.sections[f.name] = sk
		return clean, true
	case kindList, kindEntries:
		return d.list(n, f, sub, k)
	}
	return d.scalar(n, f.name, f.kind, f.typ)
}

// list checks a list of scalars or of mappings, keeping the keys of its
// entries in k.
func (d *NodeDecoder) list(n *yaml.Node, f field, path string, k Keys) (*yaml.Node, bool) {
	what := f.name
	if f.kind == kindEntries {
		what = path
	}
	if isNull(n) {
		return n, true
	}
	if n.Kind != yaml.SequenceNode {
		d.Addf(n.Line, "%s must be a list (lines starting with \"- \" or [a, b]), not %s", what, describe(n))
		return nil, false
	}
	clean := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: n.Line, Column: n.Column}
	good := true
	entries := []Keys{}
	for _, item := range n.Content {
		item = resolve(item)
		var v *yaml.Node
		ek := Keys{line: item.Line}
		if f.kind == kindEntries && f.secret && item.Kind == yaml.ScalarNode && !isNull(item) {
			d.Addf(item.Line, "%s must be a mapping of key: value lines, not a single value", f.entry)
			continue
		}
		if f.kind == kindEntries {
			v, ek = d.mapping(item, f.entry, path, f.typ)
		} else if v, _ = d.scalar(item, f.entry, f.elem, f.typ); v == nil {
			good = false
		} else {
			ek.text = v.Value
		}
		if v != nil {
			clean.Content = append(clean.Content, v)
			entries = append(entries, ek)
		}
	}
	k.entries[f.name] = entries
	return clean, good
}

// scalar checks a single value of the given kind; what names it. It
// returns the node yaml.v3 is to decode, nil when the value is refused.
func (d *NodeDecoder) scalar(n *yaml.Node, what string, kind valueKind, typ reflect.Type) (*yaml.Node, bool) {
	var msg string
	switch kind {
	case kindString, kindText:
		return d.text(n, what, kind, typ)
	case kindInt:
		msg = intProblem(n, what)
	case kindBool:
		msg = boolProblem(n, what)
	}
	if msg != "" {
		d.Addf(n.Line, "%s", msg)
		return nil, false
	}
	return n, true
}

// text checks a string or TextUnmarshaler value. The node it returns is
// a plain string of the text as written (so that an unquoted 0123 keeps
// its leading zero and a tag cannot change what was checked); null is "".
func (d *NodeDecoder) text(n *yaml.Node, what string, kind valueKind, typ reflect.Type) (*yaml.Node, bool) {
	if n.Kind != yaml.ScalarNode {
		d.Addf(n.Line, "%s must be a single value, not %s", what, describe(n))
		return nil, false
	}
	s := n.Value
	if isNull(n) {
		s = ""
	}
	if kind == kindText {
		u := reflect.New(typ).Interface().(encoding.TextUnmarshaler)
		if err := u.UnmarshalText([]byte(s)); err != nil {
			d.Addf(n.Line, "%v", err)
			return nil, false
		}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Line: n.Line, Column: n.Column}, true
}

// intProblem says what is wrong with n as a whole number, or "".
func intProblem(n *yaml.Node, what string) string {
	var v int
	switch {
	case n.Kind != yaml.ScalarNode:
		return fmt.Sprintf("%s must be a whole number, not %s", what, describe(n))
	case isNull(n):
		return fmt.Sprintf("%s has no value: write a whole number", what)
	// The tag check refuses 1e3 and 10.5, which yaml.v3 would truncate.
	case n.ShortTag() != "!!int" || n.Decode(&v) != nil:
		if _, err := strconv.Atoi(n.Value); err == nil && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			return fmt.Sprintf("%s must be a number, not the text %q: remove the quotes", what, n.Value)
		}
		return fmt.Sprintf("%s must be a whole number, not %q", what, n.Value)
	}
	return ""
}

// boolProblem says what is wrong with n as true or false, or "".
func boolProblem(n *yaml.Node, what string) string {
	var v bool
	switch {
	case n.Kind != yaml.ScalarNode:
		return fmt.Sprintf("%s must be true or false, not %s", what, describe(n))
	case isNull(n):
		return fmt.Sprintf("%s has no value: write true or false", what)
	case n.Decode(&v) != nil:
		return fmt.Sprintf("%s must be true or false, not %q", what, n.Value)
	}
	return ""
}
