# Sourced by deploy scripts. Needs the caller's `log` and `die`.
#
# install_packages CMD PACKAGE...: when CMD is missing, install the Debian packages that provide it,
# so a fresh machine needs nothing installed by hand.
install_packages() {
    local cmd=$1; shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "$cmd not found; install $* (no sudo to do it for you)"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || die "$cmd not found and no apt-get; install $*"
    log "$cmd not found; running: ${sudo[*]:+${sudo[*]} }apt-get install -y $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}
