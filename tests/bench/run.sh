#!/bin/sh
# Installs the peers from Debian's packages (without starting their system
# services) and pm2 from npm, and runs the benchmark of supervise against
# them.
#   tests/bench/run.sh            full run (about 35 minutes, 2 cores)
#   tests/bench/run.sh -smoke     every figure with tiny sizes, about 1.5 minutes
# Other flags go to tests/bench/cmd/bench (-runs N, -json FILE, -md FILE,
# -peers supervise,runit,...; -figures restart,crash,startup,idle,shutdown,pid1,pid1pair,watchdog,wdtail,
# wdidle,log,storm,scale; -profile, -compare BIN, -scale-ns 100,1000,10000).
set -eu
cd "$(dirname "$0")/../.."
need=""
for b in supervisord runsvdir s6-svscan tini dumb-init monit unshare; do
	command -v "$b" >/dev/null 2>&1 || need=yes
done
if [ -n "$need" ]; then
	# policy-rc.d 101 keeps apt from starting supervisor's or monit's
	# system service; the benchmark runs each peer in the foreground.
	created=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		created=yes
	fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		supervisor runit s6 tini dumb-init monit util-linux
	if [ -n "$created" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# pm2 from npm, pinned, into a private prefix (tests/bench/pm2.go).
pm2_version=7.0.4
export SUPERVISE_BENCH_PM2_DIR="${SUPERVISE_BENCH_PM2_DIR:-/opt/supervise-bench/pm2}"
if [ "$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$SUPERVISE_BENCH_PM2_DIR/node_modules/pm2/package.json" 2>/dev/null)" != "$pm2_version" ]; then
	command -v npm >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends nodejs npm; } || true
	mkdir -p "$SUPERVISE_BENCH_PM2_DIR"
	npm install --prefix "$SUPERVISE_BENCH_PM2_DIR" --no-audit --no-fund --omit=dev --no-save "pm2@$pm2_version" ||
		echo "warning: could not install pm2@$pm2_version; the benchmark runs without it" >&2
fi
exec go run ./tests/bench/cmd/bench "$@"
