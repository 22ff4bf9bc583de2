#!/usr/bin/env bash
# Installs what the tests and the demo need (Debian/Ubuntu, as root): Postfix
# (with smtp-sink), swaks, dnsmasq (a loopback DNS server for the sender
# authentication tests) and dkimpy. Postfix is installed unconfigured and
# dnsmasq-base has no service: nothing starts.
set -euo pipefail
have_sink() { command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/lib/postfix/sbin/smtp-sink ] || [ -x /usr/sbin/smtp-sink ]; }
if ! { command -v postfix >/dev/null 2>&1 && command -v swaks >/dev/null 2>&1 && have_sink \
       && command -v dnsmasq >/dev/null 2>&1; }; then
  echo "== installing postfix, swaks and dnsmasq"
  apt-get update -qq
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix swaks dnsmasq-base >/dev/null
fi
# An independent DKIM verifier for the tests (dkimpy; PyNaCl for Ed25519).
if ! python3 -c "import dkim, nacl" >/dev/null 2>&1; then
  echo "== installing dkimpy"
  python3 -m pip install -q --root-user-action=ignore dkimpy pynacl
fi
