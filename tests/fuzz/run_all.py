"""Fuzz every harness in tests/fuzz under atheris, one after the other, and report.

    python tests/fuzz/run_all.py --seconds 600            # each harness for 10 minutes
    python tests/fuzz/run_all.py --seconds 60 jobconf kvfile

Prints per harness: inputs executed, CPU seconds, peak RSS, findings (crash/timeout/oom files,
kept under a temporary dir, printed with their paths). Exits 1 on any finding.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _runner  # noqa: E402


def harnesses(names):
    paths = sorted(glob.glob(os.path.join(HERE, "fuzz_*.py")))
    if names:
        paths = [p for p in paths if os.path.basename(p)[5:-3] in names]
    return paths


def run_one(path, seconds, out_dir, extra):
    """(inputs, cpu seconds, peak RSS MiB, finding files, exit status) of one atheris run."""
    name = os.path.basename(path)[5:-3]
    crashes = os.path.join(out_dir, name)
    os.makedirs(crashes)
    log_path = os.path.join(out_dir, name + ".log")
    cmd = [sys.executable, path, "-max_total_time=%d" % seconds, "-artifact_prefix=%s/" % crashes,
           "-timeout=%d" % _runner.TIME_LIMIT_S, "-rss_limit_mb=%d" % _runner.RSS_LIMIT_MB,
           "-print_final_stats=1"] + extra
    with open(log_path, "wb") as log:
        p = subprocess.Popen(cmd, cwd=crashes, stdout=log, stderr=subprocess.STDOUT)
        # wait4 gives the child's own CPU time and peak RSS (ru_maxrss, KiB on Linux)
        _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    with open(log_path, "rb") as f:
        text = f.read().decode(errors="replace")
    m = re.search(r"stat::number_of_executed_units: (\d+)", text) or re.search(r"Done (\d+) runs", text)
    inputs = int(m.group(1)) if m else 0
    found, slow = _runner.artifacts(crashes)
    return inputs, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, found, slow, p.returncode, log_path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60, help="fuzzing time per harness (default 60)")
    ap.add_argument("names", nargs="*", help="harness names (fuzz_<name>.py); all by default")
    ap.add_argument("--libfuzzer", action="append", default=[], metavar="FLAG",
                    help="an extra libFuzzer flag, e.g. --libfuzzer=-max_len=65536 (repeatable)")
    args = ap.parse_args(argv)
    paths = harnesses(args.names)
    if not paths:
        ap.error("no harness matches %s" % args.names)
    out_dir = tempfile.mkdtemp(prefix="singa-fuzz-run-")
    print("findings and logs under %s" % out_dir)
    print("%-18s %10s %8s %9s %8s" % ("harness", "inputs", "cpu_s", "rss_mib", "findings"))
    bad = 0
    for path in paths:
        inputs, cpu, rss, found, slow, rc, log = run_one(path, args.seconds, out_dir, args.libfuzzer)
        name = os.path.basename(path)[5:-3]
        print("%-18s %10d %8.1f %9.0f %8d" % (name, inputs, cpu, rss, len(found) + (rc != 0 and not found)),
              flush=True)
        for f in slow:
            print("  note: slow unit (not a finding unless it is slow again when rerun): %s" % f)
        if found or rc != 0:
            bad += 1
            print("  exit status %d; log %s" % (rc, log))
            for f in found:
                with open(f, "rb") as fh:
                    print("  %s\n    hex: %s" % (f, _runner.hexdump(fh.read(), 512)))
            print("  reproduce: %s %s <file>   (or see the traceback in the log)" % (sys.executable, path))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
