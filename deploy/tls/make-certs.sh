#!/usr/bin/env bash
# Certificates for deploy/base without cert-manager: a private CA and one certificate per
# service (encoder, index, gateway, etcd), each valid for the names the manifests use in
# NAMESPACE and for both server auth and client auth (mTLS). EC P-256, SHA-256.
#
#   deploy/tls/make-certs.sh NAMESPACE OUT_DIR    (OUT_DIR outside the repository: keys)
#
# Writes OUT_DIR/ca.crt, ca.key and <service>.crt, <service>.key. An existing ca.crt/ca.key in
# OUT_DIR is reused, so running it again renews the service certificates under the same CA
# (rotation); delete both to start a new CA. Environment:
#   GROUPS_LIST    index replica groups (default "g0 g1")
#   GATEWAY_NAMES  extra DNS names of the gateway, e.g. its public name (space separated)
#   DAYS           validity of the service certificates (default 90); CA_DAYS (default 3650)
# Then create or update the Secrets (deploy/README.md, "Certificates"). Keep ca.key offline.
set -euo pipefail

ns="${1:?usage: make-certs.sh NAMESPACE OUT_DIR}"
out="${2:?usage: make-certs.sh NAMESPACE OUT_DIR}"
groups="${GROUPS_LIST:-g0 g1}"
days="${DAYS:-90}"
ca_days="${CA_DAYS:-3650}"
umask 077
mkdir -p "$out"
cd "$out"

if [[ ! -f ca.key || ! -f ca.crt ]]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
  openssl req -x509 -new -key ca.key -sha256 -days "$ca_days" -subj "/CN=vitrine-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
fi

svc_names() {  # NAME -> the Service's short, namespaced and fully qualified names
  echo "DNS:$1,DNS:$1.$ns.svc,DNS:$1.$ns.svc.cluster.local"
}

leaf() {  # NAME SANS
  local name="$1" sans="$2"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key.tmp"
  openssl req -new -key "$name.key.tmp" -subj "/CN=vitrine-$name" -out "$name.csr"
  printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=$sans" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
    -days "$days" -extfile "$name.ext" -out "$name.crt.tmp" 2>/dev/null
  mv "$name.key.tmp" "$name.key"
  mv "$name.crt.tmp" "$name.crt"
  rm -f "$name.csr" "$name.ext"
}

index_sans=""
for g in $groups; do
  index_sans="${index_sans:+$index_sans,}DNS:*.vitrine-index-$g.$ns.svc"
  index_sans="$index_sans,DNS:*.vitrine-index-$g.$ns.svc.cluster.local"
done
gateway_sans="$(svc_names vitrine-gateway)"
for n in ${GATEWAY_NAMES:-}; do
  gateway_sans="$gateway_sans,DNS:$n"
done

leaf encoder "$(svc_names vitrine-encoder)"
leaf index "$index_sans"
leaf gateway "$gateway_sans"
leaf etcd "$(svc_names vitrine-etcd),DNS:*.vitrine-etcd-peer.$ns.svc,DNS:*.vitrine-etcd-peer.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
rm -f ca.srl
echo "wrote $out: ca.crt ca.key encoder index gateway etcd (.crt/.key), namespace $ns" >&2
