#!/usr/bin/env bash
# Installs what the tests and the demo need (Debian/Ubuntu, as root): Postfix
# (with smtp-sink) and swaks. Postfix is installed unconfigured: nothing starts.
set -euo pipefail
have_sink() { command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/lib/postfix/sbin/smtp-sink ] || [ -x /usr/sbin/smtp-sink ]; }
if command -v postfix >/dev/null 2>&1 && command -v swaks >/dev/null 2>&1 && have_sink; then
  exit 0
fi
echo "== installing postfix and swaks"
apt-get update -qq
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix swaks >/dev/null
