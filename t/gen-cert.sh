#!/usr/bin/env bash
# poe-gateway: MIT licence. Writes a test CA and a localhost server certificate signed by it into DIR (idempotent).
#
# usage: t/gen-cert.sh DIR
# Produces DIR/ca.pem, DIR/ca.key, DIR/server.pem, DIR/server.key. The server certificate is valid for
# DNS:localhost and IP:127.0.0.1 (and IP:::1), and for DNS:api.poe.com, so that a test can send a config that names
# Poe unchanged to the mock through a tunnel (t/88litellm). Does nothing when all four files already exist.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
mkdir -p "$dir"
if [ -s "$dir/ca.pem" ] && [ -s "$dir/ca.key" ] && [ -s "$dir/server.pem" ] && [ -s "$dir/server.key" ]; then
    exit 0
fi

# Build in a private temporary directory and move the results into place at the end, so that a concurrent run or an
# interrupted one never leaves a half-written set behind.
tmp=$(mktemp -d "$dir/.gen-cert.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Runs a command silently, showing its output only when it fails.
quiet() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "gen-cert.sh: failed: $*" >&2
        return 1
    fi
}

quiet openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -subj "/CN=poe-gateway test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem"

quiet openssl req -newkey rsa:2048 -nodes -sha256 \
    -subj "/CN=localhost" \
    -keyout "$tmp/server.key" -out "$tmp/server.csr"

cat >"$tmp/server.ext" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:api.poe.com,IP:127.0.0.1,IP:::1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EXT
quiet openssl x509 -req -sha256 -days 3650 -in "$tmp/server.csr" \
    -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -extfile "$tmp/server.ext" -out "$tmp/server.pem"

chmod 600 "$tmp/ca.key" "$tmp/server.key"
for f in ca.key server.key server.pem ca.pem; do
    mv -f "$tmp/$f" "$dir/$f"
done
