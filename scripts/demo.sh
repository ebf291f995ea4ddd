#!/usr/bin/env bash
# demo.sh: a smart-meter manufacturer's day, end to end on the embedded defaults.
#  1. the offline root ceremony: 3 of 5 custodians, the root and three issuing CAs in SoftHSM2;
#  2. certmill-dev: JetStream, signer, crlgen and OCSP responder in one process;
#  3. the key-generation server makes 10,000 device keys and CSRs, certmill submit signs them;
#  4. a simulated fleet checks a sample over OCSP (openssl for a few, the Go client for the many);
#  5. a firmware signing and a gateway certificate from the other two CAs;
#  6. devices revoked for keyCompromise: OCSP says revoked, the delta CRL lists them,
#     openssl verify -crl_check -use_deltas refuses them;
#  7. a summary. It exits 0 only when every check passed; each run starts from an empty demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
DEMO=$PWD/demo
DEVICES=${DEVICES:-10000}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf 'demo: FAILED: %s\n' "$*" >&2; exit 1; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

rm -rf "$DEMO"
mkdir -p "$DEMO/tokens"
chmod 700 "$DEMO"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$DEMO/tokens" > "$DEMO/softhsm2.conf"
export SOFTHSM2_CONF=$DEMO/softhsm2.conf
(umask 077; openssl rand -hex 16 > "$DEMO/online.pin"; openssl rand -hex 16 > "$DEMO/online.so-pin")
C=$DEMO/ceremony
S=$C/shares

step "1. root ceremony, offline: 3 of 5 custodians, root and issuing CAs in SoftHSM2"
"$BIN/certmill-ceremony" init -config configs/ceremony.yaml > "$DEMO/init.txt" 2> "$DEMO/init.log" || { cat "$DEMO/init.log"; fail "ceremony init"; }
grep -E "ceremony id|custodians given|^certificate" "$DEMO/init.txt" | sed 's/^/  /'
openssl crl -inform DER -in "$C/root.crl" -out "$DEMO/root-crl.pem"
for ca in manufacturing firmware codeverify; do
	out=$(openssl verify -x509_strict -crl_check -CAfile "$C/root.pem" -CRLfile "$DEMO/root-crl.pem" "$C/$ca.pem") || fail "openssl verify $ca: $out"
	echo "  $out"
done
if "$BIN/certmill-ceremony" crl -config configs/ceremony.yaml -share "$S/share-alice.txt" -share "$S/share-bob.txt" > /dev/null 2> "$DEMO/two.log"; then
	fail "a root CRL was signed with only 2 shares"
fi
echo "  root CRL with alice and bob: refused ($(grep -o 'too few custodian shares' "$DEMO/two.log" | head -1))"
"$BIN/certmill-ceremony" crl -config configs/ceremony.yaml -share "$S/share-alice.txt" -share "$S/share-carol.txt" -share "$S/share-erin.txt" > "$DEMO/crl.txt" 2> "$DEMO/crl.log" || { cat "$DEMO/crl.log"; fail "crl with 3 shares"; }
echo "  root CRL with alice, carol and erin: $(grep -o 'root CRL number [0-9]*' "$DEMO/crl.txt")"

step "2. certmill-dev: every service in one process on the embedded defaults"
"$BIN/certmill-dev" serve -dir "$DEMO" > "$DEMO/dev.out" 2>&1 &
DEV=$!
trap 'kill $DEV 2>/dev/null || true' EXIT
for i in $(seq 1 200); do
	curl -fsS http://127.0.0.1:8443/readyz >/dev/null 2>&1 && curl -fsS http://127.0.0.1:8081/readyz >/dev/null 2>&1 && break
	kill -0 $DEV 2>/dev/null || { cat "$DEMO/dev.out"; fail "certmill-dev did not start"; }
	sleep 0.1
done
sed 's/^/  /' "$DEMO/dev.out"
export CERTMILL_URL=http://127.0.0.1:8443 CERTMILL_TOKEN=$(cat "$DEMO/dev-token")

step "3. the key-generation server: $DEVICES device keys and CSRs, signed in batches of 1,000"
"$BIN/certmill-dev" keygen -out "$DEMO/csrs" -n "$DEVICES" | sed 's/^/  /'
"$BIN/certmill" submit -issuer manufacturing -profile device -batch 1000 -metadata product_line=E350,lot=L2026-11,plant=Zug \
	-out "$DEMO/certs" "$DEMO/csrs" 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tail -2 | sed 's/^/  /' || fail "certmill submit"
