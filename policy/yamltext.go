package policy

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// yamlText is a YAML document's source together with its node tree. Edits
// are located through the nodes (which know their line and column) and made
// as splices of the source, so that every byte an edit does not need to
// touch (comments, blank lines, quoting, indentation, key order) stays as the
// operator wrote it. Re-encoding the tree with yaml.v3 would drop blank lines
// and move comments, so it is only used to render new values and the new
// text of flow collections ({...} and [...]), which are rewritten whole.
//
// yaml.v3 tells where a node starts but not where it ends, and the end is
// not lexed here. A block collection ends where its last entry ends; a
// scalar, alias or flow collection ends at the shortest text, before the
// line where its next sibling starts, that yaml.v3 itself parses to the very
// same node. Where there is no such text the edit is refused with a
// layoutError, and the operator makes it by hand.
type yamlText struct {
	src   []byte
	lines []int      // byte offset of the start of each line; lines[0] is line 1
	doc   *yaml.Node // the document node; nil when the source holds none
	nl    string     // line break used for new lines: "\n", or "\r\n" when the file uses it
	// bound holds, for each node in block context, the line where the text
	// after it begins (its next sibling, its parent's next sibling, or the
	// line after the last).
	bound map[*yaml.Node]int
	dash  map[*yaml.Node]int // offset of the "-" of each item of a block sequence
	err   error              // the first layout problem met, see fail
}

// layoutError says an edit met a YAML layout it does not rewrite.
type layoutError struct{ detail string }

func (e *layoutError) Error() string { return e.detail }

func layoutf(format string, args ...any) error {
	return &layoutError{fmt.Sprintf(format, args...)}
}

func parseYAMLText(src []byte) (*yamlText, error) {
	t := &yamlText{src: src, lines: []int{0}, nl: "\n", bound: map[*yaml.Node]int{}, dash: map[*yaml.Node]int{}}
	for i, c := range src {
		if c == '\n' {
			t.lines = append(t.lines, i+1)
		}
	}
	if bytes.Contains(src, []byte("\r\n")) {
		t.nl = "\r\n"
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != 0 {
		t.doc = &doc
	}
	if root := t.root(); root != nil {
		t.bounds(root, t.numLines()+1)
	}
	return t, nil
}

// root returns the top-level node, or nil when there is no document.
func (t *yamlText) root() *yaml.Node { return resolve(t.doc) }

// --- positions --------------------------------------------------------------

// offset converts a 1-based line and column (counted in characters, as
// yaml.v3 does) to a byte offset.
func (t *yamlText) offset(line, col int) int {
	i := t.lines[line-1]
	if line == 1 && bytes.HasPrefix(t.src, []byte("\ufeff")) {
		i += 3 // a byte order mark is not a column
	}
	for c := 1; c < col && i < len(t.src) && t.src[i] != '\n'; c++ {
		_, size := utf8.DecodeRune(t.src[i:])
		i += size
	}
	return i
}

func (t *yamlText) pos(n *yaml.Node) int { return t.offset(n.Line, n.Column) }

// lineOf returns the 1-based line holding byte offset off.
func (t *yamlText) lineOf(off int) int {
	return sort.Search(len(t.lines), func(i int) bool { return t.lines[i] > off })
}

func (t *yamlText) numLines() int { return len(t.lines) }

// lineStart is the offset of the first byte of line.
func (t *yamlText) lineStart(line int) int { return t.lines[line-1] }

// nextLine is the offset just past line's break (the end of the source for
// the last line).
func (t *yamlText) nextLine(line int) int {
	if line < len(t.lines) {
		return t.lines[line]
	}
	return len(t.src)
}

// contentEnd is the offset of line's break ("\n" or "\r\n"), or the end of
// the source.
func (t *yamlText) contentEnd(line int) int {
	e := t.nextLine(line)
	if e > t.lineStart(line) && t.src[e-1] == '\n' {
		e--
		if e > t.lineStart(line) && t.src[e-1] == '\r' {
			e--
		}
	}
	return e
}

// text is the content of line, without its break.
func (t *yamlText) text(line int) []byte { return t.src[t.lineStart(line):t.contentEnd(line)] }

// indentOf is the number of leading spaces of line.
func (t *yamlText) indentOf(line int) int {
	s := t.text(line)
	return len(s) - len(bytes.TrimLeft(s, " "))
}

// blank reports whether line holds only white space.
func (t *yamlText) blank(line int) bool { return len(bytes.TrimSpace(t.text(line))) == 0 }

// comment reports whether line holds only a comment. It is asked only of
// lines outside the text of any value (inside a quoted or block scalar, such
// a line is text).
func (t *yamlText) comment(line int) bool {
	s := bytes.TrimLeft(t.text(line), " \t")
	return len(s) > 0 && s[0] == '#'
}

// --- extents ----------------------------------------------------------------

// fail records the first layout problem met; apply then refuses the edit.
// Keeping the error here lets the position helpers return plain offsets and
// lines.
func (t *yamlText) fail(format string, args ...any) {
	if t.err == nil {
		t.err = layoutf(format, args...)
	}
}

// bounds records the bound of n and of the nodes of the block collections
// under it, and the "-" of each block sequence item.
func (t *yamlText) bounds(n *yaml.Node, bound int) {
	t.bound[n] = bound
	if n.Style&yaml.FlowStyle != 0 {
		return // a flow collection is bounded by its brackets, not by lines
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			next := bound
			if i+1 < len(n.Content) {
				next = n.Content[i+1].Line
			}
			t.bounds(n.Content[i], next)
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			t.dash[item] = t.findDash(item)
		}
		for i, item := range n.Content {
			next := bound
			if i+1 < len(n.Content) {
				next = t.lineOf(t.dash[n.Content[i+1]])
			}
			t.bounds(item, next)
		}
	}
}

