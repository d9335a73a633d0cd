#!/usr/bin/env bash
# Debian packages the test suite drives (binaries nobody here wrote), installed when missing:
#   promtool (prometheus)               validates /metrics output, runs the alert-rule tests
#   etcd (etcd-server)                  coordinates index replica groups in the failover tests
#   chromium + chromedriver             the playground's real-browser test (selenium)
# Without apt-get or root (and no sudo) it only warns: those tests then skip with a reason.
set -uo pipefail
command -v apt-get >/dev/null 2>&1 || exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo -n" || SUDO="none"
fi
updated=0
need() {  # need COMMAND PACKAGE... : install the packages when COMMAND is missing
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "$SUDO" = "none" ]; then
    echo "warning: $cmd missing and no root to install $*; its tests will be skipped" >&2
    return 0
  fi
  $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 && return 0
  if [ $updated -eq 0 ]; then
    $SUDO apt-get update -q >/dev/null 2>&1; updated=1
    $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 && return 0
  fi
  echo "warning: could not install $*; the tests that need $cmd will be skipped" >&2
}
need promtool prometheus
need etcd etcd-server
need chromedriver chromium chromium-driver
exit 0
