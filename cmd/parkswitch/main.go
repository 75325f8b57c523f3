// Command parkswitch is a SIP back-to-back user agent softswitch with call
// park and retrieve under Teams-style call park policies.
//
//	parkswitch serve   [--config FILE]   run the switch
//	parkswitch check   [--config FILE]   validate the configuration and exit
//	parkswitch policy  new|set|get|remove|grant ...   manage call park policies
//	parkswitch unban   [--config FILE] IP   lift the ban on a source address
//	parkswitch passwd  [--stdin]         hash an admin API password for http.users
//	parkswitch version                   print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// defaultConfig is where --config points when it is not given.
const defaultConfig = "configs/parkswitch.yaml"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "policy":
		return cmdPolicy(args[1:], stdout, stderr)
	case "unban":
		return cmdUnban(ctx, args[1:], stdout, stderr)
	case "passwd":
		return cmdPasswd(args[1:], os.Stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "parkswitch", version)
		return 0
	case "help", "--help", "-h":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "parkswitch: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  parkswitch serve   [--config FILE]   run the switch
  parkswitch check   [--config FILE]   validate the configuration and exit
  parkswitch policy  new|set|get|remove|grant ...
                                       manage call park policies (parkswitch policy help)
  parkswitch unban   [--config FILE] [--token T] IP
                                       lift a running switch's ban on a source address
  parkswitch passwd  [--stdin]         read a password, print its bcrypt hash for http.users
  parkswitch version                   print the version

--config defaults to `+defaultConfig+`; when that file does not exist the
built-in demo configuration is used.
`)
}
