#!/usr/bin/env bash
# Installs the Debian packages waitroom's tests and demo need on a fresh Debian / Raspberry Pi OS machine.
# Runs apt-get when we are root (or have sudo); otherwise names the packages in one clear message.
set -euo pipefail

PACKAGES=(
  mosquitto mosquitto-clients      # the production broker; tests run a real one
  espeak-ng libespeak-ng1          # offline speech for announcements (pyttsx3 driver)
  fonts-dejavu-core                # display and ticket fonts with umlauts
  chromium                         # headless browser for end-to-end tests (driven by Playwright)
  debootstrap                      # throwaway bookworm root for the Ansible test
  openssl                          # office CA and certificates
  sox                              # measuring synthesized audio in tests
  libfribidi0                      # right-to-left text (Pillow + libraqm) on tickets and the board
)

# `--demo`: only what `make demo` needs (the demo's broker is embedded), and never fail the demo over it.
DEMO=0
if [ "${1:-}" = "--demo" ]; then
  DEMO=1
  PACKAGES=(espeak-ng libespeak-ng1 fonts-dejavu-core)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# axe-core for the accessibility tests (scripts/install-axe.sh) needs node and npm. Many machines carry a
# Node.js of their own (NodeSource's nodejs bundles npm and conflicts with Debian's npm package): Debian's
# nodejs and npm are installed only when there is no Node.js package at all; scripts/install-axe.sh finds a
# bundled npm that is not on PATH.
if [ "$DEMO" -eq 0 ] && ! command -v npm >/dev/null && ! dpkg-query -W -f='${Status}' nodejs 2>/dev/null | grep -q "install ok installed"; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else
  echo "waitroom: these Debian packages are missing and I cannot install them without root:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  [ "$DEMO" -eq 1 ] && { echo "(the demo runs without them, but the display stays silent)" >&2; exit 0; }
  # In CI a missing package is an error; on a developer machine the tests that need it skip with this hint.
  [ "${CI:-}" = "true" ] && exit 1
  echo "(tests that need them will be skipped with the same hint)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# The Debian package starts a system mosquitto on :1883; waitroom's tests and demo run their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet mosquitto 2>/dev/null; then
  $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