// findDash returns the offset of the "-" that introduces a block sequence
// item: the "-" right before the item on its line, or else one alone (or
// with a comment) on a line above, with only comment lines in between.
func (t *yamlText) findDash(item *yaml.Node) int {
	if before := bytes.TrimRight(t.src[t.lineStart(item.Line):t.pos(item)], " \t"); len(before) > 0 {
		if before[len(before)-1] == '-' {
			return t.lineStart(item.Line) + len(before) - 1
		}
	} else {
		for line := item.Line - 1; line >= 1; line-- {
			s := bytes.TrimLeft(t.text(line), " ")
			if rest, ok := bytes.CutPrefix(s, []byte("-")); ok && (len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t') {
				if rest = bytes.TrimLeft(rest, " \t"); len(rest) == 0 || rest[0] == '#' {
					return t.lineStart(line) + t.indentOf(line)
				}
			}
			if !t.blank(line) && !t.comment(line) {
				break
			}
		}
	}
	t.fail(`line %d: cannot find the "-" of this list item`, item.Line)
	return t.pos(item)
}

// emptyValue reports whether n is a null written as nothing at all.
func emptyValue(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "" && n.Style == 0 && n.Anchor == "" && n.ShortTag() == "!!null"
}

// extent returns the offsets of the text of n, a scalar, an alias or a flow
// collection: from where yaml.v3 says n starts to the shortest end, on a
// line before n's bound, at which yaml.v3 parses the text to n. When there
// is none, the layout is refused.
func (t *yamlText) extent(n *yaml.Node) (start, end int) {
	start = t.pos(n)
	switch {
	case emptyValue(n):
		return start, start
	case n.Kind == yaml.AliasNode:
		// An alias is "*" and the anchor's name, which yaml.v3 keeps.
		if end = start + 1 + len(n.Value); end > len(t.src) || string(t.src[start:end]) != "*"+n.Value {
			t.fail("line %d: cannot find the alias *%s", n.Line, n.Value)
		}
		return start, min(end, len(t.src))
	case n.Style&yaml.FlowStyle == 0 && len(n.Content) > 0:
		t.fail("line %d: not a single value", n.Line)
		return start, start
	}
	bound, block := t.bound[n]
	then := ""
	if !block {
		bound, then = n.Line+1, ",]}" // inside a flow collection: on its first line
	}
	for line := n.Line; line < bound; line++ {
		if end, ok := t.endOn(n, start, line, then, ""); ok {
			return start, end
		}
	}
	t.fail("line %d: cannot tell where this value ends", n.Line)
	return start, start
}