ISSUED=$(grep -o '"issued": [0-9]*' "$DEMO/certs/summary.json" | grep -o '[0-9]*$')
RATE=$(grep -o '"certificates_per_second": [0-9.]*' "$DEMO/certs/summary.json" | grep -o '[0-9.]*$' | xargs printf %.0f)
[ "$ISSUED" = "$DEVICES" ] || fail "issued $ISSUED of $DEVICES"
"$BIN/certmill" submit -quiet -issuer manufacturing -profile device -batch 1000 -metadata product_line=E350,lot=L2026-11,plant=Zug \
	-out "$DEMO/certs-again" "$DEMO/csrs" > /dev/null || fail "certmill submit, second run"
grep -q "\"replayed_batches\": $(( (DEVICES + 999) / 1000 ))" "$DEMO/certs-again/summary.json" || fail "the second run issued anew instead of replaying"
cmp -s "$DEMO/certs/MTR-00001.pem" "$DEMO/certs-again/MTR-00001.pem" || fail "the retry returned another certificate"
echo "  the same command again: every batch replayed from the ledger, byte-identical, nothing issued twice"
for i in 00001 05000 $(printf %05d "$DEVICES"); do
	out=$(openssl verify -x509_strict -purpose sslclient -CAfile "$C/root.pem" -untrusted "$DEMO/certs/chain.pem" "$DEMO/certs/MTR-$i.pem") || fail "openssl verify MTR-$i: $out"
	echo "  $out"
done

