#!/usr/bin/env bash
# demo.sh: what certmill does today, end to end on a SoftHSM2 token in demo/.
# 1. the offline root ceremony with 3-of-5 custodians and the three issuing CAs;
# 2. openssl verifies every issuing CA under the root, with the root CRL;
# 3. a later root operation: refused with 2 custodians, done with 3;
# 4. the signer issues 200 device certificates through certmill submit,
#    a rerun replays them, openssl verifies, one is revoked;
# 5. crlgen puts it on the delta CRL and openssl -use_deltas refuses it;
# 6. the OCSP responder says good, then revoked, to openssl ocsp.
# Each run starts from an empty demo/ folder.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
DEMO=$PWD/demo
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf 'demo: FAILED: %s\n' "$*" >&2; exit 1; }

rm -rf "$DEMO"
mkdir -p "$DEMO/tokens"
chmod 700 "$DEMO"
cat > "$DEMO/softhsm2.conf" <<CONF
directories.tokendir = $DEMO/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF=$DEMO/softhsm2.conf
# The online token's PINs: random, in files readable by the operator only.
(umask 077; openssl rand -hex 16 > "$DEMO/online.pin"; openssl rand -hex 16 > "$DEMO/online.so-pin")

step "1. root ceremony: 3 of 5 custodians, root and issuing CAs in SoftHSM2"
"$BIN/certmill-ceremony" init -config configs/ceremony.yaml > "$DEMO/init.txt" 2> "$DEMO/init.log" || { cat "$DEMO/init.log"; fail "ceremony init"; }
sed -n '1,200p' "$DEMO/init.txt" | grep -E "ceremony id|custodians|^certificate|SHA-256  |^root CRL" || true
softhsm2-util --show-slots | grep "Label:" | grep -v "Label: *$" | sed 's/^ */  token /'

step "2. openssl verifies each issuing CA under the root (and the root CRL)"
C=$DEMO/ceremony
openssl crl -inform DER -in "$C/root.crl" -out "$DEMO/root-crl.pem"
for ca in manufacturing firmware codeverify; do
	out=$(openssl verify -x509_strict -crl_check -CAfile "$C/root.pem" -CRLfile "$DEMO/root-crl.pem" "$C/$ca.pem") || fail "openssl verify $ca: $out"
	echo "  $out"
done
openssl crl -inform DER -in "$C/root.crl" -CAfile "$C/root.pem" -noout -verify 2>&1 | sed 's/^/  root CRL: /'

step "3. a later root operation needs 3 custodians"
S=$C/shares
if "$BIN/certmill-ceremony" crl -config configs/ceremony.yaml -share "$S/share-alice.txt" -share "$S/share-bob.txt" > /dev/null 2> "$DEMO/two.log"; then
	fail "a root CRL was signed with only 2 shares"
fi
echo "  with alice and bob: $(grep -o 'too few custodian shares.*' "$DEMO/two.log" | head -1)"
"$BIN/certmill-ceremony" crl -config configs/ceremony.yaml -share "$S/share-alice.txt" -share "$S/share-carol.txt" -share "$S/share-erin.txt" > "$DEMO/crl.txt" 2> "$DEMO/crl.log" || { cat "$DEMO/crl.log"; fail "crl with 3 shares"; }
echo "  with alice, carol and erin: $(grep -o 'root CRL number [0-9]*.*' "$DEMO/crl.txt")"

step "4. the signer: 200 device CSRs from the key-generation server, in batches of 50"
"$BIN/certmill-signer" -config configs/signer.yaml -check-config
"$BIN/certmill-signer" -config configs/signer.yaml 2> "$DEMO/signer.log" &
SIGNER=$!
trap 'kill $SIGNER 2>/dev/null || true' EXIT
for i in $(seq 1 100); do
	curl -fsS http://127.0.0.1:8443/readyz >/dev/null 2>&1 && break
	kill -0 $SIGNER 2>/dev/null || { cat "$DEMO/signer.log"; fail "the signer did not start"; }
	sleep 0.1
