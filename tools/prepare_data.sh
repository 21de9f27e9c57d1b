#!/usr/bin/env bash
# Writes the King James Bible as plain text, one verse per line, references
# stripped ("Ge1:1 In the beginning ..." -> "In the beginning ..."), to
# ${1:-data/cache}/kjv.txt, for the language-model example. Needs the
# bible-kjv package. The Ding dictionary (trans-de-en) needs no preparing:
# heed::data::read_ding_pairs reads /usr/share/trans/de-en directly.
set -euo pipefail

out_dir="${1:-data/cache}"
if ! command -v bible >/dev/null 2>&1; then
  echo "prepare_data.sh: the 'bible' program is missing; install bible-kjv (apt-get install bible-kjv)" >&2
  exit 1
fi
mkdir -p "$out_dir"
tmp="$(mktemp "$out_dir/kjv.txt.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
# Each line starts with its reference (book abbreviation, chapter:verse) and one space.
bible -f Gen1:1-Rev22:21 | sed -E 's/^[^ ]+ //' > "$tmp"
verses="$(wc -l < "$tmp")"
if [ "$verses" -ne 31102 ]; then
  echo "prepare_data.sh: expected 31102 verses from bible-kjv, got $verses" >&2
  exit 1
fi
mv "$tmp" "$out_dir/kjv.txt"
trap - EXIT
echo "wrote $out_dir/kjv.txt ($verses verses, $(wc -c < "$out_dir/kjv.txt") bytes)"