// endOn returns the shortest end on line of the text from start that,
// followed by suffix, yaml.v3 parses to n. Only ends are tried after which
// the line holds nothing, a comment, or (after blanks) one of the
// characters of then. (The start of a later line is an end too: a block
// scalar may keep the blank lines after its text.)
func (t *yamlText) endOn(n *yaml.Node, start, line int, then, suffix string) (int, bool) {
	lineEnd := t.contentEnd(line)
	for e := max(start+1, t.lineStart(line)); e <= lineEnd; e++ {
		rest := bytes.TrimLeft(t.src[e:lineEnd], " \t")
		if len(rest) > 0 && !(rest[0] == '#' && len(rest) < lineEnd-e) && strings.IndexByte(then, rest[0]) < 0 {
			continue
		}
		if parsesAs(append(t.src[start:e:e], suffix...), n) {
			return e, true
		}
	}
	return 0, false
}

// parsesAs reports whether text, standing alone, is a YAML document whose
// only node is like n (its content, tag, style and anchor; not its
// position) and that holds no comment.
func parsesAs(text []byte, n *yaml.Node) bool {
	var doc yaml.Node
	if yaml.Unmarshal(append(text[:len(text):len(text)], '\n'), &doc) != nil || len(doc.Content) != 1 {
		return false
	}
	return doc.HeadComment == "" && doc.LineComment == "" && doc.FootComment == "" && sameNode(doc.Content[0], n)
}

