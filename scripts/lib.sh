# Shared by scripts/setup-run and scripts/setup (sourced, not run).

# apt_install PKG... : installs the packages (as root; otherwise says what to install), quietly:
# apt's own output goes to a log file that is named if something fails. LibreOffice 24.8 or
# newer comes from bookworm-backports on Debian 12 (set BACKPORTS=1 for those packages).
apt_install() {
  [ $# -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "setup: please install $* (as root: apt-get install $*); deskhand needs them" >&2
    return 0
  fi
  local target=()
  if [ "${BACKPORTS:-0}" = 1 ] && [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = bookworm ]; then
    target=(-t bookworm-backports)
    [ -e /etc/apt/sources.list.d/bookworm-backports.list ] ||
      echo "deb http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/bookworm-backports.list
  fi
  local log="${TMPDIR:-/tmp}/deskhand-apt.log"
  echo "setup: installing $* (a few minutes the first time; apt's output is in $log)" >&2
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${target[@]}" "$@"; } >"$log" 2>&1; then
    echo "setup: installing $* failed; see $log" >&2
  fi
}

# needs_libreoffice PKG : whether PKG is missing or older than LibreOffice 24.8 (XLOOKUP).
needs_libreoffice() {
  local v
  v=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null || true)
  [ "${v%% *}" != installed ] || ! dpkg --compare-versions "${v#* }" ge 4:24.8
}
