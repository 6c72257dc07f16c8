"""How fast are the course's hand-written convolutions compared with PyTorch's?

Times ``cnnkit.ops.conv2d`` (im2col via ``F.unfold`` + one matrix product) against ``F.conv2d`` in the same
run on the layer shapes of a small CNN, and the loop version ``conv2d_naive`` on a small input against both.
Each timing is the best of ``--repeats`` runs after ``--warmup`` untimed ones (best-of-N is the least noisy
estimate on a shared machine). Writes ``benchmarks/results/conv.json`` and prints a table.

    python benchmarks/conv.py                    # CPU, torch's default thread count
    python benchmarks/conv.py --threads 2
    python benchmarks/conv.py --device cuda      # CPU and GPU in one run (on a GPU machine)

With ``--strict`` the exit status is 1 when the unfold conv is more than ``--target`` times slower than
``F.conv2d`` (forward, wall time) on a layer shape on the CPU; without it that is only a warning, because a
shared, busy machine can inflate one timing (the CPU-time ratio, also printed, is less sensitive to that).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnkit.ops import conv2d, conv2d_naive

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "conv.json"

# (name, B, C_in, H, W, C_out): all 3x3 kernels with padding 1, as in the course's small CNNs
LAYERS = [
    ("3->32 @ 32x32", 64, 3, 32, 32, 32),
    ("32->64 @ 16x16", 64, 32, 16, 16, 64),
    ("64->128 @ 8x8", 64, 64, 8, 8, 128),
]
# the loop version is too slow for the real layers; a small input shows its cost against both
NAIVE_LAYER = ("naive: 3->8 @ 16x16, B=4", 4, 3, 16, 16, 8)
TARGET_RATIO = 3.0


@dataclass
class Row:
    """One layer shape timed on one device; times in milliseconds, best of N.

    ``*_ms`` are wall times; ``*_cpu_ms`` the process CPU time of the same calls (all threads), which a
    busy machine inflates much less than wall time (CPU only; ``None`` on the GPU).
    """

    layer: str
    device: str
    shape: list[int]  # [B, C_in, H, W, C_out]
    torch_ms: float
    unfold_ms: float
    torch_cpu_ms: float | None = None
    unfold_cpu_ms: float | None = None
    naive_ms: float | None = None
    torch_train_ms: float | None = None   # forward + backward
    unfold_train_ms: float | None = None

    @property
    def ratio(self) -> float:
        """How many times slower the unfold conv is than ``F.conv2d`` (forward, wall time)."""
        return self.unfold_ms / self.torch_ms

    @property
    def cpu_ratio(self) -> float | None:
        if self.torch_cpu_ms is None or self.unfold_cpu_ms is None:
            return None
        return self.unfold_cpu_ms / self.torch_cpu_ms

    @property
    def train_ratio(self) -> float | None:
        if self.torch_train_ms is None or self.unfold_train_ms is None:
            return None
        return self.unfold_train_ms / self.torch_train_ms


def best_times_ms(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int,
                  warmup: int) -> dict[str, tuple[float, float | None]]:
    """Best (wall ms, CPU ms) of each ``fn()`` over ``repeats`` rounds after ``warmup`` untimed calls.

    The functions run round-robin (a, b, a, b, ...) so that a load spike on a shared machine hits all of them
    alike; on CUDA every call is synchronised and the CPU time is ``None``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    on_gpu = device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    wall = dict.fromkeys(fns, float("inf"))
    cpu = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            sync()
            wall[name] = min(wall[name], time.perf_counter() - t0)
            cpu[name] = min(cpu[name], time.process_time() - c0)
    return {k: (wall[k] * 1e3, None if on_gpu else cpu[k] * 1e3) for k in fns}


def _inputs(b: int, cin: int, h: int, w: int, cout: int, device: torch.device, grad: bool = False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, cin, h, w, generator=g).to(device).requires_grad_(grad)  # (B, C_in, H, W)
    weight = torch.randn(cout, cin, 3, 3, generator=g).to(device).requires_grad_(grad)  # (C_out, C_in, 3, 3)
    bias = torch.randn(cout, generator=g).to(device).requires_grad_(grad)  # (C_out,)
    return x, weight, bias


