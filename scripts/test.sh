#!/usr/bin/env bash
# Runs every test: unit, protocol (indymilter-test), CLI, and end to end through
# a real Postfix on loopback. Installs Postfix and swaks first if missing.
# Needs root (Postfix runs from a private config directory) and Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v postfix >/dev/null 2>&1 || ! command -v swaks >/dev/null 2>&1 \
   || ! { command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/lib/postfix/sbin/smtp-sink ] || [ -x /usr/sbin/smtp-sink ]; }; then
  echo "== installing postfix and swaks"
  apt-get update -qq
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix swaks >/dev/null
fi

echo "== cargo test"
cargo test --locked "$@"