// sameNode reports whether a and b hold the same YAML, written the same
// way, and a holds no comment.
func sameNode(a, b *yaml.Node) bool {
	if a.Kind != b.Kind || a.Tag != b.Tag || a.Style != b.Style || a.Value != b.Value || a.Anchor != b.Anchor ||
		a.HeadComment != "" || a.LineComment != "" || a.FootComment != "" || len(a.Content) != len(b.Content) {
		return false
	}
	for i := range a.Content {
		if !sameNode(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}

// colonEnd returns the offset just past the ":" that follows key.
func (t *yamlText) colonEnd(key *yaml.Node) int {
	lineEnd := t.contentEnd(key.Line)
	if e, ok := t.endOn(key, t.pos(key), key.Line, ":", ""); ok {
		if rest := bytes.TrimLeft(t.src[e:lineEnd], " \t"); len(rest) > 0 && rest[0] == ':' {
			return lineEnd - len(rest) + 1
		}
	}
	t.fail("line %d: cannot find the colon after %s", key.Line, key.Value)
	return t.pos(key)
}

// lastLine is the line on which the text of n ends.
func (t *yamlText) lastLine(n *yaml.Node) int {
	if n.Style&yaml.FlowStyle == 0 && len(n.Content) > 0 {
		return t.lastLine(n.Content[len(n.Content)-1])
	}
	if start, end := t.extent(n); end > start {
		return t.lineOf(end - 1)
	}
	return n.Line
}

// indent returns the indentation of a non-empty block collection: the
// column of its keys, or of the "-" of its items. (The node's own position
// is that of its tag or anchor when it has one.)
func (t *yamlText) indent(n *yaml.Node) int {
	if len(n.Content) == 0 {
		return n.Column - 1
	}
	first := n.Content[0]
	if n.Kind == yaml.SequenceNode {
		d := t.dash[first]
		return d - t.lineStart(t.lineOf(d))
	}
	return first.Column - 1
}

// entry is one key of a mapping with its value and where its lines are.
type entry struct {
	key, value *yaml.Node
	index      int // pair index in the mapping
}

// lookup finds key in mapping m.
func lookup(m *yaml.Node, key string) (entry, bool) {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return entry{}, false
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := resolve(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return entry{key: m.Content[i], value: m.Content[i+1], index: i / 2}, true
		}
	}
	return entry{}, false
}

// entryAt returns pair i of mapping m.
func entryAt(m *yaml.Node, i int) entry {
	return entry{key: m.Content[2*i], value: m.Content[2*i+1], index: i}
}

// entryLastLine is the line on which the block mapping entry e ends.
func (t *yamlText) entryLastLine(e entry) int { return max(t.lastLine(e.value), e.key.Line) }

// headStart returns the first line of the comment block directly above
// line (no blank line in between) at exactly indent, not reaching floor.
func (t *yamlText) headStart(line, indent, floor int) int {
	for line-1 > floor && t.comment(line-1) && t.indentOf(line-1) == indent {
		line--
	}
	return line
}

// --- splicing ---------------------------------------------------------------

type splice struct {
	start, end int
	text       string
}

// apply returns the source with the splices made; they must not overlap.
// It refuses when a layout problem was met on the way.
func (t *yamlText) apply(ss ...splice) ([]byte, error) {
	if t.err != nil {
		return nil, t.err
	}
	sort.SliceStable(ss, func(i, j int) bool { return ss[i].start > ss[j].start })
	out := append([]byte(nil), t.src...)
	limit := len(t.src)
	for _, s := range ss {
		if s.start > s.end || s.end > limit {
			return nil, layoutf("overlapping changes")
		}
		out = append(out[:s.start], append([]byte(s.text), out[s.end:]...)...)
		limit = s.start
	}
	return out, nil
}

// --- rendering --------------------------------------------------------------

// kv is one key and the value to write for it: a string, int or bool.
type kv struct {
	key   string
	value any
}

// scalarNode builds the node of a value. A string keeps the quoting of
// like, the node it replaces, when it had some.
func scalarNode(v any, like *yaml.Node) *yaml.Node {
	switch v := v.(type) {
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
	}
	s := fmt.Sprint(v)
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if like != nil {
		n.Style = like.Style & (yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle)
	}
	if strings.ContainsAny(s, "\n\r\t") || !utf8.ValidString(s) {
		n.Style = yaml.DoubleQuotedStyle // one line, escapes visible
	}
	return n
}

// render returns n as YAML text on one line.
func render(n *yaml.Node) (string, error) {
	b, err := yaml.Marshal(n)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(string(b), "\n")
	if strings.Contains(s, "\n") {
		return "", layoutf("a value would span lines")
	}
	return s, nil
}

// renderValue renders v for a block mapping, quoted like the value it replaces.
func renderValue(v any, like *yaml.Node) (string, error) { return render(scalarNode(v, like)) }

// blockItem renders a sequence item as lines: "- k: v" with the "-" at
// column dash, every key at column content.
func blockItem(dash, content int, kvs []kv) ([]string, error) {
	if content < dash+2 {
		content = dash + 2
	}
	var lines []string
	for i, p := range kvs {
		v, err := renderValue(p.value, nil)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			lines = append(lines, strings.Repeat(" ", dash)+"-"+strings.Repeat(" ", content-dash-1)+p.key+": "+v)
		} else {
			lines = append(lines, strings.Repeat(" ", content)+p.key+": "+v)
		}
	}
	return lines, nil
}

// flowItem renders a mapping on one line: {k: v, k: v}.
func flowItem(kvs []kv) (string, error) { return render(flowItemNode(kvs)) }

func flowItemNode(kvs []kv) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	for _, p := range kvs {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: p.key}, scalarNode(p.value, nil))
	}
	return m
}

// copyNode deep-copies n without comments, for re-rendering a flow
// collection. Aliases keep pointing at their anchors.
func copyNode(n *yaml.Node) *yaml.Node {
	c := *n
	c.HeadComment, c.LineComment, c.FootComment = "", "", ""
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, ch := range n.Content {
		c.Content[i] = copyNode(ch)
	}
	return &c
}

// rewriteFlow replaces the flow collection n, which must be on one line,
// with its copy changed by edit.
func (t *yamlText) rewriteFlow(n *yaml.Node, edit func(c *yaml.Node)) ([]byte, error) {
	start, end := t.extent(n)
	if t.lineOf(max(end-1, start)) != n.Line {
		t.fail("line %d: a list or mapping in brackets over several lines", n.Line)
	}
	c := copyNode(n)
	edit(c)
	c.Style |= yaml.FlowStyle
	s, err := render(c)
	if err != nil {
		return nil, err
	}
	return t.apply(splice{start, end, s})
}

