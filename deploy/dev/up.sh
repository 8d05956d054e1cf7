#!/usr/bin/env bash
# Brings up the development federation on this machine: builds vix, writes the dev PKI into
# var/dev/pki on first run, and starts the pseudonym service (127.0.0.1:50054), the hub
# (127.0.0.1:50050) and the region nodes north (127.0.0.1:50051) and south (127.0.0.1:50052)
# on SQLite under var/dev/, and an SMTP sink on
# 127.0.0.1:2525 that keeps every notice e-mail as a file in var/dev/mail/ (Python's aiosmtpd,
# installed into var/dev/python on first run if Python lacks it). Metrics: GET /metrics on
# 127.0.0.1:9150 (hub), :9151 (north), :9152 (south), :9154 (pseudonym service). Ctrl-C
# stops them.
#
# VIX_DEV_HUB=postgres runs the hub as two instances (127.0.0.1:50050 and :50053) on one
# PostgreSQL database instead (VIX_DEV_POSTGRES, by default the local server's database
# vix_dev, created if missing); each region knows the other instance as its fallback.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -f ../shared/fixtures/brp-test-persons.json ]; then
  echo "missing ../shared/fixtures/brp-test-persons.json (the person registry of the dev setup)" >&2
  exit 1
fi

cargo build --quiet --bin vix-node --bin vix-certs-dev
mkdir -p var/dev
if [ -f var/dev/pki/ca.pem ] && [ ! -f var/dev/pki/pseudonymizer.pem ]; then
  echo "var/dev was made before the pseudonym service: its databases hold pseudonyms of the old" >&2
  echo "federation key, which the service's cannot find. Remove var/dev and run again." >&2
  exit 1
fi
./target/debug/vix-certs-dev --out var/dev/pki

pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
}
trap stop EXIT INT TERM

# The SMTP sink for notice e-mails.
mkdir -p var/dev/mail
if ! python3 -c 'import aiosmtpd' 2>/dev/null && [ ! -d var/dev/python/aiosmtpd ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target var/dev/python aiosmtpd==1.4.6
fi
PYTHONPATH=var/dev/python python3 tests/smtp/sink.py --out var/dev/mail --port 2525 \
  > >(sed -u "s/^/[smtp] /") 2>&1 &
pids+=("$!")

./target/debug/vix-node pseudonymizer --config deploy/dev/pseudonymizer.toml \
  2> >(sed -u "s/^/[pseudonymizer] /" >&2) &
pids+=("$!")

case "${VIX_DEV_HUB:-sqlite}" in
  sqlite)
    ./target/debug/vix-node hub --config deploy/dev/hub.toml 2> >(sed -u "s/^/[hub] /" >&2) &
    pids+=("$!")
    ;;
  postgres)
    postgres="${VIX_DEV_POSTGRES:-postgres://postgres@127.0.0.1:5432/vix_dev}"
    if ! psql "$postgres" -qtAc 'SELECT 1' >/dev/null 2>&1; then
      psql "${postgres%/*}/postgres" -qc "CREATE DATABASE ${postgres##*/}"
    fi
    for instance in 50050 50053; do
      VIX_HUB__DATABASE="$postgres" VIX_HUB__LISTEN="127.0.0.1:$instance" \
        ./target/debug/vix-node hub --config deploy/dev/hub.toml \
        2> >(sed -u "s/^/[hub :$instance] /" >&2) &
      pids+=("$!")
    done
    export VIX_REGION__HUB__FALLBACK_ADDRESSES='["127.0.0.1:50053"]'
    echo "hub: two instances, 127.0.0.1:50050 and 127.0.0.1:50053, on PostgreSQL database ${postgres##*/}"
    ;;
  *)
    echo "VIX_DEV_HUB is sqlite or postgres" >&2
    exit 1
    ;;
esac

for region in north south; do
  ./target/debug/vix-node region --config "deploy/dev/region-$region.toml" \
    2> >(sed -u "s/^/[$region] /" >&2) &
  pids+=("$!")
done

cat <<'TEXT'

vix dev federation: hub on 127.0.0.1:50050, region north on 127.0.0.1:50051, region south on
127.0.0.1:50052, pseudonym service on 127.0.0.1:50054. A cross-region match by hand with
vix-node client (grpcurl works too: the servers offer reflection; see README.md):

  P=var/dev/pki; V=./target/debug/vix-node
  # JGZ Noord (region north) registers youth 999991383 ...
  $V client --addr 127.0.0.1:50051 --ca $P/ca.pem --cert $P/org-jgz-north.pem --key $P/org-jgz-north.key \
    register --request-id demo-1 --bsn 999991383 --professional-id p1 --name "A. de Jong" \
    --email a.dejong@jgz-noord.example.nl --informed-youth --informed-on 2026-11-20
  # ... Veilig Thuis Zuid (region south) registers the same youth ...
  $V client --addr 127.0.0.1:50052 --ca $P/ca.pem --cert $P/org-vt-south.pem --key $P/org-vt-south.key \
    register --request-id demo-2 --bsn 999991383 --professional-id v9 --name "C. Visser" \
    --email c.visser@veiligthuis-zuid.example.nl --informed-youth --informed-on 2026-11-20
  # ... and each sees the other, found by the hub:
  $V client --addr 127.0.0.1:50051 --ca $P/ca.pem --cert $P/org-jgz-north.pem --key $P/org-jgz-north.key \
    matches --professional-id p1

Both professionals get a notice e-mail: see var/dev/mail/*.eml. Metrics:
  curl -s 127.0.0.1:9151/metrics | grep ^vix_
Each region's pseudonym volume, from the service's hash-chained audit:
  $V pseudonymizer-audit --config deploy/dev/pseudonymizer.toml

Ctrl-C stops the federation.
TEXT
wait
