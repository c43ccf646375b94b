#!/bin/sh
# Builds the Debian package from this checkout: packaging/build-deb.sh [OUTDIR]
# Copies the sources (tracked and new files, no build directories) to a temporary directory,
# puts packaging/debian there as debian/, runs dpkg-buildpackage -b and leaves
# gatewayd_VERSION_ARCH.deb (with its .buildinfo and .changes) in OUTDIR, by default the top
# of the checkout. The checkout itself is not written to. The unit tests are skipped unless
# DEB_BUILD_OPTIONS says otherwise (e.g. DEB_BUILD_OPTIONS=parallel=2 runs them).
# Needs the build dependencies of packaging/debian/control (packaging/install-deps.sh).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top}
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/gatewayd-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
src=$work/gatewayd
mkdir "$src"

if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$src"
else
	tar -C "$top" --exclude='./build*' --exclude=./debian --exclude=./.git -cf - . |
		tar -xf - -C "$src"
fi
rm -rf "$src/debian"
cp -R "$src/packaging/debian" "$src/debian"

cd "$src"
DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-"nocheck parallel=$(nproc)"} \
	dpkg-buildpackage -b -us -uc
for f in "$work"/gatewayd_*.deb "$work"/gatewayd-dbgsym_*.deb "$work"/gatewayd_*.buildinfo "$work"/gatewayd_*.changes; do
	mv -f "$f" "$out/"
	echo "build-deb: $out/${f##*/}"
done