// keepAnchors refuses to drop or rewrite n when a node in it carries an
// anchor that aliases elsewhere may use.
func (t *yamlText) keepAnchors(n *yaml.Node) {
	if n.Anchor != "" {
		t.fail("line %d: the value carries the anchor &%s that other entries may use", n.Line, n.Anchor)
	}
	for _, c := range n.Content {
		t.keepAnchors(c)
	}
}

// --- edits ------------------------------------------------------------------
//
// Each edit changes one thing and returns the new source; callers parse the
// result again before the next edit, so positions are always fresh.

// setValue replaces the value of key in mapping m with v.
func (t *yamlText) setValue(m *yaml.Node, key string, v any) ([]byte, error) {
	e, ok := lookup(m, key)
	if !ok {
		return nil, layoutf("%s not found", key)
	}
	t.keepAnchors(e.value)
	if m.Style&yaml.FlowStyle != 0 {
		return t.rewriteFlow(m, func(c *yaml.Node) { c.Content[2*e.index+1] = scalarNode(v, e.value) })
	}
	if k := e.value.Kind; k != yaml.ScalarNode && k != yaml.AliasNode {
		return nil, layoutf("line %d: %s is not a single value", e.value.Line, key)
	}
	text, err := renderValue(v, e.value)
	if err != nil {
		return nil, err
	}
	start, end := t.extent(e.value)
	if start == end { // an empty value right after the colon
		start = t.colonEnd(e.key)
		end = start
		text = " " + text
	}
	return t.apply(splice{start, end, text})
}

// insertValue adds key: v to mapping m after the entry of after (the first
// entry that exists, in order), or last.
func (t *yamlText) insertValue(m *yaml.Node, key string, v any, after ...string) ([]byte, error) {
	prev, found := entry{}, false
	for _, a := range after {
		if prev, found = lookup(m, a); found {
			break
		}
	}
	if m.Style&yaml.FlowStyle != 0 {
		return t.rewriteFlow(m, func(c *yaml.Node) {
			at := len(c.Content)
			if found {
				at = 2*prev.index + 2
			}
			pair := []*yaml.Node{{Kind: yaml.ScalarNode, Value: key}, scalarNode(v, nil)}
			c.Content = append(c.Content[:at], append(pair, c.Content[at:]...)...)
		})
	}
	if !found {
		prev = entryAt(m, len(m.Content)/2-1)
	}
	text, err := renderValue(v, nil)
	if err != nil {
		return nil, err
	}
	at := t.contentEnd(t.entryLastLine(prev))
	return t.apply(splice{at, at, t.nl + strings.Repeat(" ", t.indent(m)) + key + ": " + text})
}

// deleteValue removes key and its value from mapping m, with the comment
// lines directly above it.
func (t *yamlText) deleteValue(m *yaml.Node, key string) ([]byte, error) {
	e, ok := lookup(m, key)
	if !ok {
		return t.src, nil
	}
	t.keepAnchors(e.value)
	if m.Style&yaml.FlowStyle != 0 {
		return t.rewriteFlow(m, func(c *yaml.Node) {
			c.Content = append(c.Content[:2*e.index], c.Content[2*e.index+2:]...)
		})
	}
	if e.index == 0 {
		// The first key may share its line with a "- " or a parent key:
		// remove up to the next key instead of whole lines.
		if len(m.Content) < 4 {
			return nil, layoutf("cannot remove the only key %s", key)
		}
		return t.apply(splice{t.pos(e.key), t.pos(m.Content[2]), ""})
	}
	first := t.headStart(e.key.Line, t.indent(m), t.entryLastLine(entryAt(m, e.index-1)))
	return t.apply(splice{t.lineStart(first), t.nextLine(t.entryLastLine(e)), ""})
}

