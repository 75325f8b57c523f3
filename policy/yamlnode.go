package policy

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// NodeDecoder decodes a yaml.Node tree strictly and keeps going after a
// mistake, so that one pass reports every problem with its file and line.
// Working on nodes rather than structs keeps the line of every key and lets
// an editor change the same tree and write it back with its comments.
//
// The policy and main configuration loaders share it: a mapping is decoded by
// listing its Fields, and each Field decodes its value with String, Int, Bool,
// Strings, Sequence or a nested Mapping.
type NodeDecoder struct {
	File     string   // name used in problems
	Problems Problems // everything found so far
}

// Addf records a problem at line; the message should say what is wrong and
// what to do about it.
func (d *NodeDecoder) Addf(line int, format string, args ...any) {
	d.Problems = append(d.Problems, Problem{File: d.File, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// syntaxLine reads the line out of a yaml.v3 syntax error. yaml.v3 has no
// error type for these (it builds them with fmt.Errorf as "yaml: line N:
// message"; only decoding errors get a *yaml.TypeError), so the text is the
// one place the line is given.
var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the yaml.v3 parser's messages; its scanner's differ.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// Document parses data and returns its first document node, or nil when data
// holds no document or is not valid YAML (a problem is recorded then). The
// other methods look through document and alias nodes, so the result can be
// passed to Mapping as it is and kept for writing the file back.
func (d *NodeDecoder) Document(data []byte) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := 0, strings.TrimPrefix(err.Error(), "yaml: ")
		if m := syntaxLine.FindStringSubmatch(err.Error()); m != nil {
			msg = m[2]
			reported, _ := strconv.Atoi(m[1])
			if parserProblems[msg] {
				reported++ // yaml.v3 numbers parser (not scanner) errors from 0
			}
			// Scanner errors are reported at their line or the one before.
			from := max(reported-1, 1)
			if parserProblems[msg] {
				from = reported
			}
			line = errorLine(data, err, from)
			switch {
			case line == 0:
				line = reported
			case parserProblems[msg] && reported < line:
				// The parser names the block it was in: the mistake may be
				// where that block began (an indentation slip) as well.
				msg += fmt.Sprintf("; the block it belongs to starts at line %d", reported)
			}
			// An error at the end of the input may be placed past the last line.
			lines := bytes.Count(data, []byte("\n"))
			if !bytes.HasSuffix(data, []byte("\n")) {
				lines++
			}
			line = min(line, lines)
		}
		d.Addf(line, "not valid YAML (%s): check indentation, quoting and colons at or near this line", msg)
		return nil
	}
	if doc.Kind == 0 {
		return nil
	}
	return &doc
}

// maxErrorSearch bounds the prefixes errorLine parses.
const maxErrorSearch = 100

// errorLine finds the line of a parser error. yaml.v3 reports the line
// where the enclosing construct began (for "did not find expected key",
// the first key of the mapping, often far above the mistake), not where
// the parser gave up. The parser is streaming, so the first prefix of
// whole lines that fails with the very same error ends at the line where
// the offending token is; it is not above from, the reported line. 0 when
// no prefix within reach reproduces it.
func errorLine(data []byte, full error, from int) int {
	end := 0
	for line := 1; end < len(data) && line < from+maxErrorSearch; line++ {
		if i := bytes.IndexByte(data[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(data)
		}
		if line < from {
			continue
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data[:end], &doc); err != nil && err.Error() == full.Error() {
			return line
		}
	}
	return 0
}

// Field is one known key of a mapping and how to decode its value.
type Field struct {
	Name     string
	Required bool // a missing key is a problem
	// Decode decodes the value, reporting problems through d, and says
	// whether it succeeded.
	Decode func(d *NodeDecoder, value *yaml.Node) bool
}

// Require returns f marked as required.
func (f Field) Require() Field {
	f.Required = true
	return f
}

// StringField decodes any scalar into *dst as written.
func StringField(name string, dst *string) Field {
	return Field{Name: name, Decode: func(d *NodeDecoder, v *yaml.Node) bool { return d.String(v, name, dst) }}
}

// IntField decodes a whole number into *dst.
func IntField(name string, dst *int) Field {
	return Field{Name: name, Decode: func(d *NodeDecoder, v *yaml.Node) bool { return d.Int(v, name, dst) }}
}

// BoolField decodes true or false into *dst.
func BoolField(name string, dst *bool) Field {
	return Field{Name: name, Decode: func(d *NodeDecoder, v *yaml.Node) bool { return d.Bool(v, name, dst) }}
}

// StringsField decodes a list of scalars into *dst.
func StringsField(name string, dst *[]string) Field {
	return Field{Name: name, Decode: func(d *NodeDecoder, v *yaml.Node) bool { return d.Strings(v, name, dst) }}
}

// Keys tells which keys a decoded mapping held and where, so that checks
// made after decoding can point at the right line.
type Keys struct {
	line int
	keys map[string]*yaml.Node
	bad  map[string]bool
}

// Line returns the line of key name, or the line of the mapping itself when
// the key is absent (a check on a defaulted value then points at its owner).
func (k Keys) Line(name string) int {
	if n := k.keys[name]; n != nil {
		return n.Line
	}
	return k.line
}

// Has reports whether the mapping held key name.
func (k Keys) Has(name string) bool { return k.keys[name] != nil }

// Bad reports whether key name already has a problem (a wrong type, or
// required and missing); later checks skip it to avoid a second, misleading
// report about the default left in its place.
func (k Keys) Bad(name string) bool { return k.bad[name] }

// Mapping decodes the mapping node n, calling the Decode of each known key in
// file order. Unknown and repeated keys are problems; what names the mapping
// in messages ("server", "policy", "the top level"). A nil or null n counts as
// an empty mapping.
func (d *NodeDecoder) Mapping(n *yaml.Node, what string, fields ...Field) Keys {
	n = resolve(n)
	k := Keys{keys: map[string]*yaml.Node{}, bad: map[string]bool{}}
	if n != nil {
		k.line = n.Line
	}
	if n != nil && n.Kind != yaml.MappingNode && !isNull(n) {
		d.Addf(n.Line, "%s must be a mapping of key: value lines, not %s", what, describe(n))
		for _, f := range fields {
			k.bad[f.Name] = true
		}
		return k
	}
	byName := make(map[string]Field, len(fields))
	for _, f := range fields {
		byName[f.Name] = f
	}
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := resolve(n.Content[i]), n.Content[i+1]
			if key.Kind != yaml.ScalarNode {
				d.Addf(key.Line, "%s has a key that is %s: keys must be plain names", what, describe(key))
				continue
			}
			name := key.Value
			f, known := byName[name]
			if !known {
				d.Addf(key.Line, "unknown key %q in %s: %s", name, what, suggestKey(name, fields))
				continue
			}
			if first := k.keys[name]; first != nil {
				d.Addf(key.Line, "%s is given twice in %s (first at line %d): keep only one", name, what, first.Line)
				continue
			}
			k.keys[name] = key
			if f.Decode != nil && !f.Decode(d, val) {
				k.bad[name] = true
			}
		}
	}
	for _, f := range fields {
		if f.Required && k.keys[f.Name] == nil {
			d.Addf(k.line, "%s has no %s: add the %s key", what, f.Name, f.Name)
			k.bad[f.Name] = true
		}
	}
	return k
}

