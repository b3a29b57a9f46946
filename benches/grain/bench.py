#!/usr/bin/env python3
"""Instructions per unit, ast vs grain, by callgrind. Usage: python3 bench.py [--resolver=kernel|none] [--only a,b]"""
import os, re, subprocess, sys, tempfile

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "target/release/grain-study")

def fib_calls(n):
    a, b = 1, 1
    for _ in range(n - 1):
        a, b = b, a + b + 1
    return b if n >= 1 else a

# Rhai sources of loop/fib/len/lock pair/guard pair copied from benches/instructions.py
PROGRAMS = {
    "loop": ("fn work(n) { let s = 0; for i in 0..n { s += i % 7; } s }\nwork({n});\n", 20_000, 60_000, lambda n: n),
    "fib": ("fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }\nfib({n});\n", 15, 19, fib_calls),
    "len": ("fn work(a, n) { let s = 0; for i in 0..n { s += a.len(); } s }\nwork([1, 2, 3], {n});\n", 20_000, 60_000, lambda n: n),
    "lock pair": ("fn pairs(l, n) { for i in 0..n { l.acquire(); l.release(); } }\npairs(lock(), {n});\n", 10_000, 30_000, lambda n: n),
    "guard pair": ("fn guards(l, n) { for i in 0..n { let g = l.guard(); } }\nguards(lock(), {n});\n", 10_000, 30_000, lambda n: n),
    "map closure": ("fn work(a) { a.map(|x| x + 1) }\nlet a = []; a.pad({n}, 1);\nwork(a);\n", 10_000, 30_000, lambda n: n),
    "hold(|| 1)": ("fn holds(l, n) { for i in 0..n { l.hold(|| 1); } }\nholds(lock(), {n});\n", 10_000, 30_000, lambda n: n),
    # A cell's top-level loop reading `y`, a variable an earlier cell left in the scope.
    "earlier-cell var": ("let s = 0; for i in 0..{n} { s += y; } s\n", 20_000, 60_000, lambda n: n, ["--scope-var=y=5"]),
}

def count(path, mode, extra):
    r = subprocess.run(["nice", "-n", "10", "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                        BIN, path, mode] + extra, capture_output=True, text=True)
    if r.returncode != 0 or "error:" in r.stdout:
        raise RuntimeError(f"{path} {mode}: {r.stdout} {r.stderr[-1500:]}")
    m = re.search(r"I\s+refs:\s+([\d,]+)", r.stderr)
    return int(m.group(1).replace(",", ""))

def main():
    extra = [a for a in sys.argv[1:] if a.startswith("--resolver")]
    only = None
    for a in sys.argv[1:]:
        if a.startswith("--only="):
            only = a.split("=", 1)[1].split(",")
    print(f"resolver: {extra or ['--resolver=kernel (default)']}")
    print("| program | ast instr/unit | grain instr/unit | change |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        for name, (src, small, large, units, *more) in PROGRAMS.items():
            pextra = extra + (more[0] if more else [])
            if only and name not in only:
                continue
            res = {}
            for mode in ("ast", "grain"):
                tot = []
                for n in (small, large):
                    p = os.path.join(d, f"p{n}.rhai")
                    open(p, "w").write(src.replace("{n}", str(n)))
                    tot.append(count(p, mode, pextra))
                res[mode] = (tot[1] - tot[0]) / (units(large) - units(small))
            ch = (res["grain"] / res["ast"] - 1) * 100
            print(f"| {name} | {res['ast']:,.0f} | {res['grain']:,.0f} | {ch:+.1f} % |", flush=True)

main()
