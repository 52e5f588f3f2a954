#!/bin/sh
# Installs the peers from Debian's packages (without starting their system
# services) and runs the benchmark of supervise against them.
#   tests/bench/run.sh            full run (about 20 minutes, 2 cores)
#   tests/bench/run.sh -smoke     every figure with tiny sizes, under a minute
# Other flags go to tests/bench/cmd/bench (-runs N, -json FILE, -md FILE,
# -figures restart,crash,startup,idle,shutdown,pid1,watchdog,log).
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
exec go run ./tests/bench/cmd/bench "$@"