// Sequence calls each for every item of the list node n; null counts as an
// empty list. It reports whether n was a list.
func (d *NodeDecoder) Sequence(n *yaml.Node, what string, each func(item *yaml.Node)) bool {
	n = resolve(n)
	if n == nil || isNull(n) {
		return true
	}
	if n.Kind != yaml.SequenceNode {
		d.Addf(n.Line, "%s must be a list (lines starting with \"- \" or [a, b]), not %s", what, describe(n))
		return false
	}
	for _, item := range n.Content {
		each(resolve(item))
	}
	return true
}

// String stores the text of scalar n in *dst exactly as written (so an
// unquoted 0123 keeps its leading zero); null stores "".
func (d *NodeDecoder) String(n *yaml.Node, what string, dst *string) bool {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.Addf(n.Line, "%s must be a single value, not %s", what, describe(n))
		return false
	}
	if isNull(n) {
		*dst = ""
		return true
	}
	*dst = n.Value
	return true
}

// Int stores the whole number n in *dst.
func (d *NodeDecoder) Int(n *yaml.Node, what string, dst *int) bool {
	n = resolve(n)
	var v int
	switch {
	case n.Kind != yaml.ScalarNode:
		d.Addf(n.Line, "%s must be a whole number, not %s", what, describe(n))
	case isNull(n):
		d.Addf(n.Line, "%s has no value: write a whole number", what)
	// The tag check refuses 1e3 and 10.5, which Decode would truncate.
	case n.ShortTag() != "!!int" || n.Decode(&v) != nil:
		if _, err := strconv.Atoi(n.Value); err == nil && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			d.Addf(n.Line, "%s must be a number, not the text %q: remove the quotes", what, n.Value)
		} else {
			d.Addf(n.Line, "%s must be a whole number, not %q", what, n.Value)
		}
	default:
		*dst = v
		return true
	}
	return false
}

// Bool stores true or false from n in *dst.
func (d *NodeDecoder) Bool(n *yaml.Node, what string, dst *bool) bool {
	n = resolve(n)
	var v bool
	switch {
	case n.Kind != yaml.ScalarNode:
		d.Addf(n.Line, "%s must be true or false, not %s", what, describe(n))
	case isNull(n):
		d.Addf(n.Line, "%s has no value: write true or false", what)
	case n.Decode(&v) != nil:
		d.Addf(n.Line, "%s must be true or false, not %q", what, n.Value)
	default:
		*dst = v
		return true
	}
	return false
}

// Strings stores a list of scalars in *dst; null stores nil. A bad entry
// leaves *dst as it was.
func (d *NodeDecoder) Strings(n *yaml.Node, what string, dst *[]string) bool {
	var out []string
	ok := true
	if !d.Sequence(n, what, func(item *yaml.Node) {
		var s string
		if d.String(item, what+" entry", &s) {
			out = append(out, s)
		} else {
			ok = false
		}
	}) || !ok {
		return false
	}
	*dst = out
	return true
}

// resolve looks through document and alias nodes to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch {
		case n.Kind == yaml.AliasNode:
			n = n.Alias
		case n.Kind == yaml.DocumentNode && len(n.Content) > 0:
			n = n.Content[0]
		case n.Kind == yaml.DocumentNode:
			return nil
		default:
			return n
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// suggestKey says how to fix an unknown key: the nearest known key when it
// looks like a typo, and the full list of valid keys.
func suggestKey(name string, fields []Field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	if best := Nearest(strings.ToLower(name), names); best != "" {
		return fmt.Sprintf("did you mean %s? Valid keys: %s", best, strings.Join(names, ", "))
	}
	return "remove it or use one of " + strings.Join(names, ", ")
}

// Nearest returns the candidate closest to name when it is at most two
// edits away, which is what a typo looks like; "" when none is. Both the
// policy file's unknown keys and the CLI's unknown flags are answered with it.
func Nearest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
