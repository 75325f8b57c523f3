package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

const passwdUsage = "parkswitch passwd [--stdin] [--cost N]"

// minAdminPassword is the shortest password passwd hashes.
const minAdminPassword = 8

// cmdPasswd reads a password and prints its bcrypt hash for a
// password_hash of http.users. From a terminal it reads without echo and
// asks twice; otherwise (or with --stdin) it reads the first line of stdin.
func cmdPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fset := newFlagSet("passwd")
	fromStdin := fset.Bool("stdin", false, "read the password from the first line of standard input, even on a terminal")
	cost := fset.Int("cost", bcrypt.DefaultCost, "bcrypt cost (work factor), 4–31")
	if code, ok := parseFlags(fset, args, passwdUsage, stdout, stderr); !ok {
		return code
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "parkswitch passwd: unexpected argument %q: the password is read, never given on the command line; usage: %s\n", fset.Arg(0), passwdUsage)
		return 2
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(stderr, "parkswitch passwd: --cost %d is out of range: use %d–%d (default %d)\n", *cost, bcrypt.MinCost, bcrypt.MaxCost, bcrypt.DefaultCost)
		return 2
	}
	var (
		pw  []byte
		err error
	)
	if f, ok := stdin.(*os.File); ok && !*fromStdin && term.IsTerminal(int(f.Fd())) {
		pw, err = readTerminalPassword(f, stderr)
	} else {
		pw, err = readLine(stdin)
	}
	if err != nil {
		fmt.Fprintln(stderr, "parkswitch passwd:", err)
		return 1
	}
	switch {
	case len(pw) < minAdminPassword:
		fmt.Fprintf(stderr, "parkswitch passwd: the password is shorter than %d characters: choose a longer one\n", minAdminPassword)
		return 1
	case len(pw) > 72:
		fmt.Fprintln(stderr, "parkswitch passwd: the password is longer than 72 bytes, which bcrypt cannot hash: choose a shorter one")
		return 1
	}
	hash, err := bcrypt.GenerateFromPassword(pw, *cost)
	if err != nil {
		fmt.Fprintln(stderr, "parkswitch passwd:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(hash))
	return 0
}

func readTerminalPassword(f *os.File, prompt io.Writer) ([]byte, error) {
	fmt.Fprint(prompt, "Password: ")
	pw, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(prompt, "Again: ")
	again, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	if !bytes.Equal(pw, again) {
		return nil, errors.New("the passwords differ: nothing printed, try again")
	}
	return pw, nil
}

// readLine reads one line without its line ending.
func readLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read password: %w", err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return nil, errors.New("no password on standard input: pipe one line, e.g. printf '%s\\n' \"$PW\" | parkswitch passwd --stdin")
	}
	return line, nil
}
