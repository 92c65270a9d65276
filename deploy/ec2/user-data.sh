#!/bin/bash
# EC2 user data: install Docker and run the chatbot image, restarted always (also after a reboot).
# Works on Amazon Linux 2023 and on Ubuntu 22.04/24.04. Set IMAGE before you launch; settings
# (docs/configuration.md) go in /etc/chatbot.env. The log is in /var/log/cloud-init-output.log.
set -euo pipefail

IMAGE=registry.example.com/chatbot:0.1.0
PORT=5000

if command -v dnf >/dev/null; then
    dnf install -y docker
else
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io
fi
systemctl enable --now docker

# An ECR image needs a login with the instance role's credentials (AmazonEC2ContainerRegistryReadOnly).
registry=${IMAGE%%/*}
if [[ $registry == *.dkr.ecr.*.amazonaws.com ]]; then
    region=$(cut -d. -f4 <<<"$registry")
    aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
fi

# The settings hold the admin token, the webhook secret and the database URL: root reads them,
# nobody else (created 0600 from the start, and tightened if an older launch left it readable).
if [ ! -f /etc/chatbot.env ]; then
    (
        umask 077
        cat >/etc/chatbot.env <<'ENV'
# One line per setting, NAME=value; then: docker restart chatbot
WEB_CONCURRENCY=1
CHATBOT_WORKER_CLASS=gevent
CHATBOT_THREADS=4
CHATBOT_WORKER_CONNECTIONS=1000
# The load balancer is one proxy in front: the client is the address it adds to X-Forwarded-For.
# Without this every visitor shares the load balancer's rate-limit budget.
CHATBOT_TRUSTED_PROXIES=1
ENV
    )
fi
chown root:root /etc/chatbot.env
chmod 600 /etc/chatbot.env

docker pull "$IMAGE"
docker rm -f chatbot 2>/dev/null || true
docker run -d --name chatbot --restart always \
    --read-only --tmpfs /tmp \
    --env-file /etc/chatbot.env -e PORT="$PORT" \
    -p "$PORT:$PORT" \
    "$IMAGE"
