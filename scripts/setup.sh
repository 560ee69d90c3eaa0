#!/usr/bin/env bash
# Installs what ovsbpf's build, tests and demo need on a Debian 12 machine,
# and mounts bpffs. Safe to run again: it only installs what is missing.
# Run as root (CI does); without root it only checks.
set -euo pipefail

packages=(
	ovn-central ovn-host openvswitch-switch openvswitch-common # ovsdb-server, ovn-northd, ovn-trace, ovn-nbctl
	clang-19 llvm-19 libbpf-dev bpftool                        # eBPF C, bpf2go
	iproute2 iputils-ping ethtool tcpdump iperf3 bc            # network namespaces and traffic
	procps                                                     # sysctl in the VMs' namespaces (not in minimal images)
	python3-scapy                                              # crafted packets
	nftables conntrack                                         # the kernel's conntrack, the oracle of ovsbpf's
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
	if [[ $EUID -ne 0 ]]; then
		echo "setup: missing Debian packages: ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# --no-install-recommends keeps the install small; policy-rc.d stops the
	# packages' init scripts from starting system daemons we do not use.
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	rm -f /usr/sbin/policy-rc.d
fi

if [[ $EUID -eq 0 ]] && ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi

go version >/dev/null 2>&1 || { echo "setup: Go is not installed (need Go 1.26, /usr/local/go/bin on PATH)" >&2; exit 1; }
