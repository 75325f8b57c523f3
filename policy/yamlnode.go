package policy

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// NodeDecoder checks a parsed YAML document against the struct it is decoded
// into and keeps going after a mistake, so that one pass reports every
// problem with its file and line; yaml.v3 then decodes what passed (see
// Decode). Working from the node tree keeps the line of every key for the
// checks made after decoding. The policy file and the main configuration
// are both read with it.
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
func suggestKey(name string, fields []field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
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
