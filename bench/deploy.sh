#!/usr/bin/env bash
# Times ferry against the article's script (bench/article-deploy.sh) side by side, in one run, on
# the same disk: a first deploy and an incremental deploy where one file changed, for a site of
# 2,000 and one of 20,000 files. Runs alternate between the two tools, each starts after a sync
# (untimed), and the table reports medians of ROUNDS runs each, then every sample.
#
# usage: bench/deploy.sh [ROUNDS]     (default 5; needs rsync, installed if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
WORK=${BENCH_DIR:-$(mktemp -d /var/tmp/ferry-bench.XXXXXX)}
trap 'rm -rf "$WORK"' EXIT

if ! command -v rsync >/dev/null; then
  echo "installing rsync (the article's script needs it)" >&2
  apt-get install -y -qq rsync >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq rsync >/dev/null; }
fi
go build -o "$WORK/ferry" ./cmd/ferry

# make_site DIR FILES: a build like a web app's: many small files in nested directories.
make_site() {
  local dir=$1 files=$2 i
  mkdir -p "$dir/public"
  for ((i = 0; i < files; i++)); do
    local sub="$dir/public/assets/d$((i % 100))/e$((i % 7))"
    [ -d "$sub" ] || mkdir -p "$sub"
    head -c $((500 + (i * 7919) % 6000)) /dev/urandom >"$sub/f$i.js"
  done
  echo "<h1>bench</h1>" >"$dir/public/index.html"
}

now_ms() { date +%s%3N; }

# time_ms CMD...: runs CMD quietly and prints its wall time in milliseconds. Dirty pages are
# flushed first (untimed), so that no run pays for writing back what the one before it wrote.
time_ms() {
  local t0 t1
  sync
  t0=$(now_ms)
  "$@" >/dev/null 2>&1
  t1=$(now_ms)
  echo $((t1 - t0))
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

new_root() { # new_root DIR: an empty root with the shared state both tools expect
  rm -rf "$1"
  mkdir -p "$1/releases" "$1/shared/uploads"
  echo "APP_KEY=bench" >"$1/shared/.env"
}

ferry_cfg() { # ferry_cfg ROOT BUILD
  cat >"$WORK/ferry.yaml" <<YAML
root: $1
source: $2
keep_releases: 5
shared:
  files: [.env]
  dirs: [public/uploads]
YAML
}

ferry_deploy() { "$WORK/ferry" -q -c "$WORK/ferry.yaml" deploy; }
article_deploy() { bench/article-deploy.sh "$@"; }

samples=""
printf '| files | deploy | article script (ms) | ferry (ms) | ferry / article |\n'
printf '|---:|---|---:|---:|---:|\n'
for files in 2000 20000; do
  build="$WORK/build-$files"
  make_site "$build" "$files"
  declare -a af=() ff=() ai=() finc=()
  for ((r = 0; r < ROUNDS; r++)); do
    # first deploy: an empty root each time
    new_root "$WORK/article"
    af+=("$(time_ms article_deploy "$WORK/article" "$build")")
    new_root "$WORK/ferry-root"
    ferry_cfg "$WORK/ferry-root" "$build"
    ff+=("$(time_ms ferry_deploy)")
    # incremental: one file changed since the previous release; a new second for the article's ids
    sleep 1
    echo "change $r" >"$build/public/index.html"
    ai+=("$(time_ms article_deploy "$WORK/article" "$build")")
    ff_inc=$(time_ms ferry_deploy)
    finc+=("$ff_inc")
  done
  for kind in first incremental; do
    if [ $kind = first ]; then a=$(printf '%s\n' "${af[@]}" | median); f=$(printf '%s\n' "${ff[@]}" | median)
    else a=$(printf '%s\n' "${ai[@]}" | median); f=$(printf '%s\n' "${finc[@]}" | median); fi
    printf '| %s | %s | %s | %s | %s |\n' "$files" "$kind" "$a" "$f" "$(awk -v f="$f" -v a="$a" 'BEGIN {printf "%.2f×", f / a}')"
  done
  samples+="$files files, ms: article first ${af[*]}; ferry first ${ff[*]}; article incremental ${ai[*]}; ferry incremental ${finc[*]}"$'\n'

done
echo
printf '%s' "$samples"
echo "medians of $ROUNDS runs each, alternating tools; $(nproc) cores; $(df -T "$WORK" | awk 'NR==2 {print $2}') on $(df "$WORK" | awk 'NR==2 {print $1}')"
