#!/usr/bin/env bash
# Makes a cluster CA and one certificate per node with openssl, for TLS on dynamo-ts nodes
# (--tls-cert-file, --tls-key-file, --tls-ca-file; see docs/security.md).
#
#   scripts/make-certs.sh DIR NAME [NAME...]
#
# DIR/ca.pem and DIR/ca.key: the CA (made once; kept if present, so that adding a node later
# signs it with the same CA). DIR/NAME.pem and DIR/NAME.key for each NAME: a certificate for
# server and client use (nodes are both), valid for NAME, localhost and 127.0.0.1, plus any
# extra names in the SANS environment variable (comma-separated, e.g. SANS=DNS:kv.example.com,IP:10.0.0.5).
# Keys are EC P-256, certificates valid for DAYS days (default 825). Keep ca.key offline.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 DIR NAME [NAME...]   (e.g. $0 certs node1 node2 node3)" >&2
  exit 2
fi
dir=$1
shift
days=${DAYS:-825}
mkdir -p "$dir"
umask 077
if [ ! -f "$dir/ca.pem" ]; then
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -days "$days" -subj "/CN=dynamo-ts cluster CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  echo "made $dir/ca.pem (and ca.key: keep it safe)"
fi
for name in "$@"; do
  san="DNS:$name,DNS:localhost,IP:127.0.0.1${SANS:+,$SANS}"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$name" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -out "$dir/$name.pem" -days "$days" \
    -extfile <(printf "subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n" "$san") 2>/dev/null
  rm -f "$dir/$name.csr"
  chmod 644 "$dir/$name.pem" "$dir/ca.pem"
  echo "made $dir/$name.pem and $dir/$name.key ($san)"
done
