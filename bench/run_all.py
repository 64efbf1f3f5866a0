"""Run every bench/*_bench.py in its own process, show its output, fail at the end if any did."""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(HERE.glob("*_bench.py"))
    if not scripts:
        print("no benchmarks found in bench/")
        return 1
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        start = time.monotonic()
        try:
            code = subprocess.run(
                [sys.executable, str(script)], cwd=HERE.parent, timeout=1800
            ).returncode
        except subprocess.TimeoutExpired:
            code = "timed out"
        took = time.monotonic() - start
        if code != 0:
            failed.append(script.name)
            print(f"== {script.name} FAILED ({code}) after {took:.0f} s", flush=True)
        else:
            print(f"== {script.name} done in {took:.0f} s", flush=True)
    if failed:
        print(f"{len(failed)} of {len(scripts)} benchmarks failed: {', '.join(failed)}")
        return 1
    print(f"all {len(scripts)} benchmarks ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
