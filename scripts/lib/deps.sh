# scripts/lib/deps.sh: sourced by scripts/test and scripts/demo, so that both
# work on a fresh Debian or Ubuntu machine. deps_ensure PKG... installs the
# Debian packages that are missing (apt-get when root; otherwise it prints the
# exact command and stops). A package named after a command ("cmd:curl=curl")
# is installed only when the command is missing.

DEPS_BUILD=(build-essential cmake pkg-config libcurl4-openssl-dev libssl-dev libjansson-dev
            libpcre2-dev libsqlite3-dev libmicrohttpd-dev zlib1g-dev)

deps_ensure() {
  local missing=() spec cmd pkg
  for spec in "$@"; do
    case "$spec" in
      cmd:*)
        cmd=${spec#cmd:}; pkg=${cmd#*=}; cmd=${cmd%%=*}
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg") ;;
      *) dpkg -s "$spec" >/dev/null 2>&1 || missing+=("$spec") ;;
    esac
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "$(basename "$0"): installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "$(basename "$0"): missing packages; run as root:" >&2
    echo "  sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends ${missing[*]}'" >&2
    exit 1
  fi
}

# clang's libFuzzer runtime comes in a package named after clang's major version.
deps_ensure_fuzzer() {
  deps_ensure cmd:clang=clang
  local major
  major=$(clang --version | sed -n 's/.*clang version \([0-9][0-9]*\).*/\1/p' | head -n 1)
  if [ -n "$major" ] && apt-cache show "libclang-rt-$major-dev" >/dev/null 2>&1; then
    deps_ensure "libclang-rt-$major-dev"
  fi
}
