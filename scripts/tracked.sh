#!/usr/bin/env bash
# Fails when git tracks a build output or test leftover: an executable
# binary (ELF) or a file over 1 MiB. Files under a testdata/ folder are
# fixtures and may be binary (RDB files), though not over the size.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  size=$(stat -c %s "$f")
  if [ "$size" -gt 1048576 ]; then
    echo "tracked file over 1 MiB: $f ($size bytes)"; bad=1
  fi
  case "$f" in */testdata/*|testdata/*) continue ;; esac
  if [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = "7f454c46" ]; then
    echo "tracked executable binary: $f"; bad=1
  fi
done < <(git ls-files -z)
exit $bad
