#!/bin/sh
# Renders the built-in spoken prompts, configs/prompts/*.wav, with espeak-ng
# (speech) and sox (8 kHz mono 16-bit PCM, silence trimmed, level set).
# Only regenerating needs them (Debian packages espeak-ng and sox); the
# build and the tests use the committed files. configs/prompts.go runs it:
#
#	go generate ./configs/
#
# Each file is one phrase with a short pause before and after, so that the
# switch can play them back to back: "parked at", then the code digit by
# digit ("one", "two").
set -eu
out=${1:-configs/prompts}
for tool in espeak-ng sox; do
	command -v "$tool" >/dev/null 2>&1 || { echo "gen.sh: $tool is needed (apt-get install espeak-ng sox)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# render NAME TEXT LEAD TAIL: TEXT spoken into NAME.wav, with LEAD and TAIL
# seconds of silence around the trimmed speech. No dither (-D): the same
# espeak-ng and sox render the committed files byte for byte.
render() {
	espeak-ng -v en-us -s 150 -w "$tmp/$1.wav" "$2"
	sox -D "$tmp/$1.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/$1.wav" \
		silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
		norm -6 pad "$3" "$4"
}

render parked_at "parked at" 0.1 0.2
i=0
for word in zero one two three four five six seven eight nine; do
	render "$i" "$word" 0 0.12
	i=$((i + 1))
done