def _train_step(impl: Callable, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        impl(x, weight, bias, padding=1).sum().backward()
        x.grad = weight.grad = bias.grad = None
    return step


def time_layer(name: str, shape: tuple[int, ...], device: torch.device, repeats: int, warmup: int,
               naive: bool = False, train: bool = True) -> Row:
    """Time ``F.conv2d`` and ``cnnkit.ops.conv2d`` (and ``conv2d_naive`` if asked) on one layer shape."""
    x, weight, bias = _inputs(*shape, device)
    torch.testing.assert_close(conv2d(x, weight, bias, padding=1), F.conv2d(x, weight, bias, padding=1),
                               rtol=1e-3, atol=1e-3)  # never time a wrong answer
    with torch.no_grad():
        t = best_times_ms({"torch": lambda: F.conv2d(x, weight, bias, padding=1),
                           "unfold": lambda: conv2d(x, weight, bias, padding=1)}, device, repeats, warmup)
        if naive:  # the loops are slow: fewer rounds
            t |= best_times_ms({"naive": lambda: conv2d_naive(x, weight, bias, padding=1)}, device,
                               max(3, repeats // 4), min(warmup, 1))
    row = Row(layer=name, device=device.type, shape=list(shape), torch_ms=t["torch"][0], unfold_ms=t["unfold"][0],
              torch_cpu_ms=t["torch"][1], unfold_cpu_ms=t["unfold"][1],
              naive_ms=t["naive"][0] if naive else None)
    if train:
        xg, wg, bg = _inputs(*shape, device, grad=True)
        t = best_times_ms({"torch": _train_step(F.conv2d, xg, wg, bg), "unfold": _train_step(conv2d, xg, wg, bg)},
                          device, repeats, warmup)
        row.torch_train_ms, row.unfold_train_ms = t["torch"][0], t["unfold"][0]
    return row


def machine_info(device: torch.device) -> dict:
    """CPU model, cores, threads, versions and (on CUDA) the GPU name."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _fmt(value: float | None, width: int, digits: int = 2, suffix: str = "") -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width - len(suffix)}.{digits}f}{suffix}"


def format_table(rows: list[Row]) -> str:
    """A plain-text table of the timings and ratios (ratio = unfold / F.conv2d)."""
    head = (f"{'layer':<26} {'dev':<4} {'F.conv2d':>9} {'unfold':>9} {'ratio':>7} {'cpu ratio':>9} "
            f"{'naive':>9} {'train F':>9} {'train unf':>9} {'ratio':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(" ".join([f"{r.layer:<26}", f"{r.device:<4}", _fmt(r.torch_ms, 9, 3), _fmt(r.unfold_ms, 9, 3),
                               _fmt(r.ratio, 7, 2, "x"), _fmt(r.cpu_ratio, 9, 2, "x"), _fmt(r.naive_ms, 9),
                               _fmt(r.torch_train_ms, 9), _fmt(r.unfold_train_ms, 9),
                               _fmt(r.train_ratio, 7, 2, "x")]))
    lines.append("wall times in ms, best of N, round-robin; ratio = unfold / F.conv2d (1.00x = as fast as "
                 "PyTorch);\ncpu ratio = the same with process CPU time; train = forward + backward")
    return "\n".join(lines)


def over_target(rows: list[Row], target: float) -> list[Row]:
    """The CPU layer rows (not the small naive one) whose forward wall-time ratio exceeds ``target``."""
    return [r for r in rows if r.device == "cpu" and r.naive_ms is None and r.ratio > target]


def run(devices: list[torch.device], repeats: int, warmup: int) -> list[Row]:
    rows = []
    for device in devices:
        for name, *shape in LAYERS:
            rows.append(time_layer(name, tuple(shape), device, repeats, warmup))
        name, *shape = NAIVE_LAYER
        rows.append(time_layer(name, tuple(shape), device, repeats, warmup, naive=True, train=False))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cpu (default) or cuda: cuda times on the CPU *and* the GPU in one run")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per measurement (best is kept)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    parser.add_argument("--target", type=float, default=TARGET_RATIO,
                        help="fail if unfold is more than this many times slower than F.conv2d on the CPU")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a CPU ratio exceeds --target")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write conv.json")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results file (default: %(default)s)")
    args = parser.parse_args(argv)

    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")]
    if args.device == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda was asked for but torch.cuda.is_available() is False on this machine; "
                         "run without --device (CPU only) or on a machine with a CUDA GPU.")
        devices.append(torch.device("cuda"))

    info = machine_info(devices[-1])
    print(f"cpu: {info['cpu']} ({info['cores']} cores, torch {info['torch']}, "
          f"{info['torch_threads']} threads)" + (f"; gpu: {info['gpu']}" if "gpu" in info else ""))
    rows = run(devices, args.repeats, args.warmup)
    print(format_table(rows))
    bad = over_target(rows, args.target)
    cpu_rows = [r for r in rows if r.device == "cpu" and r.naive_ms is None]
    print(f"worst CPU forward ratio {max(r.ratio for r in cpu_rows):.2f}x wall, "
          f"{max(r.cpu_ratio for r in cpu_rows):.2f}x CPU time (target <= {args.target:g}x); "
          f"load average {info['load_average']}")
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": info, "repeats": args.repeats, "warmup": args.warmup, "target_ratio": args.target,
                   "rows": [asdict(r) | {"ratio": r.ratio, "cpu_ratio": r.cpu_ratio, "train_ratio": r.train_ratio}
                            for r in rows]}
        args.output.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    for r in bad:
        print(f"{'FAIL' if args.strict else 'WARNING'}: {r.layer}: the unfold conv is {r.ratio:.2f}x slower than "
              f"F.conv2d (target {args.target:g}x)", file=sys.stderr)
    return 1 if bad and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
