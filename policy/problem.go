package policy

import (
	"sort"
	"strconv"
	"strings"
)

// Problem is one located validation error.
type Problem struct {
	File string // file the problem was found in; may be empty
	Line int    // 1-based line, 0 when the problem concerns the whole file
	Msg  string // what is wrong and how to fix it
}

// Error formats the problem as "file:line: message", leaving out what is unknown.
func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one validation pass. It implements error
// with one "file:line: message" per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns ps as an error, or nil when there are none; returning a nil
// Problems as error directly would give a non-nil interface.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Sort orders problems by line within each file, keeping files in the order
// they first appear, so that reports read top to bottom whatever order the
// checks ran in.
func (ps Problems) Sort() {
	rank := map[string]int{}
	for _, p := range ps {
		if _, ok := rank[p.File]; !ok {
			rank[p.File] = len(rank)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if ri, rj := rank[ps[i].File], rank[ps[j].File]; ri != rj {
			return ri < rj
		}
		return ps[i].Line < ps[j].Line
	})
}
