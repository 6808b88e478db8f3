#!/usr/bin/env bash
# The article's six-step deploy script, faithfully: rsync into a new timestamped release, link
# shared files, run the migration step, swap with ln -sfn + mv -T, reload, and clean up with
# ls -t. Only what cannot run in a benchmark is replaced: the migration is the no-op ':', and
# the reload is $RELOAD_CMD (default ':'; bench/zdd sets it to reload its own nginx).
#
# usage: [RELOAD_CMD='nginx -s reload'] article-deploy.sh ROOT BUILD
set -euo pipefail
ROOT=$1
BUILD=$2

RELEASE=$(date +%Y%m%d-%H%M%S)
RELEASE_DIR=$ROOT/releases/$RELEASE

# 1. Create the release directory and put the code in it
mkdir -p "$RELEASE_DIR"
rsync -a --exclude='.git' "$BUILD/" "$RELEASE_DIR/"

# 2. Link shared files into the release
ln -s "$ROOT/shared/.env" "$RELEASE_DIR/.env"
ln -s "$ROOT/shared/uploads" "$RELEASE_DIR/public/uploads"

# 3. Run anything that only needs to run once (migrations, asset precompile)
cd "$RELEASE_DIR" && :

# 4. Atomic swap
ln -sfn "$RELEASE_DIR" "$ROOT/current.new"
mv -T "$ROOT/current.new" "$ROOT/current"

# 5. Tell the web server to pick up the new symlink target
${RELOAD_CMD:-:}

# 6. Clean up old releases (keep the last 5)
cd "$ROOT/releases" && ls -t | tail -n +6 | xargs -r rm -rf
