#!/bin/bash
echo "VMMCG-BOOTED $(cut -d' ' -f1 /proc/uptime)"
ms() { local s=$(date +%s%N); "$@" >/tmp/out 2>&1; local rc=$?; echo "VMMCG-INFO $(( ($(date +%s%N) - s) / 1000000 )) ms rc=$rc: $*"; [ $rc = 0 ] || head -c 600 /tmp/out; }
ms podman version
ms podman import /usr/local/lib/vmmcg-node/vmm-image.tar localhost/vmmcg-node-vmm
A="--network none --annotation io.vmm-cgroup-hooks.enable=true --cpus 1.5"
V="localhost/vmmcg-node-vmm /bin/test-vmm --vcpus 4 --io-threads 2"
for r in crun runc; do
ms podman --runtime $r run -d --name a$r $A $V
ms podman --runtime $r run -d --name b$r --log-driver none $A $V
ms podman --runtime $r rm -f -t 0 a$r
ms podman --runtime $r rm -f -t 0 b$r
done
sed -i 's/events_logger = "file"/events_logger = "none"/' /etc/containers/containers.conf
ms podman --runtime crun run -d --name c --log-driver none $A $V
ms podman --runtime crun rm -f -t 0 c
ms podman --runtime crun run -d --name c --log-driver none $A $V
ms podman --runtime crun stop -t 0 c
ms podman --runtime crun rm c
systemd-run --unit podman-svc podman system service -t 0 unix:///run/vmmcg-podman.sock
sleep 3
ms podman --url unix:///run/vmmcg-podman.sock version
ms podman --url unix:///run/vmmcg-podman.sock run -d --name d --log-driver none $A $V
ms podman --url unix:///run/vmmcg-podman.sock rm -f -t 0 d
ms podman --url unix:///run/vmmcg-podman.sock run -d --runtime runc --name d --log-driver none $A $V
ms podman --url unix:///run/vmmcg-podman.sock rm -f -t 0 d
ms systemctl daemon-reload
echo VMMCG-DONE
systemctl poweroff -ff
