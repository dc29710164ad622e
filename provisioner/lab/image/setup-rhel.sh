#!/bin/sh
# Runs INSIDE the rhel layer build (chroot <overlay of the debian image> /bin/sh /epoch-lab-setup/setup-rhel.sh).
# Presents a RHEL-family host on the Debian userland: Rocky Linux 9 os-release, the /etc/pki/ca-trust layout with an
# update-ca-trust built on p11-kit's `trust extract`, and no Debian update-ca-certificates.
set -eu
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin

rm -f /etc/os-release /usr/lib/os-release
install -m 0644 /epoch-lab-setup/rocky-os-release /usr/lib/os-release
ln -s ../usr/lib/os-release /etc/os-release
printf 'Rocky Linux release 9.4 (Blue Onyx)\n' > /etc/redhat-release
ln -sf redhat-release /etc/rocky-release
ln -sf redhat-release /etc/system-release
rm -f /etc/debian_version /etc/lsb-release

# No Debian trust tooling: divert update-ca-certificates out of PATH (dpkg keeps it there on upgrades too).
mkdir -p /usr/lib/epoch-lab
dpkg-divert --quiet --local --rename --divert /usr/lib/epoch-lab/update-ca-certificates.diverted \
  --add /usr/sbin/update-ca-certificates
rm -rf /usr/local/share/ca-certificates /etc/ca-certificates.conf /etc/ca-certificates

# The RHEL trust layout. Distribution roots (Mozilla's, shipped by Debian's ca-certificates) go where RHEL keeps
# them; the admin's anchors go in /etc/pki/ca-trust/source/anchors.
mkdir -p /etc/pki/ca-trust/source/anchors /etc/pki/ca-trust/source/blocklist \
  /etc/pki/ca-trust/extracted/pem /etc/pki/ca-trust/extracted/openssl /etc/pki/ca-trust/extracted/java /usr/share/pki/ca-trust-source/anchors /usr/share/pki/ca-trust-source/blocklist \
  /etc/pki/tls/certs /etc/pki/tls/private /etc/pkcs11/modules
cat /usr/share/ca-certificates/mozilla/*.crt > /usr/share/pki/ca-trust-source/anchors/mozilla-roots.crt
install -m 0644 /epoch-lab-setup/lab-public-ca.crt /etc/pki/ca-trust/source/anchors/epoch-lab-public.pem

# p11-kit's trust module reads the RHEL source folders instead of Debian's bundle.
install -m 0644 /epoch-lab-setup/p11-kit-trust.module /etc/pkcs11/modules/p11-kit-trust.module
install -m 0755 /epoch-lab-setup/update-ca-trust /usr/bin/update-ca-trust

# Bundles as RHEL links them. /etc/ssl/certs becomes RHEL's link to /etc/pki/tls/certs; ca-certificates.crt inside
# it is the compatibility link Debian-built curl/OpenSSL need (a real RHEL host does not have it).
ln -sf ../../ca-trust/extracted/pem/tls-ca-bundle.pem /etc/pki/tls/certs/ca-bundle.crt
ln -sf ../../ca-trust/extracted/openssl/ca-bundle.trust.crt /etc/pki/tls/certs/ca-bundle.trust.crt
ln -sf certs/ca-bundle.crt /etc/pki/tls/cert.pem
ln -sf ca-bundle.crt /etc/pki/tls/certs/ca-certificates.crt
rm -rf /etc/ssl/certs
ln -s ../pki/tls/certs /etc/ssl/certs
# Java's cacerts as RHEL links it: the JDK's file -> /etc/pki/java/cacerts -> the keystore update-ca-trust extracts
# (Debian's points at /etc/ssl/certs/java/cacerts, kept by the ca-certificates-java hook, which RHEL does not have).
mkdir -p /etc/pki/java
ln -sf ../ca-trust/extracted/java/cacerts /etc/pki/java/cacerts
for jdk in /usr/lib/jvm/*/lib/security; do
  [ -e "$jdk/cacerts" ] || [ -L "$jdk/cacerts" ] || continue
  ln -sf /etc/pki/java/cacerts "$jdk/cacerts"
done
/usr/bin/update-ca-trust extract
