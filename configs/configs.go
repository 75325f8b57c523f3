// Package configs holds the default configuration: parkswitch.yaml and the
// policy file it names, policies.yaml.
package configs

import "embed"

// FS holds parkswitch.yaml and policies.yaml: the embedded default used when
// no config file exists, so the binary runs with no files on disk.
//
//go:embed parkswitch.yaml policies.yaml
var FS embed.FS
