#!/bin/sh
# Test-only TLS material (never deploy): a CA, a server certificate for
# localhost/127.0.0.1/::1 and a robot client certificate, valid 100 years.
set -e
cd "$(dirname "$0")"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key.tmp
openssl pkcs8 -topk8 -nocrypt -in ca.key.tmp -out ca.key && rm ca.key.tmp
openssl req -x509 -new -key ca.key -sha256 -days 36500 -subj "/CN=splitd test CA" -out ca.pem
for who in server client; do
  openssl ecparam -name prime256v1 -genkey -noout -out $who.key.tmp
  openssl pkcs8 -topk8 -nocrypt -in $who.key.tmp -out $who.key && rm $who.key.tmp
  openssl req -new -key $who.key -subj "/CN=splitd test $who" -out $who.csr
  if [ $who = server ]; then
    printf "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n" > ext
  else
    printf "extendedKeyUsage=clientAuth\n" > ext
  fi
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 36500 \
    -sha256 -extfile ext -out $who.pem
  rm $who.csr ext
done
rm -f ca.srl
# a client certificate from another CA: must be refused
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout rogue.key \
  -days 36500 -subj "/CN=rogue" -out rogue.pem
