#!/bin/sh
# Test and lab TLS material for the offload link, written into DIR:
#   ca.pem ca.key         a CA (EC P-256) that signs both ends
#   peer.pem peer.key     the peer's server certificate: CN and SAN
#                         127.0.0.1, ::1 and localhost, plus any extra
#                         names given after DIR (DNS names or IP addresses)
#   robot.pem robot.key   the robot's client certificate (clientAuth)
# Nothing here is meant for production: keys are unencrypted, 30 days.
# Usage: tools/mkcerts.sh DIR [NAME|IP ...]
set -eu

if [ $# -lt 1 ]; then
	echo "usage: $0 DIR [NAME|IP ...]" >&2
	exit 2
fi
dir=$1
shift
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
umask 077

san="IP:127.0.0.1,IP:::1,DNS:localhost"
for n in "$@"; do
	case $n in
	*[!0-9.:a-fA-F]*) san="$san,DNS:$n" ;;
	*) san="$san,IP:$n" ;;
	esac
done

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=splitd test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem

sign() { # name cn extfile
	openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
		-days 30 -extfile "$3" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr" "$3"
}

key peer.key
cat > peer.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
EXT
sign peer 127.0.0.1 peer.ext

key robot.key
cat > robot.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EXT
sign robot "splitd robot" robot.ext

rm -f ca.srl
chmod 644 ca.pem peer.pem robot.pem
echo "$dir: ca.pem peer.pem peer.key robot.pem robot.key"
