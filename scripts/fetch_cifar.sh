#!/usr/bin/env bash
# Downloads the binary CIFAR-10 or CIFAR-100 archive from the official site, verifies its
# published md5 and unpacks it, without the archive's top-level folder, into a directory.
#
#   scripts/fetch_cifar.sh cifar10  [DIR]   # default DIR: data/cifar-10
#   scripts/fetch_cifar.sh cifar100 [DIR]   # default DIR: data/cifar-100
#
# CIFAR_BASE_URL overrides the site (a mirror, or file:///path); the md5 is checked all the same.
# Needs internet access and curl (or wget), md5sum and tar. An existing, complete DIR is kept.
set -euo pipefail

die() { echo "fetch_cifar: error: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 cifar10|cifar100 [DIR]"
base_url="${CIFAR_BASE_URL:-https://www.cs.toronto.edu/~kriz}"  # override for a local mirror
case "$1" in
  cifar10)
    archive="cifar-10-binary.tar.gz"; md5="c32a1d4ab5d03f1284b67883e8d87530"
    dir="${2:-data/cifar-10}"
    expected_files="data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin"
    ;;
  cifar100)
    archive="cifar-100-binary.tar.gz"; md5="03b5dce01913d631647c71ecec9e9cb8"
    dir="${2:-data/cifar-100}"
    expected_files="train.bin test.bin"
    ;;
  *) die "unknown dataset '$1' (expected cifar10 or cifar100)" ;;
esac

complete=1
for f in $expected_files; do [ -s "$dir/$f" ] || complete=0; done
if [ "$complete" = 1 ]; then
  echo "fetch_cifar: $dir already holds $expected_files; nothing to do"
  exit 0
fi

for tool in md5sum tar; do command -v "$tool" >/dev/null || die "'$tool' is not installed"; done
mkdir -p "$dir"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch_cifar.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

url="$base_url/$archive"
echo "fetch_cifar: downloading $url"
if command -v curl >/dev/null; then
  curl --fail --location --silent --show-error --connect-timeout 20 --retry 2 -o "$tmp/$archive" "$url" \
    || die "download of $url failed (no internet access on this machine?). Download it elsewhere and unpack it with: tar -xzf $archive --strip-components=1 -C $dir"
elif command -v wget >/dev/null; then
  wget --quiet --timeout=20 --tries=2 -O "$tmp/$archive" "$url" \
    || die "download of $url failed (no internet access on this machine?). Download it elsewhere and unpack it with: tar -xzf $archive --strip-components=1 -C $dir"
else
  die "neither curl nor wget is installed"
fi

actual="$(md5sum "$tmp/$archive" | cut -d' ' -f1)"
[ "$actual" = "$md5" ] || die "md5 mismatch for $archive: expected $md5, got $actual (corrupt or tampered download)"
echo "fetch_cifar: md5 ok ($md5)"

tar -xzf "$tmp/$archive" --strip-components=1 -C "$dir"
for f in $expected_files; do [ -s "$dir/$f" ] || die "archive unpacked but $dir/$f is missing"; done
echo "fetch_cifar: unpacked into $dir: $expected_files"
