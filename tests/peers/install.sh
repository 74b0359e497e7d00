#!/usr/bin/env bash
# Installs the programs the tests run as real peers (run as root; .ci/run runs it): util-linux logger, sqlite3,
# rsyslog with its OpenSSL driver, openssl, Chromium, Debian's Python with aiosmtpd, systemd-analyze, net-snmp's agent (snmpd) and tools
# (snmpget, snmptrap), PostgreSQL's server (initdb, postgres) with pg_trgm, moto's AWS server (pip); and syslog-ng, which conflicts with
# rsyslog as a Debian package, unpacked with dpkg -x under target/peers/syslog-ng (HSMWATCH_SYSLOG_NG overrides where).
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
command -v logger >/dev/null 2>&1 || need_apt+=(bsdutils)
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v rsyslogd >/dev/null 2>&1 || need_apt+=(rsyslog)
# rsyslog's OpenSSL stream driver, for the relay over TLS.
dpkg -s rsyslog-openssl >/dev/null 2>&1 || need_apt+=(rsyslog-openssl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v snmpd >/dev/null 2>&1 || need_apt+=(snmpd)
command -v snmptrap >/dev/null 2>&1 || need_apt+=(snmp)
# Debian's server package keeps initdb and postgres under /usr/lib/postgresql/VERSION/bin; pg_trgm comes with it.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need_apt+=(python3-aiosmtpd)
# syslog-ng's own libraries (the unpacked package brings only itself).
for lib in libivykis0 libnet1 libpcre3 libwrap0 libjson-c5; do
  dpkg -s "$lib" >/dev/null 2>&1 || need_apt+=("$lib")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

sng=${HSMWATCH_SYSLOG_NG:-$PWD/target/peers/syslog-ng}
if [ ! -x "$sng/usr/sbin/syslog-ng" ]; then
  download=$(mktemp -d)
  (cd "$download" && apt-get download syslog-ng-core >/dev/null 2>&1)
  mkdir -p "$sng"
  dpkg -x "$download"/syslog-ng-core_*.deb "$sng"
  rm -rf "$download"
fi

# moto's AWS server (the stand-in for AWS in the cloud inventory's tests): the image's Python may have it already;
# else a virtual environment under target/peers/moto, which the tests look for (HSMWATCH_MOTO_PYTHON overrides).
if ! python3 -c 'import moto, boto3' >/dev/null 2>&1 && [ ! -x target/peers/moto/bin/python3 ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  fi
  python3 -m venv target/peers/moto
  target/peers/moto/bin/pip install --quiet 'moto[server]>=5.1,<6' boto3
fi