done
mkdir -p "$DEMO/csrs"
for i in $(seq -f "%04g" 1 200); do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DEMO/csrs/MTR-$i.key" \
		-subj "/CN=MTR-$i" -addext "subjectAltName=URI:urn:dev:ops:acme-MTR-$i" -out "$DEMO/csrs/MTR-$i.csr" 2>/dev/null
done
echo "  made 200 P-256 key pairs and CSRs with openssl req"
export CERTMILL_URL=http://127.0.0.1:8443 CERTMILL_TOKEN=dev-token-change-me
"$BIN/certmill" submit -issuer manufacturing -profile device -batch 50 -metadata product_line=E350,lot=L2026-11,plant=Zug \
	-out "$DEMO/certs" "$DEMO/csrs" | sed 's/^/  /' || fail "certmill submit"
"$BIN/certmill" submit -quiet -issuer manufacturing -profile device -batch 50 -metadata product_line=E350,lot=L2026-11,plant=Zug \
	-out "$DEMO/certs" "$DEMO/csrs" > "$DEMO/again.txt" || fail "certmill submit, second run"
grep -q '"replayed_batches": 4' "$DEMO/certs/summary.json" || fail "the second run issued anew instead of replaying"
echo "  the same command again: replayed all 4 batches, nothing issued twice"
cat "$DEMO/certs/chain.pem" > "$DEMO/untrusted.pem"
for i in 0001 0100 0200; do
	out=$(openssl verify -x509_strict -purpose sslclient -CAfile "$C/root.pem" -untrusted "$DEMO/untrusted.pem" "$DEMO/certs/MTR-$i.pem") || fail "openssl verify MTR-$i: $out"
	echo "  $out"
done
step "5. crlgen: full and delta CRLs from the ledger, signed in the HSM"
"$BIN/certmill-crlgen" -config configs/crlgen.yaml 2> "$DEMO/crlgen.log" &
CRLGEN=$!
trap 'kill $SIGNER $CRLGEN 2>/dev/null || true' EXIT
for i in $(seq 1 100); do
	curl -fsS -o "$DEMO/full.crl" http://127.0.0.1:8082/manufacturing.crl 2>/dev/null && break
	kill -0 $CRLGEN 2>/dev/null || { cat "$DEMO/crlgen.log"; fail "crlgen did not start"; }
	sleep 0.1
done
openssl crl -inform DER -in "$DEMO/full.crl" -noout -crlnumber -nextupdate | sed 's/^/  full CRL: /'
step "6. the OCSP responder: Pebble and bloom filters, fed by the ledger"
"$BIN/certmill-responder" -config configs/responder.yaml 2> "$DEMO/responder.log" &
RESPONDER=$!
trap 'kill $SIGNER $CRLGEN $RESPONDER 2>/dev/null || true' EXIT
for i in $(seq 1 100); do
	curl -fsS http://127.0.0.1:8081/readyz >/dev/null 2>&1 && break
	kill -0 $RESPONDER 2>/dev/null || { cat "$DEMO/responder.log"; fail "the responder did not start"; }
	sleep 0.1
