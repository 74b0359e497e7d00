#!/usr/bin/env bash
# Packaging checks run by .ci/run: the unit passes `systemd-analyze verify`, and `cargo deb` builds a package whose
# contents (`dpkg-deb -c`) are the expected files. Fails loudly when a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v systemd-analyze >/dev/null || { echo "packaging/check.sh: systemd-analyze is missing" >&2; exit 1; }
command -v cargo-deb >/dev/null || { echo "packaging/check.sh: cargo-deb is missing (cargo install cargo-deb)" >&2; exit 1; }

# HSMWATCH_DEB_PROFILE=dev packages a debug build: the same files, minutes sooner (what CI checks is the packaging).
profile=${HSMWATCH_DEB_PROFILE:-release}
cargo deb --locked --quiet --profile "$profile"
deb=$(ls -t target/debian/hsmwatch_*.deb | head -1)
bin_dir=target/$([ "$profile" = dev ] && echo debug || echo "$profile")

# The unit as installed names /usr/bin/hsmwatch; verify a copy that names the binary just built.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|/usr/bin/hsmwatch|$PWD/$bin_dir/hsmwatch|" packaging/hsmwatch.service > "$work/hsmwatch.service"
# `verify` reports problems on stderr and exits non-zero for errors; warnings about this machine's own units are noise.
if ! systemd-analyze verify "$work/hsmwatch.service" 2> "$work/verify.log"; then
  cat "$work/verify.log" >&2
  echo "packaging/check.sh: systemd-analyze verify failed" >&2
  exit 1
fi
if grep -i "hsmwatch.service" "$work/verify.log"; then
  echo "packaging/check.sh: systemd-analyze verify complained about the unit" >&2
  exit 1
fi

dpkg-deb -c "$deb" | awk '{print $6}' > "$work/contents"
for expected in \
  ./usr/bin/hsmwatch \
  ./usr/lib/systemd/system/hsmwatch.service \
  ./etc/hsmwatch/hsmwatch.yaml \
  ./etc/hsmwatch/rules/authentication.yaml \
  ./etc/hsmwatch/rules/decoders/lunash.yaml \
  ./etc/hsmwatch/rules/snmp/luna.yaml \
  ./usr/share/doc/hsmwatch/README.md \
  ./usr/share/doc/hsmwatch/deployment.md \
  ./usr/share/doc/hsmwatch/events.md \
  ./usr/share/doc/hsmwatch/rules.md \
  ./usr/share/doc/hsmwatch/examples/rsyslog-relay.conf \
  ./usr/share/doc/hsmwatch/examples/syslog-ng-relay.conf
do
  grep -qx "$expected" "$work/contents" || { echo "packaging/check.sh: $deb lacks $expected" >&2; cat "$work/contents" >&2; exit 1; }
done
dpkg-deb -e "$deb" "$work/control"
for conffile in /etc/hsmwatch/hsmwatch.yaml /etc/hsmwatch/rules/authentication.yaml /etc/hsmwatch/rules/decoders/lunash.yaml; do
  grep -qx "$conffile" "$work/control/conffiles" || { echo "packaging/check.sh: $conffile is not a conffile" >&2; exit 1; }
done
echo "packaging/check.sh: $deb ok ($(wc -l < "$work/contents") entries; unit verified)"
