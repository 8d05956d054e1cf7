#!/usr/bin/env bash
# Writes the development PKI for the compose trial into deploy/compose/pki, adds a server
# certificate for the SMTP relay "mailpit" signed by the dev CA, and lets the containers (group
# 10001) read what they need. DEVELOPMENT ONLY: the dev CA's key lies in the same folder.
#
#   deploy/compose/setup-pki.sh [path/to/vix-certs-dev]
#
# Default vix-certs-dev: target/release/vix-certs-dev (cargo build --release --bin vix-certs-dev).
# Run it again at any time: an existing PKI keeps its certificates and gets a fresh CRL (the
# dev CRL is valid for 7 days; a CRL past its nextUpdate makes every node refuse every peer).
# Needs openssl, and root (sudo) for the chgrp at the end unless run as root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pki="$here/pki"
certs_dev="${1:-$here/../../target/release/vix-certs-dev}"

"$certs_dev" --out "$pki"

# vix-certs-dev issues server certificates for localhost and 127.0.0.1 only. vix's mailer checks
# the relay's certificate against [region.smtp] host ("mailpit" in compose), so Mailpit gets a
# certificate for that name from the dev CA, with what vix requires of a server certificate
# (rustls/webpki): the DNS name as a subjectAltName, serverAuth usage, not a CA. Re-issued when
# missing or not signed by the current ca.pem (after vix-certs-dev --force).
if ! openssl verify -x509_strict -purpose sslserver -CAfile "$pki/ca.pem" "$pki/mailpit.pem" \
    >/dev/null 2>&1; then
  ext="$(mktemp)"
  trap 'rm -f "$ext" "$pki/mailpit.csr"' EXIT
  cat >"$ext" <<'EXT'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:mailpit
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
  (umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$pki/mailpit.key" -subj "/CN=mailpit" -out "$pki/mailpit.csr" 2>/dev/null)
  openssl x509 -req -in "$pki/mailpit.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
    -days 398 -sha256 -extfile "$ext" -out "$pki/mailpit.pem" 2>/dev/null
  chmod 644 "$pki/mailpit.pem"
  echo "mailpit.pem issued for DNS:mailpit by the dev CA"
fi

# The containers run as uid and gid 10001. Keys are written 0600: the group 10001 may read
# every file but the CA key. (With rootless Podman run `podman unshare chgrp -R 10001 ...`
# instead: the container's group 10001 is another group on the host.)
chgrp_cmd=(chgrp -R 10001 "$pki")
if [ "$(id -u)" -ne 0 ]; then chgrp_cmd=(sudo "${chgrp_cmd[@]}"); fi
"${chgrp_cmd[@]}"
chmod -R g+rX "$pki"
chmod g-r "$pki/ca.key"
echo "pki ready in $pki (group 10001 may read it, except ca.key)"
