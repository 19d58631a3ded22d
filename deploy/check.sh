#!/usr/bin/env bash
# Validates the deployment files on a machine without a Docker engine or a
# Kubernetes cluster (make deploy-check; CI runs it):
#   1. builds cmd/qa with the exact command line both Dockerfiles run, in a
#      copy of the build context .dockerignore leaves, and checks the
#      binary: static, -trimpath, stripped, version stamped, runs;
#   2. `docker-compose config` (Debian's docker-compose) on docker-compose.yml
#      with every profile, and `docker compose config` too where the Compose
#      plugin is installed;
#   3. the Kubernetes manifests, decoded strictly into k8s.io/api's types and
#      checked against each other, and the Dockerfiles, parsed and linted by
#      BuildKit's frontend (deploy/check, its own module).
# The rest of the consistency checks (.env.example, grace periods, KEDA's
# lists against a real asynq) are Go tests in ./deploy, run by make test.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

tmp=$(mktemp -d)
made_env=""
cleanup() { rm -rf "$tmp"; [ -n "$made_env" ] && rm -f .env; return 0; }
trap cleanup EXIT

echo "== the Dockerfiles' build"
lines=$(grep -h -o 'CGO_ENABLED=0 go build .* ./cmd/qa' Dockerfile.api Dockerfile.worker | sort -u)
[ "$(printf '%s\n' "$lines" | wc -l)" -eq 1 ] || { echo "deploy-check: the Dockerfiles build differently:"; printf '%s\n' "$lines"; exit 1; }
case "$lines" in *' -o /out/qa ./cmd/qa') ;; *) echo "deploy-check: unexpected build line: $lines"; exit 1 ;; esac
export VERSION="deploy-check-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
cmd="${lines% -o /out/qa ./cmd/qa} -o \"$tmp/qa\" ./cmd/qa"
cmd="${cmd/go build/$GO build}"
# Build in a copy of the Docker build context, so a file .dockerignore leaves
# out (an embedded asset, a new package) fails here as it would in
# `docker build`. docker-py (a docker-compose dependency) applies
# .dockerignore exactly as Docker does.
src=.
if python3 -c 'import docker.utils.build' >/dev/null 2>&1; then
  src="$tmp/context"
  python3 - "$src" <<'PY'
import os, shutil, sys
from docker.utils.build import exclude_paths
patterns = [l.strip() for l in open(".dockerignore") if l.strip() and not l.lstrip().startswith("#")]
for path in sorted(exclude_paths(".", patterns)):
    if os.path.isfile(path):
        os.makedirs(os.path.join(sys.argv[1], os.path.dirname(path)), exist_ok=True)
        shutil.copy2(path, os.path.join(sys.argv[1], path))
PY
  echo "build context: $(find "$src" -type f | wc -l) files after .dockerignore"
elif [ "${CI:-}" = "true" ]; then
  echo "deploy-check: python3-docker (docker-compose's dependency) is missing"; exit 1
fi
echo "$cmd"
(cd "$src" && eval "$cmd")
info=$($GO version -m "$tmp/qa")
# (-trimpath keeps -ldflags out of the build info: the version string and
# the missing symbol table stand for it.)
for want in 'build	-trimpath=true' 'build	CGO_ENABLED=0'; do
  grep -qF -- "$want" <<<"$info" || { echo "deploy-check: the binary's build info lacks: $want"; echo "$info"; exit 1; }
done
grep -qa -- "$VERSION" "$tmp/qa" || { echo "deploy-check: version $VERSION not stamped"; exit 1; }
if $GO tool nm "$tmp/qa" >/dev/null 2>&1; then echo "deploy-check: the binary has a symbol table (-s -w missing)"; exit 1; fi
# No interpreter: the binary runs on distroless/static (or scratch).
if command -v readelf >/dev/null 2>&1 && readelf -l "$tmp/qa" | grep -q INTERP; then
  echo "deploy-check: the binary is dynamically linked"; exit 1
fi
# It runs with an empty environment, as in the image, and its healthcheck
# exits 1 when nothing answers.
env -i "$tmp/qa" healthcheck -h >/dev/null 2>&1
if env -i "$tmp/qa" healthcheck --url http://127.0.0.1:1/readyz --timeout 2s >/dev/null 2>&1; then
  echo "deploy-check: qa healthcheck succeeded against nothing"; exit 1
fi
echo "ok: static, -trimpath, version $VERSION, $(du -h "$tmp/qa" | cut -f1)"

echo "== docker-compose.yml"
if [ ! -f .env ]; then cp .env.example .env; made_env=1; fi
ran=""
if command -v docker-compose >/dev/null 2>&1; then
  docker-compose --profile monitoring --profile demo config -q
  services=$(docker-compose --profile monitoring --profile demo config --services | sort | tr '\n' ' ')
  [ "$services" = "api fakelm grafana prometheus redis worker " ] || { echo "deploy-check: services: $services"; exit 1; }
  echo "ok: docker-compose $(docker-compose version --short) config: $services"
  ran=1
fi
if docker compose version >/dev/null 2>&1; then
  docker compose --profile monitoring --profile demo config -q
  echo "ok: docker compose $(docker compose version --short) config"
  ran=1
fi
if [ -z "$ran" ]; then
  if [ "${CI:-}" = "true" ]; then echo "deploy-check: no docker-compose (apt-get install -y docker-compose)"; exit 1; fi
  echo "skip: neither docker-compose nor docker compose is installed (apt-get install -y docker-compose)"
fi

echo "== Kubernetes manifests and Dockerfiles"
(cd deploy/check && $GO test -count=1 ./...)
