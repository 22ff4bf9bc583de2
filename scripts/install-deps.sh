#!/usr/bin/env bash
# Installs what the tests and the demo need (Debian/Ubuntu, as root): Postfix
# (with smtp-sink), swaks, dnsmasq (a loopback DNS server for the sender
# authentication tests), Dovecot (a real SASL server for the SMTP AUTH test)
# and dkimpy. Postfix is installed unconfigured, dnsmasq-base has no service
# and Dovecot's service is kept from starting: nothing starts.
set -euo pipefail
have_sink() { command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/lib/postfix/sbin/smtp-sink ] || [ -x /usr/sbin/smtp-sink ]; }
if ! { command -v postfix >/dev/null 2>&1 && command -v swaks >/dev/null 2>&1 && have_sink \
       && command -v dnsmasq >/dev/null 2>&1; }; then
  echo "== installing postfix, swaks and dnsmasq"
  apt-get update -qq
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix swaks dnsmasq-base >/dev/null
fi
# Dovecot's auth server for tests/e2e_sasl.rs, which runs a private instance.
# Its package would start the system service: policy-rc.d refuses that (ours
# only if there was none), and the service is disabled at boot.
if ! { command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; }; then
  echo "== installing dovecot-core"
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-core >/dev/null
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
  fi
fi
# An independent DKIM verifier for the tests (dkimpy; PyNaCl for Ed25519).
if ! python3 -c "import dkim, nacl" >/dev/null 2>&1; then
  echo "== installing dkimpy"
  python3 -m pip install -q --root-user-action=ignore dkimpy pynacl
fi
