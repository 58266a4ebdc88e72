#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The Python client (python/cprd_client) against a real cprd under its
# seccomp filter: every operation, every exception class from a real daemon
# error, timeouts, the claim context manager, fd leaks, and the Python
# writer of cpr-state(5) streams judged by cprdump and the daemon
# (tests/python/test_*.py, run by python3 -m unittest).
. "${top_srcdir:-.}/tests/cprd-lib.sh"
PYTHON=${PYTHON:-python3}
if [ "$PYTHON" = : ] || ! command -v "$PYTHON" >/dev/null 2>&1; then
	echo "SKIP: $PYTHON is not installed"
	exit 77
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
	echo "SKIP: the Python client needs Python 3.11 or later, $PYTHON is $("$PYTHON" -V 2>&1)"
	exit 77
fi
"$CPRD" --socket "$T/sock" --policy "$POLICY" --config "$T/cprd.conf" --mode 0666 \
	2> "$T/cprd.log" &
PIDS=$!
wait_socket "$T/sock"

CPRDUMP=$top_builddir/tools/cprdump
CPR_TEST_TMP=$T
PYTHONPATH=$top_srcdir/python:$top_srcdir/tests/python
PYTHONDONTWRITEBYTECODE=1
export CPRD CPRDUMP CPRGEN POLICY SANITIZED CPR_TEST_TMP PYTHONPATH PYTHONDONTWRITEBYTECODE
rc=0
"$PYTHON" -W always::ResourceWarning -m unittest -v test_stream test_ops test_errors \
	test_claim > "$T/py.log" 2>&1 || rc=$?
cat "$T/py.log"
# each skipped case once more, with its reason, as the other tests print them
awk '/^test_[A-Za-z0-9_]+ \(/ { id = $2; gsub(/[()]/, "", id) }
     / skipped / { sub(/.* skipped /, ""); print "SKIP: " id ": " $0 }' "$T/py.log"
[ "$rc" = 0 ] || fail "python3 -m unittest: exit $rc"
# a warning printed (not caught by a test) means a socket or file was left to the GC
if grep -q "ResourceWarning" "$T/py.log"; then fail "unclosed resources"; fi

# everything the tests stored is gone, and the daemon holds no fd for it
"$CPRCTL" --json list > "$T/list" || fail "cprctl list"
if grep -q '"name"' "$T/list"; then fail "bundles left behind: $(cat "$T/list")"; fi
kill -TERM "$PIDS"
wait "$PIDS" || fail "cprd did not exit cleanly"
PIDS=
echo ok
