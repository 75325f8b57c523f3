// Package configs embeds what the binary runs on with no files of its own:
// the demo configuration parkswitch.yaml, the policy file it names
// (policies.yaml) and the built-in music on hold, which moh/ renders. The
// file parkswitch.yaml on disk is also the default --config, each key
// commented.
package configs

import "embed"

// FS holds parkswitch.yaml and policies.yaml: the embedded default used when
// no config file exists, so the binary runs with no files on disk.
//
//go:embed parkswitch.yaml policies.yaml
var FS embed.FS