done
cat "$C/root.pem" "$C/manufacturing.pem" > "$DEMO/trust.pem"
ocsp() { openssl ocsp -issuer "$C/manufacturing.pem" -cert "$DEMO/certs/MTR-$1.pem" -url http://127.0.0.1:8081/manufacturing -CAfile "$DEMO/trust.pem" -no_nonce 2>&1; }
for i in 0001 0042; do
	out=$(ocsp $i)
	echo "$out" | grep -q "Response verify OK" && echo "$out" | grep -q ": good" || fail "openssl ocsp MTR-$i: $out"
	echo "  openssl ocsp MTR-$i: good (response verified)"
done
SERIAL=$(openssl x509 -in "$DEMO/certs/MTR-0042.pem" -noout -serial | cut -d= -f2)
"$BIN/certmill" revoke -serial "$SERIAL" -reason keyCompromise > "$DEMO/revoke.json" || fail "revoke"
"$BIN/certmill" revoke -serial "$SERIAL" -reason superseded > /dev/null || fail "second revoke"
"$BIN/certmill" get -serial "$SERIAL" -format json | grep -q '"status":"revoked","revoked_at":"[^"]*","reason":"keyCompromise"' || fail "lookup after revoke"
echo "  MTR-0042 ($SERIAL) revoked for keyCompromise; revoking again changed nothing"
start=$(date +%s%N)
until ocsp 0042 | grep -q ": revoked"; do
	[ $(( ($(date +%s%N) - start) / 1000000 )) -lt 5000 ] || fail "OCSP did not say revoked within 5 s"
done
echo "  openssl ocsp MTR-0042: revoked ($(ocsp 0042 | grep -o 'Reason: [a-zA-Z]*')) $(( ($(date +%s%N) - start) / 1000000 )) ms after the revocation was acknowledged"
start=$(date +%s%N)
for i in $(seq 1 100); do
	curl -fsS -o "$DEMO/delta.crl" http://127.0.0.1:8082/manufacturing-delta.crl
	openssl crl -inform DER -in "$DEMO/delta.crl" -noout -text | grep -q "Serial Number: $SERIAL" && break
	sleep 0.1
done
openssl crl -inform DER -in "$DEMO/delta.crl" -noout -text | grep -q "Serial Number: $SERIAL" || fail "the delta CRL never listed MTR-0042"
echo "  the delta CRL lists MTR-0042 $(( ($(date +%s%N) - start) / 1000000 )) ms after the revocation was acknowledged"
openssl crl -inform DER -in "$DEMO/full.crl" -out "$DEMO/full.pem"
openssl crl -inform DER -in "$DEMO/delta.crl" -out "$DEMO/delta.pem"
for i in 0001 0042; do
	if out=$(openssl verify -crl_check -use_deltas -CAfile "$C/root.pem" -untrusted "$DEMO/untrusted.pem" -CRLfile "$DEMO/full.pem" -CRLfile "$DEMO/delta.pem" "$DEMO/certs/MTR-$i.pem" 2>&1); then
		[ $i = 0001 ] || fail "openssl accepted revoked MTR-$i"
		echo "  openssl verify -crl_check -use_deltas MTR-$i: OK"
	else
		[ $i = 0042 ] && echo "$out" | grep -q "certificate revoked" || fail "MTR-$i: $out"
		echo "  openssl verify -crl_check -use_deltas MTR-$i: refused, certificate revoked"
	fi
done
kill $SIGNER $CRLGEN $RESPONDER; wait $SIGNER $CRLGEN $RESPONDER 2>/dev/null || true
trap - EXIT

step "summary"
cat <<SUM
  root and issuing CAs:  $C/{root,manufacturing,firmware,codeverify}.pem
  root CRL:              $C/root.crl
  custodian shares:      $S/ (hand out, then delete)
  transcript:            $C/transcript.txt and transcript.json
  SoftHSM2 tokens:       $DEMO/tokens (SOFTHSM2_CONF=$DEMO/softhsm2.conf)
  device certificates:   $DEMO/certs (one per CSR, chain.pem, summary.json)
  ledger:                $DEMO/ledger (embedded nats-server, JetStream, fsync on every write)
  CRLs:                  http://127.0.0.1:8082/manufacturing.crl and -delta.crl (while crlgen runs); $DEMO/crlgen
  OCSP:                  http://127.0.0.1:8081/manufacturing (while the responder runs); $DEMO/responder
  not built yet:         certmill-dev (issue 9); this script runs the binaries one by one
  try next:              openssl x509 -in $C/manufacturing.pem -noout -text
demo: all checks passed
SUM
