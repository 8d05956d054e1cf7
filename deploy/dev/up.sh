#!/usr/bin/env bash
# Brings up the development federation on this machine: builds vix, writes the dev PKI into
# var/dev/pki on first run, and starts the region nodes north (127.0.0.1:50051) and south
# (127.0.0.1:50052) on SQLite under var/dev/. Ctrl-C stops them.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -f ../shared/fixtures/brp-test-persons.json ]; then
  echo "missing ../shared/fixtures/brp-test-persons.json (the person registry of the dev setup)" >&2
  exit 1
fi

cargo build --quiet --bin vix-node --bin vix-certs-dev
mkdir -p var/dev
./target/debug/vix-certs-dev --out var/dev/pki

pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
}
trap stop EXIT INT TERM

for region in north south; do
  ./target/debug/vix-node region --config "deploy/dev/region-$region.toml" \
    2> >(sed -u "s/^/[$region] /" >&2) &
  pids+=("$!")
done

cat <<'TEXT'

vix dev federation: region north on 127.0.0.1:50051, region south on 127.0.0.1:50052.
Register a signal at north as JGZ Noord (needs grpcurl; the servers offer reflection):

  grpcurl -cacert var/dev/pki/ca.pem -cert var/dev/pki/org-jgz-north.pem -key var/dev/pki/org-jgz-north.key \
    -d '{"request_id":"demo-1","bsn":"999991383","professional":{"professional_id":"p1","name":"A. de Jong","email":"a.dejong@jgz-noord.example.nl"}}' \
    127.0.0.1:50051 vix.region.v1.RegionService/RegisterSignal

The same youth by a second organisation of north, then the matches of both:

  grpcurl -cacert var/dev/pki/ca.pem -cert var/dev/pki/org-school-north.pem -key var/dev/pki/org-school-north.key \
    -d '{"request_id":"demo-2","bsn":"999991383","professional":{"professional_id":"m7","name":"B. Bakker","email":"b.bakker@noorderpoort.example.nl"}}' \
    127.0.0.1:50051 vix.region.v1.RegionService/RegisterSignal
  grpcurl -cacert var/dev/pki/ca.pem -cert var/dev/pki/org-jgz-north.pem -key var/dev/pki/org-jgz-north.key \
    127.0.0.1:50051 vix.region.v1.RegionService/ListMatches

Ctrl-C stops the nodes.
TEXT
wait
