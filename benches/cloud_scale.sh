#!/usr/bin/env bash
# The cloud inventory at scale: moto's AWS server (tests/peers/moto_cloudhsm.py, on a loopback port) holds ACCOUNTS
# accounts x REGIONS regions x CLUSTERS clusters (2 HSMs and a backup a day old each); `hsmwatch cloud --read`
# (release build) reads all of it through AssumeRole, RUNS times: each run's wall time, CPU time (user + system) and
# peak memory, then the median, and the CloudHSM calls moto answered. Loopback only; stops moto by its process id.
# Usage: benches/cloud_scale.sh [ACCOUNTS] [REGIONS] [CLUSTERS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
accounts=${1:-2}
regions=${2:-16}
clusters=${3:-20}
runs=${4:-5}
python=${HSMWATCH_MOTO_PYTHON:-python3}
[ -x target/peers/moto/bin/python3 ] && [ -z "${HSMWATCH_MOTO_PYTHON:-}" ] && python=target/peers/moto/bin/python3
"$python" -c 'import moto' 2>/dev/null || { echo "moto is not installed (tests/peers/install.sh installs it)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is not installed (apt-get install time)" >&2; exit 1; }
cargo build --release --quiet --bin hsmwatch
bin=$PWD/target/release/hsmwatch
dir=$(mktemp -d)
coproc MOTO { exec "$python" tests/peers/moto_cloudhsm.py 0; }
moto_pid=$MOTO_PID
cleanup() { kill -TERM "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
read -r ready port <&"${MOTO[0]}"
[ "$ready" = READY ] || { echo "moto did not start" >&2; exit 1; }
ask() { echo "$1" >&"${MOTO[1]}"; read -r answer <&"${MOTO[0]}"; echo "$answer"; }

all_regions=(us-east-1 us-east-2 us-west-1 us-west-2 eu-west-1 eu-west-2 eu-west-3 eu-central-1 eu-north-1 eu-south-1
  ap-south-1 ap-northeast-1 ap-northeast-2 ap-southeast-1 ap-southeast-2 ca-central-1 sa-east-1 me-south-1)
picked=("${all_regions[@]:0:$regions}")
account_ids=()
for a in $(seq 1 "$accounts"); do account_ids+=("$(printf '%012d' $((a * 111111111111 % 1000000000000)))"); done
json_list() { local IFS=,; printf '["%s"]' "$(echo "$*" | sed 's/,/","/g')"; }
ask "{\"op\": \"bulk\", \"accounts\": $(json_list "${account_ids[@]}"), \"regions\": $(json_list "${picked[@]}"), \"clusters\": $clusters}" >/dev/null

{
  echo "cloud:"
  echo "  aws:"
  echo "    regions: $(json_list "${picked[@]}")"
  echo "    endpoint_url: http://127.0.0.1:$port"
  echo "    accounts:"
  for id in "${account_ids[@]}"; do echo "      - role_arn: arn:aws:iam::$id:role/hsmwatch-readonly"; done
} >"$dir/hsmwatch.yaml"
export AWS_ACCESS_KEY_ID=AKIDHSMWATCHBENCH AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true \
  AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent

echo "reading $accounts accounts x $regions regions x $clusters clusters ($((accounts * regions * clusters)) clusters, $((accounts * regions * clusters * 2)) HSMs) $runs times"
walls=(); cpus=()
for run in $(seq 1 "$runs"); do
  /usr/bin/time -f '%e %U %S %M' -o "$dir/time" "$bin" cloud --read --json --config "$dir/hsmwatch.yaml" >"$dir/out"
  read -r wall user system rss <"$dir/time"
  read_clusters=$(python3 -c 'import json,sys; print(sum(len(json.loads(l)["clusters"]) for l in open(sys.argv[1])))' "$dir/out")
  cpu=$(python3 -c "print(round($user + $system, 2))")
  printf 'run %d: %s s wall, %s s CPU, %d MiB peak, %d clusters read\n' "$run" "$wall" "$cpu" $((rss / 1024)) "$read_clusters"
  walls+=("$wall"); cpus+=("$cpu")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo "median: $(median "${walls[@]}") s wall, $(median "${cpus[@]}") s CPU"
echo "moto answered: $(ask '{"op": "stats"}')"
