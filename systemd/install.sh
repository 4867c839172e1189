#!/bin/sh
# Installs dohd as a systemd service, as root, from a built checkout (npm ci && npm run build).
# These are the README's "systemd" steps; test/e2e/systemd-nspawn.test.ts runs this very script
# under a real systemd, so the README, the units and the tests cannot drift apart.
#
#   systemd/install.sh              dohd.service, listening itself (CAP_NET_BIND_SERVICE only)
#   systemd/install.sh --socket     dohd.socket + dohd.service with the socket-activation drop-in:
#                                   systemd holds port 53, dohd runs with no capability and
#                                   starts on the first query
#   systemd/install.sh --proxy-dns  dohd-proxy-dns.service, in place of cloudflared proxy-dns
#                                   (reads /etc/default/cloudflared as cloudflared's unit did)
#
# The program goes to /opt/dohd (dist and the production node_modules), the `dohd` command to
# /usr/local/bin. /etc/dohd/dohd.yaml is created from dohd.example.yaml only when it does not
# exist: an edited configuration is never overwritten.
set -eu

mode=dohd
case "${1:-}" in
  '') ;;
  --socket) mode=socket ;;
  --proxy-dns) mode=proxy-dns ;;
  *) echo "usage: $0 [--socket | --proxy-dns]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "$0: run as root (it writes /opt/dohd, /etc/dohd and /etc/systemd/system)" >&2; exit 1; }
[ -f dist/cli.js ] || { echo "$0: dohd is not built: run 'npm ci && npm run build' first" >&2; exit 1; }
node=$(command -v node) || { echo "$0: node is not installed (dohd needs Node.js 20 or later)" >&2; exit 1; }

# The program: dist, and node_modules without the development packages.
mkdir -p /opt/dohd /etc/dohd
rm -rf /opt/dohd/dist /opt/dohd/node_modules
cp -r dist node_modules package.json /opt/dohd/
if [ -f package-lock.json ]; then cp package-lock.json /opt/dohd/; fi
(cd /opt/dohd && npm prune --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
chmod +x /opt/dohd/dist/cli.js
ln -sf /opt/dohd/dist/cli.js /usr/local/bin/dohd

# The units, with ExecStart pointing at this machine's node.
install_unit() {
  sed "s|^ExecStart=/usr/bin/node |ExecStart=$node |" "systemd/$1" > "/etc/systemd/system/$1"
  chmod 0644 "/etc/systemd/system/$1"
}

if [ "$mode" = proxy-dns ]; then
  install_unit dohd-proxy-dns.service
  # cloudflared's own proxy-dns unit, if there is one, gives the port up.
  for old in cloudflared.service cloudflared-proxy-dns.service; do
    if systemctl is-enabled --quiet "$old" 2>/dev/null || systemctl is-active --quiet "$old" 2>/dev/null; then
      systemctl disable --now "$old"
    fi
  done
  systemctl daemon-reload
  systemctl enable dohd-proxy-dns.service
  systemctl restart dohd-proxy-dns.service
  systemctl status --no-pager --lines=0 dohd-proxy-dns.service || true
  exit 0
fi

# The configuration: edit /etc/dohd/dohd.yaml, then `systemctl reload dohd`.
[ -e /etc/dohd/dohd.yaml ] || install -m 0644 dohd.example.yaml /etc/dohd/dohd.yaml
# Checked the way the service will read it: as a dynamic user, with its state directory
# (cache.file), so an unreadable file or a missing directory shows up now, not at start.
systemd-run --quiet --wait --pipe --collect --property=DynamicUser=yes --property=StateDirectory=dohd \
  --property=ConfigurationDirectory=dohd "$node" /opt/dohd/dist/cli.js check-config --config /etc/dohd/dohd.yaml

install_unit dohd.service
if [ "$mode" = socket ]; then
  install_unit dohd.socket
  mkdir -p /etc/systemd/system/dohd.service.d
  install -m 0644 systemd/dohd.service.d/socket-activation.conf /etc/systemd/system/dohd.service.d/
  # A dohd.service running on its own holds port 53: stop it, the socket takes the port.
  systemctl stop dohd.service
  systemctl daemon-reload
  # The socket now; the service on the first query (and at boot, through the socket).
  systemctl enable dohd.service
  systemctl enable --now dohd.socket
  systemctl status --no-pager --lines=0 dohd.socket || true
else
  # Back from socket activation, if it was installed: dohd binds port 53 itself again.
  if [ -e /etc/systemd/system/dohd.socket ]; then systemctl disable --now dohd.socket; fi
  rm -f /etc/systemd/system/dohd.socket /etc/systemd/system/dohd.service.d/socket-activation.conf
  systemctl daemon-reload
  systemctl enable dohd.service
  systemctl restart dohd.service
  systemctl status --no-pager --lines=0 dohd.service || true
fi
