#!/usr/bin/env bash
# setup.sh installs what certmill needs and does nothing when all is there:
# SoftHSM2, OpenSSL and opensc from Debian's packages, and nats-server at a
# pinned version from the Go module proxy into .tools/bin.
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_VERSION=$(awk '$1 == "github.com/nats-io/nats-server/v2" {print $2}' go.mod)
NATS_VERSION=${NATS_VERSION:-v2.12.3}
TOOLS=$PWD/.tools/bin

say() { printf 'setup: %s\n' "$*" >&2; }

missing=()
command -v softhsm2-util >/dev/null 2>&1 || missing+=(softhsm2)
[ -e /usr/lib/softhsm/libsofthsm2.so ] || [ -e /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so ] || missing+=(softhsm2)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v pkcs11-tool >/dev/null 2>&1 || missing+=(opensc)
if [ ${#missing[@]} -gt 0 ]; then
	pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
	say "installing Debian packages: $pkgs"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $pkgs >/dev/null; }; then
		say "apt-get failed; hint: install $pkgs yourself, then run make setup again"
		exit 1
	fi
fi

have=""
[ -x "$TOOLS/nats-server" ] && have=$("$TOOLS/nats-server" --version 2>/dev/null | awk '{print $2}')
if [ "$have" != "$NATS_VERSION" ]; then
	say "installing nats-server $NATS_VERSION into .tools/bin (from the Go module proxy)"
	mkdir -p "$TOOLS"
	GOBIN=$TOOLS GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
fi