step "4. the fleet asks OCSP"
cat "$C/root.pem" "$C/manufacturing.pem" > "$DEMO/trust.pem"
ocsp() { openssl ocsp -issuer "$C/manufacturing.pem" -cert "$DEMO/certs/MTR-$1.pem" -url http://127.0.0.1:8081/manufacturing -CAfile "$DEMO/trust.pem" -no_nonce 2>&1; }
for i in 00001 00042 00777; do
	out=$(ocsp $i)
	echo "$out" | grep -q "Response verify OK" && echo "$out" | grep -q ": good" || fail "openssl ocsp MTR-$i: $out"
	echo "  openssl ocsp MTR-$i: good, response verified"
done
FLEET=$("$BIN/certmill-dev" fleet -ocsp http://127.0.0.1:8081/manufacturing -issuer "$C/manufacturing.pem" -certs "$DEMO/certs" -queries 5000 -workers 32) || fail "fleet"
echo "  Go fleet client: $FLEET"
echo "$FLEET" | grep -q "\"good\":5000,\"revoked\":0,\"unknown\":0,\"errors\":0" || fail "the fleet saw something other than 5000 good answers"
OCSP_RATE=$(echo "$FLEET" | grep -o '"queries_per_second":[0-9.]*' | cut -d: -f2 | xargs printf %.0f)

step "5. a firmware signing certificate and a gateway certificate from the other two CAs"
mkdir -p "$DEMO/fw" "$DEMO/gw"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout "$DEMO/fw/jane.key" -subj "/CN=Release Engineer Jane Doe" -out "$DEMO/fw/jane.csr" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DEMO/gw/gw-north-1.key" -subj "/CN=gw-north-1" \
	-addext "subjectAltName=DNS:gw-north-1.grid.acme-meters.example" -out "$DEMO/gw/gw-north-1.csr" 2>/dev/null
"$BIN/certmill" submit -quiet -issuer firmware -profile firmware-signer -out "$DEMO/fw-certs" "$DEMO/fw/jane.csr" | sed 's/^/  /' || fail "firmware certificate"
"$BIN/certmill" submit -quiet -issuer codeverify -profile gateway -out "$DEMO/gw-certs" "$DEMO/gw/gw-north-1.csr" | sed 's/^/  /' || fail "gateway certificate"
openssl verify -CAfile "$C/root.pem" -untrusted "$C/firmware.pem" "$DEMO/fw-certs/jane.pem" | sed 's/^/  /' || fail "verify firmware"
openssl verify -CAfile "$C/root.pem" -untrusted "$C/codeverify.pem" "$DEMO/gw-certs/gw-north-1.pem" | sed 's/^/  /' || fail "verify gateway"
openssl x509 -in "$DEMO/fw-certs/jane.pem" -noout -ext extendedKeyUsage | tail -1 | sed 's/^ */  firmware EKU: /'

step "6. ten devices revoked for keyCompromise"
curl -fsS -o "$DEMO/full.crl" http://127.0.0.1:8082/manufacturing.crl || fail "full CRL"
"$BIN/certmill-dev" revoke-drill -ocsp http://127.0.0.1:8081/manufacturing -issuer "$C/manufacturing.pem" -certs "$DEMO/certs" -n 10 > "$DEMO/drill.txt" || fail "revoke drill"
sed 's/^/  /' "$DEMO/drill.txt"
REVOKED=$(sed -n 's/^revoked //p' "$DEMO/drill.txt")
LATENCY=$(sed -n 's/^revocation to revoked over OCSP: //p' "$DEMO/drill.txt")
FIRST=${REVOKED%% *}
SERIAL=$(openssl x509 -in "$DEMO/certs/$FIRST" -noout -serial | cut -d= -f2)
start=$(date +%s%N)
for i in $(seq 1 100); do
	curl -fsS -o "$DEMO/delta.crl" http://127.0.0.1:8082/manufacturing-delta.crl
	openssl crl -inform DER -in "$DEMO/delta.crl" -noout -text | grep -q "Serial Number: $SERIAL" && break
	sleep 0.1
done
openssl crl -inform DER -in "$DEMO/full.crl" -out "$DEMO/full.pem"
openssl crl -inform DER -in "$DEMO/delta.crl" -out "$DEMO/delta.pem"
n=$(openssl crl -in "$DEMO/delta.pem" -noout -text | grep -c "Serial Number:" || true)
[ "$n" -ge 10 ] || fail "the delta CRL lists $n certificates, want 10"
echo "  delta CRL $(openssl crl -in "$DEMO/delta.pem" -noout -crlnumber) (base $(openssl crl -in "$DEMO/full.pem" -noout -crlnumber | cut -d= -f2)) lists all $n"
for f in $REVOKED; do
	if out=$(openssl verify -crl_check -use_deltas -CAfile "$C/root.pem" -untrusted "$DEMO/certs/chain.pem" -CRLfile "$DEMO/full.pem" -CRLfile "$DEMO/delta.pem" "$DEMO/certs/$f" 2>&1); then
		fail "openssl accepted revoked $f"
	fi
	echo "$out" | grep -q "certificate revoked" || fail "$f: $out"
done
echo "  openssl verify -crl_check -use_deltas refuses all 10 (certificate revoked)"
openssl verify -crl_check -use_deltas -CAfile "$C/root.pem" -untrusted "$DEMO/certs/chain.pem" -CRLfile "$DEMO/full.pem" -CRLfile "$DEMO/delta.pem" "$DEMO/certs/MTR-00001.pem" | sed 's/^/  still good: /' || fail "a good device was refused"
ocsp_out=$(openssl ocsp -issuer "$C/manufacturing.pem" -cert "$DEMO/certs/$FIRST" -url http://127.0.0.1:8081/manufacturing -CAfile "$DEMO/trust.pem" -no_nonce 2>&1)
echo "$ocsp_out" | grep -q ": revoked" || fail "openssl ocsp $FIRST: $ocsp_out"
echo "  openssl ocsp ${FIRST%.pem}: revoked ($(echo "$ocsp_out" | grep -o 'Reason: [a-zA-Z]*'))"
DEVICE=${FIRST%.pem}
LISTED=$("$BIN/certmill" list -metadata "device_id=$DEVICE" 2>/dev/null) || fail "certmill list"
echo "$LISTED" | grep -q '"status":"revoked"' || fail "certmill list device_id=$DEVICE: $LISTED"
LINE=$("$BIN/certmill" list -metadata product_line=E350 2>&1 >/dev/null) || fail "certmill list product_line"
[ "$LINE" = "certmill: $DEVICES certificates" ] || fail "certmill list product_line=E350: $LINE, want $DEVICES"
echo "  certmill list -metadata device_id=$DEVICE: $(echo "$LISTED" | wc -l) certificate, revoked; product_line=E350: $DEVICES certificates"
kill $DEV; wait $DEV 2>/dev/null || true
trap - EXIT

step "summary"
cat <<SUM
  device certificates:  $ISSUED issued at $RATE certificates/s, linted (zlint per shape) and recorded in the ledger first
  OCSP:                 5000 fleet queries at $OCSP_RATE queries/s, every answer's signature verified
  revocation:           10 devices; OCSP said revoked after $LATENCY; the delta CRL listed them
  files:                $C (root, CAs, CRLs, transcript), $S (shares), $DEMO/certs, $DEMO/fw-certs, $DEMO/gw-certs
  try next:             $BIN/certmill-dev serve -dir $DEMO     (keeps the services up; README has curl and openssl examples)
demo: all checks passed
SUM
