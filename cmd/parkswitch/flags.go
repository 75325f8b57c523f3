package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/parkswitch/parkswitch/policy"
)

// newFlagSet returns a flag set that prints nothing itself: parseFlags
// turns its errors into one line that says what to do.
func newFlagSet(name string) *flag.FlagSet {
	fset := flag.NewFlagSet(name, flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	return fset
}

// parseFlags parses args, flags first as the flag package has it. On
// --help it prints usage and the flags to stdout; on a mistake, one line to
// stderr. ok is false when the command must stop, with code its exit status.
func parseFlags(fset *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer) (code int, ok bool) {
	if err := fset.Parse(args); err != nil {
		return flagStop(fset, err, usage, stdout, stderr), false
	}
	return 0, true
}

// parseInterspersed is parseFlags for commands whose flags may come before
// or after their positional arguments ("policy set X --allow-call-park=false"
// and "policy set --allow-call-park=false X"), which it returns in order.
// The flag package stops at the first argument that is not a flag, so each
// such argument is set aside and the rest parsed again; after "--" all that
// remains is positional.
func parseInterspersed(fset *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	for {
		if err := fset.Parse(args); err != nil {
			return nil, flagStop(fset, err, usage, stdout, stderr), false
		}
		rest := fset.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), 0, true
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// flagStop answers a Parse error: usage and the flags on stdout for
// --help (exit 0), else one line on stderr (exit 2). A usage of several
// lines is joined with "or" to keep the error on one line.
func flagStop(fset *flag.FlagSet, err error, usage string, stdout, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, "usage: "+usage)
		fset.SetOutput(stdout)
		fset.PrintDefaults()
		return 0
	}
	fmt.Fprintf(stderr, "parkswitch %s: %s; usage: %s\n", fset.Name(), flagProblem(fset, err), oneLine(usage))
	return 2
}

// oneLine joins the lines of a usage with "or" and collapses the spaces
// that align them.
func oneLine(usage string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(usage, "\n", " or ")), " ")
}

// flagGiven reports whether flag name was on the command line, as opposed
// to holding its default.
func flagGiven(fset *flag.FlagSet, name string) bool {
	given := false
	fset.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// flagProblem rewrites the flag package's messages ("flag provided but
// not defined: -confg") for people, with the nearest known flag.
func flagProblem(fset *flag.FlagSet, err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		name = strings.TrimPrefix(name, "-")
		if near := nearestFlag(fset, name); near != "" {
			return fmt.Sprintf("unknown flag --%s (did you mean --%s?)", name, near)
		}
		return fmt.Sprintf("unknown flag --%s", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Sprintf("--%s needs a value, e.g. --%s=VALUE", strings.TrimPrefix(name, "-"), strings.TrimPrefix(name, "-"))
	}
	// invalid value "x" for flag -n: parse error
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if val, flagPart, ok := strings.Cut(rest, " for flag -"); ok {
			name, why, _ := strings.Cut(flagPart, ": ")
			name = strings.TrimPrefix(name, "-")
			if f := fset.Lookup(name); f != nil && why == "parse error" && isNumber(f.DefValue) {
				why = "write a whole number"
			}
			return fmt.Sprintf("bad value %s for --%s: %s", val, name, why)
		}
	}
	if rest, ok := strings.CutPrefix(msg, "invalid boolean value "); ok {
		if val, flagPart, ok := strings.Cut(rest, " for -"); ok {
			name, _, _ := strings.Cut(flagPart, ": ")
			return fmt.Sprintf("bad value %s for --%s: write --%s=true or --%s=false", val, name, name, name)
		}
	}
	return msg
}

// nearestFlag returns the defined flag closest to name, if it is close.
func nearestFlag(fset *flag.FlagSet, name string) string {
	var names []string
	fset.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return policy.Nearest(name, names)
}

func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	return s != "" && strings.Trim(s, "0123456789") == ""
}
