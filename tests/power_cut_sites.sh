#!/usr/bin/env bash
# Shows that each sync the publish and commit paths rely on is needed:
# with a build made by `make power-cut-sites` (-DHFS_SYNC_SITES), runs the
# power-cut checks once with nothing skipped (must pass) and once per sync
# site with HFS_SKIP_SYNC=<site> (lib/util/syncsite.h), and prints whether
# the checks caught the missing sync. Sites listed in EXPECT_MISSED are
# ones the checks cannot catch, for the reason docs/recovery.md gives;
# any other site the checks miss fails this script.
#   bash tests/power_cut_sites.sh build/sites/hmac-file-server
set -u
cd "$(dirname "$0")/.."
bin=${1:?usage: power_cut_sites.sh BINARY}
export HFS_BIN="$PWD/$bin"
sites=(publish_data publish_parent_dir publish_dir publish_existing_dir
       manifest_header manifest_session_dir
       manifest_fan_dir manifest_staging_dir manifest_chunk_data
       manifest_record manifest_remove_dir manifest_truncate probe_dir)
# See docs/recovery.md, "Which syncs the power-cut test needs".
EXPECT_MISSED=" publish_existing_dir manifest_remove_dir manifest_truncate probe_dir "
tests=test_cut_after_ack,test_power_cut_torture
run() {
  ONLY_TEST=$tests HFS_POWER_CUTS=${HFS_POWER_CUTS:-12} \
    python3 tests/integration/runner.py tests/integration/test_power_cut.py \
    >"$log" 2>&1
}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
bad=0
if HFS_SKIP_SYNC= run; then
  echo "none skipped: checks pass"
else
  echo "none skipped: checks FAIL (the baseline must pass)"; cat "$log"; bad=1
fi
for s in "${sites[@]}"; do
  if HFS_SKIP_SYNC=$s run; then
    if [[ $EXPECT_MISSED == *" $s "* ]]; then
      echo "$s skipped: not caught (expected, see docs/recovery.md)"
    else
      echo "$s skipped: NOT CAUGHT"; bad=1
    fi
  else
    # The first failed check: a failure line of the torture, or the
    # assertion of test_cut_after_ack.
    why=$(grep -m1 -E '^  cut [0-9]+: |^AssertionError: [^0-9]' "$log" \
          | sed -E 's/^ +//' | cut -c1-160)
    echo "$s skipped: caught: $why"
  fi
done
exit $bad
