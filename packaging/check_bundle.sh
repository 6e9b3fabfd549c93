#!/usr/bin/env bash
# Check the frozen bundle: selftest exits 0, then the GUI starts under Xvfb, stays
# alive and logs "hsviewer ready" within WAIT seconds (default 20; raise it on a loaded
# machine: WAIT=60 packaging/check_bundle.sh). Prints PASS/FAIL and the bundle size.
set -u
cd "$(dirname "$0")/.."
APP=dist/hsviewer/hsviewer
WAIT=${WAIT:-20}
LOG=$(mktemp -t hsviewer-gui.XXXXXX.log)

fail() { echo "FAIL: $*"; du -sh dist/hsviewer 2>/dev/null; exit 1; }

[ -x "$APP" ] || fail "no $APP: build it with pyinstaller --noconfirm hsviewer.spec"
# Xvfb, and the X libraries Qt's xcb plugin loads that a bare Debian/Ubuntu lacks.
PACKAGES="xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0"
MISSING=$(for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$MISSING" ]; then
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y $MISSING >/dev/null || { apt-get update >/dev/null && apt-get install -y $MISSING >/dev/null; } \
        || fail "could not install $MISSING"
fi

echo "== $APP selftest"
"$APP" selftest || fail "frozen selftest exited $?"

echo "== $APP under Xvfb for $WAIT s (log: $LOG)"
# setsid: one process group to stop, xvfb-run with Xvfb and the app in it.
setsid xvfb-run -a "$APP" >"$LOG" 2>&1 &
PID=$!
stop() { kill -TERM -- "-$PID" 2>/dev/null; sleep 1; kill -KILL -- "-$PID" 2>/dev/null; }
for _ in $(seq "$WAIT"); do
    sleep 1
    kill -0 "$PID" 2>/dev/null || { tail -n 30 "$LOG"; fail "the GUI exited early"; }
done
grep -q "hsviewer ready" "$LOG" || { stop; tail -n 30 "$LOG"; fail "no 'hsviewer ready' in the log after $WAIT s"; }
stop
rm -f "$LOG"
echo "PASS: frozen selftest and GUI; bundle size $(du -sh dist/hsviewer | cut -f1)"
