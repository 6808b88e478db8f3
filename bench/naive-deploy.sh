#!/usr/bin/env bash
# The naive deploy the article warns against: the article's script, except that current is
# replaced by removing it and linking again (so for a moment there is no current at all), and
# nothing is reloaded.
#
# usage: naive-deploy.sh ROOT BUILD
set -euo pipefail
ROOT=$1
BUILD=$2
RELEASE=$(date +%Y%m%d-%H%M%S)
RELEASE_DIR=$ROOT/releases/$RELEASE
mkdir -p "$RELEASE_DIR"
rsync -a --exclude='.git' "$BUILD/" "$RELEASE_DIR/"
ln -s "$ROOT/shared/.env" "$RELEASE_DIR/.env"
ln -s "$ROOT/shared/uploads" "$RELEASE_DIR/public/uploads"
cd "$RELEASE_DIR" && :
rm -f "$ROOT/current"
ln -s "$RELEASE_DIR" "$ROOT/current"
cd "$ROOT/releases" && ls -t | tail -n +6 | xargs -r rm -rf