// itemLines returns the first and last line of item i of the block
// sequence seq, with the comment lines directly above it; floor is the line
// the sequence's key is on.
func (t *yamlText) itemLines(seq *yaml.Node, i, floor int) (first, last int) {
	item := seq.Content[i]
	if i > 0 {
		floor = t.lastLine(seq.Content[i-1])
	}
	first = t.headStart(t.lineOf(t.dash[item]), t.indent(seq), floor)
	last = t.lastLine(item)
	// Comment lines right after it, indented like its content, end it.
	for last < t.numLines() && t.comment(last+1) && t.indentOf(last+1) > t.indent(seq) {
		last++
	}
	return first, last
}

// blankSeparated reports whether the items of the block sequence seq are
// separated by blank lines, judging by the last two.
func (t *yamlText) blankSeparated(seq *yaml.Node, floor int) bool {
	n := len(seq.Content)
	if n < 2 {
		return false
	}
	first, _ := t.itemLines(seq, n-1, floor)
	return first > 1 && t.blank(first-1)
}

// style is how the file indents nested blocks, learned from what it holds.
type style struct {
	mapIndent int // extra indentation of a nested mapping's keys
	seqIndent int // extra indentation of a sequence's "-" under its key
}

func (t *yamlText) style() style {
	st := style{mapIndent: 2, seqIndent: 2}
	seenMap, seenSeq := false, false
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || n.Kind != yaml.MappingNode || n.Style&yaml.FlowStyle != 0 {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Style&yaml.FlowStyle != 0 || v.Line <= k.Line {
				continue
			}
			switch v.Kind {
			case yaml.MappingNode:
				if !seenMap && t.indent(v) > k.Column-1 {
					st.mapIndent, seenMap = t.indent(v)-(k.Column-1), true
				}
				walk(v)
			case yaml.SequenceNode:
				if !seenSeq {
					st.seqIndent, seenSeq = t.indent(v)-(k.Column-1), true
				}
				for _, item := range v.Content {
					walk(item)
				}
			}
		}
	}
	walk(t.root())
	return st
}

// section renders key: followed by a block sequence holding one item, at
// indent, nested under the keys of path first.
func (t *yamlText) section(indent int, path []string, item []kv) ([]string, error) {
	st := t.style()
	var lines []string
	for _, k := range path {
		lines = append(lines, strings.Repeat(" ", indent)+k+":")
		indent += st.mapIndent
	}
	indent -= st.mapIndent
	dash := indent + st.seqIndent
	il, err := blockItem(dash, dash+2, item)
	return append(lines, il...), err
}

// addItem adds item to the sequence at path (keys from the top level),
// creating the sequence and the mappings above it when absent. With first,
// the item goes before the others; else after them.
func (t *yamlText) addItem(path []string, item []kv, first bool) ([]byte, error) {
	root := t.root()
	if root == nil {
		return t.appendTopLevel(path, item)
	}
	if root.Kind != yaml.MappingNode {
		return nil, layoutf("the top level is not a mapping")
	}
	if root.Style&yaml.FlowStyle != 0 {
		return t.rewriteFlow(root, func(c *yaml.Node) { addInNode(c, path, item, first) })
	}
	m, floor := root, 0
	for depth, k := range path {
		e, ok := lookup(m, k)
		if !ok {
			return t.addEntry(m, floor, path[depth:], item)
		}
		v := resolve(e.value)
		last := depth == len(path)-1
		switch {
		case isNull(v) || (v.Kind == yaml.MappingNode && len(v.Content) == 0 && !last) || (v.Kind == yaml.SequenceNode && len(v.Content) == 0 && last):
			return t.fillEmpty(m, e, path[depth+1:], item)
		case v != e.value:
			return nil, layoutf("%s is an alias", k)
		case last && v.Kind == yaml.SequenceNode:
			return t.addToSequence(m, e, item, first)
		case !last && v.Kind == yaml.MappingNode && v.Style&yaml.FlowStyle != 0:
			return t.rewriteFlow(v, func(c *yaml.Node) { addInNode(c, path[depth+1:], item, first) })
		case !last && v.Kind == yaml.MappingNode:
			m, floor = v, e.key.Line
		default:
			return nil, layoutf("%s is not a %s", k, map[bool]string{true: "list", false: "mapping"}[last])
		}
	}
	return nil, layoutf("empty path")
}

