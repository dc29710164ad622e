#!/bin/sh
# Runs INSIDE the lab image (chroot <rootfs> /bin/sh /epoch-lab-setup/setup-base.sh), once per image build.
# Turns a debootstrap root into the shared lower layer of every lab host: systemd boots it cleanly in a
# container, sshd does key auth only, and the lab "public" CA is trusted. Per-host state (machine-id, SSH host keys,
# hostname, authorized_keys, /etc/hosts) is written by the controller into each host's overlay, not here.
set -eu
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin

# Units that cannot work in a container without consoles, networkd or block devices (lab-notes: with these masked
# every host reaches `running` with no failed unit).
for unit in systemd-networkd-wait-online.service console-getty.service container-getty@.service getty@.service \
  serial-getty@.service getty-static.service getty.target apt-daily.service apt-daily.timer \
  apt-daily-upgrade.service apt-daily-upgrade.timer e2scrub_all.service e2scrub_all.timer e2scrub_reap.service \
  e2scrub@.service systemd-firstboot.service fstrim.timer fstrim.service dpkg-db-backup.timer systemd-pstore.service \
  systemd-remount-fs.service; do
  ln -sf /dev/null "/etc/systemd/system/$unit"
done
rm -f /etc/systemd/system/getty.target.wants/getty@tty1.service \
  /etc/systemd/system/multi-user.target.wants/e2scrub_reap.service \
  /etc/systemd/system/sysinit.target.wants/systemd-pstore.service \
  /etc/systemd/system/timers.target.wants/*.timer

# A journal in memory only, and small: 200 hosts share this machine's RAM.
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n' > /etc/systemd/journald.conf.d/epoch-lab.conf

# Key auth only, one ed25519 host key that the controller writes per host (ssh.service fails without it).
rm -f /etc/ssh/ssh_host_*
cat /epoch-lab-setup/sshd-lab.conf > /etc/ssh/sshd_config.d/epoch-lab.conf
mkdir -p /root/.ssh
chmod 700 /root/.ssh

# Each host gets its own machine-id from the controller; an empty file here means "not yet set".
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
ln -s /etc/machine-id /var/lib/dbus/machine-id

# ca-certificates-java's update-ca-certificates hook runs java (through a dpkg trigger) to sync the JDK's cacerts, and
# the JVM cannot start without /proc: mounted for this step only, and unmounted however the script ends.
mount -t proc proc /proc
trap 'umount /proc' EXIT
dpkg --configure -a

# Host firewalls for the coexistence tests, installed but not running (a test starts them on its host). Installed with
# apt-get here, not by debootstrap --include: debootstrap's one-pass configure of its package set fails on polkitd,
# which firewalld needs. policy-rc.d keeps maintainer scripts from starting anything inside this chroot.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
apt-get -q -o Acquire::Retries=3 update > /dev/null
apt-get -q -y -o Acquire::Retries=3 install --no-install-recommends firewalld ufw > /dev/null
rm -f /usr/sbin/policy-rc.d
systemctl disable firewalld.service ufw.service > /dev/null 2>&1
rm -f /etc/systemd/system/dbus-org.fedoraproject.FirewallD1.service

# The lab "public" CA, trusted the Debian way (the rhel layer re-does this the RHEL way).
install -m 0644 /epoch-lab-setup/lab-public-ca.crt /usr/local/share/ca-certificates/epoch-lab-public.crt
update-ca-certificates > /dev/null
# A failed hook leaves ca-certificates-java half-configured, and then no later update reaches Java: refuse that image.
if dpkg --audit | grep -q .; then dpkg --audit >&2; exit 1; fi
keytool -list -cacerts -storepass changeit -alias debian:epoch-lab-public.pem > /dev/null

# No resolver in the lab: names come from /etc/hosts (written per host). Emptied only after apt-get above used it.
: > /etc/resolv.conf

apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /var/log/apt/* /tmp/* /var/tmp/*
