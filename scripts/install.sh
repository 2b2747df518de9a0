#!/usr/bin/env bash
# Installs muwad exactly as the header of systemd/muwad.service describes:
#   <prefix>/bin/muwad                 the self-contained binary (static Swift runtime; SQL compiled in)
#   /etc/sysusers.d/muwad.conf         the muwad system user (systemd-sysusers creates it)
#   /etc/muwad/muwad.env               settings: root-owned, group muwad, 0640 (kept if it exists)
#   /etc/systemd/system/muwad.service  the unit (ExecStart pointing at <prefix>/bin/muwad)
#   /srv/muwa                          the default model and data root
#
#   scripts/install.sh                           build (release, --static-swift-stdlib) and install
#   DESTDIR=/tmp/stage scripts/install.sh        stage into a tree (no sysusers, no systemctl)
#   MUWA_BINARY=path/to/muwad scripts/install.sh install that binary instead of building one
#   PREFIX=/opt/muwa scripts/install.sh          another prefix (default /usr/local)
set -euo pipefail
cd "$(dirname "$0")/.."
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
bin=${MUWA_BINARY:-}
if [ -z "$bin" ]; then
    swift build -c release --static-swift-stdlib --product muwad
    bin=.build/release/muwad
fi
[ -x "$bin" ] || { echo "install: $bin is not an executable" >&2; exit 1; }

install -d "$DESTDIR$PREFIX/bin" "$DESTDIR/etc/sysusers.d" "$DESTDIR/etc/systemd/system"
install -m 0755 "$bin" "$DESTDIR$PREFIX/bin/muwad"
install -m 0644 systemd/muwad-sysusers.conf "$DESTDIR/etc/sysusers.d/muwad.conf"
if [ -z "$DESTDIR" ] && command -v systemd-sysusers >/dev/null; then
    systemd-sysusers /etc/sysusers.d/muwad.conf
fi

# The env file carries the database password: group muwad may read it, nobody else. In a staging tree
# without that group the group is left for the package's own post-install step (said below).
group=()
if getent group muwad >/dev/null; then
    group=(-g muwad)
else
    echo "install: no group muwad here: $DESTDIR/etc/muwad stays root:root until 'chgrp -R muwad /etc/muwad'" >&2
fi
install -d -m 0750 "${group[@]}" "$DESTDIR/etc/muwad"
if [ -e "$DESTDIR/etc/muwad/muwad.env" ]; then
    echo "install: keeping the existing $DESTDIR/etc/muwad/muwad.env" >&2
else
    install -m 0640 "${group[@]}" systemd/muwad.env.example "$DESTDIR/etc/muwad/muwad.env"
fi

sed "s|^ExecStart=/usr/local/bin/muwad|ExecStart=$PREFIX/bin/muwad|" systemd/muwad.service >"$DESTDIR/etc/systemd/system/muwad.service"
chmod 0644 "$DESTDIR/etc/systemd/system/muwad.service"
install -d -m 0755 "$DESTDIR/srv/muwa"

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
echo "install: muwad $("$DESTDIR$PREFIX/bin/muwad" --version) installed under ${DESTDIR:-/}"
echo "install: next: edit /etc/muwad/muwad.env, then 'sudo -u muwad muwad migrate --env-file /etc/muwad/muwad.env' and 'systemctl enable --now muwad'"