// addInNode adds item to the sequence at path under the node c (a copy
// being rewritten in flow style), creating what is missing.
func addInNode(c *yaml.Node, path []string, item []kv, first bool) {
	if len(path) == 0 {
		n := flowItemNode(item)
		if first {
			c.Content = append([]*yaml.Node{n}, c.Content...)
		} else {
			c.Content = append(c.Content, n)
		}
		return
	}
	kind := yaml.MappingNode
	if len(path) == 1 {
		kind = yaml.SequenceNode
	}
	var v *yaml.Node
	if e, ok := lookup(c, path[0]); ok {
		v = c.Content[2*e.index+1]
	} else {
		v = &yaml.Node{}
		at := len(c.Content)
		if before, ok := lookup(c, entryOrder[path[0]]); ok {
			at = 2 * before.index
		}
		pair := []*yaml.Node{{Kind: yaml.ScalarNode, Value: path[0]}, v}
		c.Content = append(c.Content[:at], append(pair, c.Content[at:]...)...)
	}
	if v.Kind != kind { // null
		*v = yaml.Node{Kind: kind, Style: yaml.FlowStyle}
	}
	addInNode(v, path[1:], item, first)
}

// appendTopLevel writes path and item at the end of a file that holds no
// document (nothing, or only comments).
func (t *yamlText) appendTopLevel(path []string, item []kv) ([]byte, error) {
	lines, err := t.section(0, path, item)
	if err != nil {
		return nil, err
	}
	pre := ""
	if n := len(t.src); n > 0 {
		if t.src[n-1] != '\n' {
			pre = t.nl
		}
		if last := t.lineOf(n - 1); !t.blank(last) {
			pre += t.nl // a blank line after the comments
		}
	}
	return t.apply(splice{len(t.src), len(t.src), pre + strings.Join(lines, t.nl) + t.nl})
}

// entryOrder is where new keys go relative to existing ones: policies come
// before assignments, users before groups.
var entryOrder = map[string]string{"policies": "assignments", "users": "groups"}

// addEntry adds the missing key path[0] (with the rest of path and item
// under it) to the block mapping m, whose own key is on line floor (0 for
// the top level).
func (t *yamlText) addEntry(m *yaml.Node, floor int, path []string, item []kv) ([]byte, error) {
	indent := t.indent(m)
	lines, err := t.section(indent, path, item)
	if err != nil {
		return nil, err
	}
	text := strings.Join(lines, t.nl)
	// Blank lines between the entries of m are kept up for the new one.
	sep := ""
	for i := 1; i < len(m.Content)/2; i++ {
		if first := t.headStart(m.Content[2*i].Line, indent, t.entryLastLine(entryAt(m, i-1))); first > 1 && t.blank(first-1) {
			sep = t.nl
			break
		}
	}
	if before, ok := lookup(m, entryOrder[path[0]]); ok {
		prevLast := floor
		if before.index > 0 {
			prevLast = t.entryLastLine(entryAt(m, before.index-1))
		}
		at := t.lineStart(t.headStart(before.key.Line, indent, prevLast))
		return t.apply(splice{at, at, text + t.nl + sep})
	}
	at := t.contentEnd(t.entryLastLine(entryAt(m, len(m.Content)/2-1)))
	return t.apply(splice{at, at, t.nl + sep + text})
}

// fillEmpty replaces the empty value of entry e of m ("key:", "key: ~",
// "key: []", "key: {}") by blocks holding the rest of path and item.
func (t *yamlText) fillEmpty(m *yaml.Node, e entry, path []string, item []kv) ([]byte, error) {
	st := t.style()
	indent := t.indent(m)
	var lines []string
	var err error
	if len(path) == 0 {
		dash := indent + st.seqIndent
		lines, err = blockItem(dash, dash+2, item)
	} else {
		lines, err = t.section(indent+st.mapIndent, path, item)
	}
	if err != nil {
		return nil, err
	}
	t.keepAnchors(e.value)
	colon := t.colonEnd(e.key)
	_, valEnd := t.extent(e.value)
	if emptyValue(e.value) {
		valEnd = colon
	} else if t.lineOf(max(valEnd-1, colon)) != e.key.Line {
		t.fail("line %d: the value of %s is not on its line", e.key.Line, e.key.Value)
	}
	at := t.contentEnd(e.key.Line) // after a comment on the line
	return t.apply(
		splice{colon, valEnd, ""},
		splice{at, at, t.nl + strings.Join(lines, t.nl)},
	)
}

