#!/usr/bin/env bash
# Build the image and check it as an operator would, on any machine with a Docker daemon:
#   docker/check.sh [SHARED_DIR]      (default ../shared: the face-api.js cast and its group photo)
# 1. build (timed) and the image's size and layers;
# 2. non-root, no torch and no onnx inside (the models are baked in);
# 3. offline: started with --network none on a new volume, it must become ready (readiness
#    probed inside, the image's own health probe) without a warning in its log, and healthy;
# 4. the README's run command: register the five of the cast through the mobile call, then
#    POST /mark/detect on face_api_js__bbt3.jpg must name them;
# 5. data kept: the container is removed and a new one started on the same volume: the same
#    photo must name the same students without registering anyone again.
# Needs docker, curl and bash; everything is removed at the end (containers, volume, image tag).
set -euo pipefail
cd "$(dirname "$0")/.."

shared="${1:-../shared}"
people="$shared/faces/people"
group="$shared/faces/groups/face_api_js__bbt3.jpg"
cast=(sheldon leonard penny howard raj)
image="rollcall:check"
volume="rollcall-check-$$"
name="rollcall-check-$$"
port="${ROLLCALL_CHECK_PORT:-18000}"

for name_ in "${cast[@]}"; do
    [[ -f "$people/face_api_js__$name_/${name_}1.png" ]] || { echo "missing $people/face_api_js__$name_/${name_}1.png (pass the shared folder)"; exit 2; }
done
[[ -f "$group" ]] || { echo "missing $group"; exit 2; }

cleanup() {
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker volume rm "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; docker logs "$name" 2>&1 | tail -30 >&2 || true; exit 1; }

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm), $(nproc) cores, docker $(docker version --format '{{.Server.Version}}')"
started=$(date +%s)
docker build -q -t "$image" . >/dev/null
echo "build: $(( $(date +%s) - started )) s (warm or cold: run 'docker builder prune' first for a cold one)"
size=$(docker image inspect -f '{{.Size}}' "$image")
echo "image: $(( size / 1000000 )) MB ($(( size / 1048576 )) MiB)"
docker history --format '{{.Size}}\t{{.CreatedBy}}' "$image" | awk -F'\t' '$1 != "0B" { printf "  layer %8s  %s\n", $1, substr($2, 1, 90) }'

uid=$(docker run --rm --entrypoint id "$image" -u)
[[ "$uid" != "0" ]] || fail "the container runs as root"
echo "user: uid $uid ($(docker run --rm --entrypoint id "$image" -un))"
docker run --rm --entrypoint python "$image" -c "import torch" >/dev/null 2>&1 && fail "torch is in the image"
docker run --rm --entrypoint python "$image" -c "import onnx" >/dev/null 2>&1 && fail "onnx is in the image"
echo "torch, onnx: not in the image"

wait_ready() {  # seconds until the image's own probe passes inside the container
    local since
    since=$(date +%s)
    until docker exec "$name" python /opt/rollcall/healthcheck.py >/dev/null 2>&1; do
        [[ "$(docker inspect -f '{{.State.Running}}' "$name")" == "true" ]] || fail "the container exited"
        (( $(date +%s) - since < 300 )) || fail "not ready after 300 s"
        sleep 1
    done
    echo $(( $(date +%s) - since ))
}

docker volume create "$volume" >/dev/null
docker run -d --name "$name" --network none -v "$volume:/data" "$image" >/dev/null
ready=$(wait_ready)
echo "offline start (--network none, new volume): ready in $ready s"
if docker logs "$name" 2>&1 | grep -E "WARNING|ERROR|CRITICAL|Traceback"; then fail "the start logged the lines above"; fi
for _ in $(seq 1 40); do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$name")
    [[ "$health" == "healthy" ]] && break
    sleep 1
done
[[ "$health" == "healthy" ]] || fail "health is $health"
echo "health: $health ($(docker exec "$name" python /opt/rollcall/healthcheck.py))"
docker rm -f "$name" >/dev/null

detect_names() {
    curl -fsS -F "file=@$group;type=image/jpeg" "http://127.0.0.1:$port/mark/detect" \
        | docker exec -i "$name" python -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin)["names"])))'
}

# The README's run command (with a port of this check's choosing and no .env: the defaults).
docker run -d --name "$name" -p "127.0.0.1:$port:8000" -v "$volume:/data" "$image" >/dev/null
ready=$(wait_ready)
echo "with the volume: ready in $ready s"
for student in "${cast[@]}"; do
    curl -fsS -F "student_name=$student" -F "files=@$people/face_api_js__$student/${student}1.png;type=image/png" \
        "http://127.0.0.1:$port/register/register-student" >/dev/null || fail "registering $student"
done
named=$(detect_names)
echo "bbt3 named: $named"
[[ "$named" == "howard leonard penny raj sheldon" ]] || fail "expected the five of the cast"

docker rm -f "$name" >/dev/null
docker run -d --name "$name" -p "127.0.0.1:$port:8000" -v "$volume:/data" "$image" >/dev/null
ready=$(wait_ready)
echo "new container, same volume: ready in $ready s"
again=$(detect_names)
echo "bbt3 named after the restart: $again"
[[ "$again" == "$named" ]] || fail "the students were not kept in the volume"

docker image rm "$image" >/dev/null
echo "all checks passed"