// addToSequence adds item to the non-empty sequence that is the value of e,
// in the style of its items.
func (t *yamlText) addToSequence(m *yaml.Node, e entry, item []kv, first bool) ([]byte, error) {
	seq := e.value
	if seq.Style&yaml.FlowStyle != 0 {
		return t.rewriteFlow(seq, func(c *yaml.Node) { addInNode(c, nil, item, first) })
	}
	floor := e.key.Line
	like := seq.Content[len(seq.Content)-1]
	if first {
		like = seq.Content[0]
	}
	dash := t.indent(seq)
	var lines []string
	if like.Kind == yaml.MappingNode && like.Style&yaml.FlowStyle != 0 {
		s, err := flowItem(item)
		if err != nil {
			return nil, err
		}
		lines = []string{strings.Repeat(" ", dash) + "- " + s}
	} else {
		content := dash + 2
		if like.Kind == yaml.MappingNode {
			content = t.indent(like)
		}
		var err error
		if lines, err = blockItem(dash, content, item); err != nil {
			return nil, err
		}
	}
	text := strings.Join(lines, t.nl)
	sep := ""
	if t.blankSeparated(seq, floor) {
		sep = t.nl
	}
	if first {
		line, _ := t.itemLines(seq, 0, floor)
		at := t.lineStart(line)
		return t.apply(splice{at, at, text + t.nl + sep})
	}
	_, last := t.itemLines(seq, len(seq.Content)-1, floor)
	at := t.contentEnd(last)
	return t.apply(splice{at, at, t.nl + sep + text})
}

// removeItem removes item i of the sequence that is the value of e in m,
// with the comment lines directly above it. An emptied sequence is written
// as [].
func (t *yamlText) removeItem(m *yaml.Node, e entry, i int) ([]byte, error) {
	seq := resolve(e.value)
	if seq != e.value {
		return nil, layoutf("the list is an alias")
	}
	if seq.Style&yaml.FlowStyle != 0 {
		return t.rewriteFlow(seq, func(c *yaml.Node) {
			c.Content = append(c.Content[:i], c.Content[i+1:]...)
		})
	}
	t.keepAnchors(seq.Content[i])
	first, last := t.itemLines(seq, i, e.key.Line)
	if (first > 1 && t.blank(first-1)) || (i == 0 && len(seq.Content) > 1) {
		// Drop the blank lines after it too: one blank line is left
		// between the items around it, none after the key.
		for last < t.numLines() && t.blank(last+1) && t.nextLine(last+1) > t.nextLine(last) {
			last++
		}
	}
	ss := []splice{{t.lineStart(first), t.nextLine(last), ""}}
	if len(seq.Content) == 1 {
		at := t.emptyListAt(e.key, seq)
		ss = append(ss, splice{at, at, " []"})
	}
	return t.apply(ss...)
}

// emptyListAt is where " []" goes when the block sequence seq, the value of
// key, loses its last item: after the colon, or after the tag or anchor the
// list carries on the key's line (the shortest text there that yaml.v3
// reads, followed by " []", as an empty list with those).
func (t *yamlText) emptyListAt(key, seq *yaml.Node) int {
	if seq.Line != key.Line {
		return t.colonEnd(key)
	}
	want := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle | seq.Style&yaml.TaggedStyle, Tag: seq.Tag, Anchor: seq.Anchor}
	at, ok := t.endOn(want, t.pos(seq), seq.Line, "", " []")
	if !ok {
		t.fail("line %d: cannot tell where the tag or anchor of %s ends", key.Line, key.Value)
	}
	return at
}
