"""How fast is the Face2Vid generator at inference, and how far from real time (25 fps) on this CPU?

    python benchmarks/face2vid_speed.py [--configs face2vid.yaml] [--sizes 128 256] [--threads 1 2]
        [--frames 50] [--device cpu|cuda] [--out outputs/benchmarks]

For the config's generator (its widths, K, heads, reference warp) with every combination of ``use_flow`` and
``use_attention``, at each size: frames/s of ``rollout.generate_video`` (autoregressive, one video,
batch 1: landmark sketches, generator, warps, as ``generate`` runs it; median and best of 5 runs after a
warm-up: on a shared machine the best shows what the cores can do),
FLOPs per frame of the generator (``torch.utils.flop_counter.FlopCounterMode``: convolutions, matmuls and
attention; sketching and the bilinear warps are not counted), the generator's parameters, and peak memory:
on CPU the growth of the process's peak resident set (``resource.getrusage`` maxrss) over generation, each
measurement in a fresh process so peaks do not hide each other; on CUDA ``torch.cuda.max_memory_allocated``.
The weights are freshly initialised (speed does not depend on them) and the landmarks are the alignment
template with a mouth that opens and closes. Without temporal flow no frame depends on another, so
``generate_video`` makes a chunk of frames (up to 64) in one batched call, at the price of memory that
grows with the chunk (and on a CPU no gain in speed).

Writes the markdown to stdout and to ``<out>/face2vid_speed.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

COMBINATIONS: dict[str, dict[str, bool]] = {
    "full (flow + attention)": {"use_flow": True, "use_attention": True},
    "no temporal flow": {"use_flow": False, "use_attention": True},
    "no attention": {"use_flow": True, "use_attention": False},
    "neither": {"use_flow": False, "use_attention": False},
}
REAL_TIME_FPS = 25.0


def driving_landmarks(size: int, frames: int) -> torch.Tensor:
    """[frames, 68, 2] crop pixels: the alignment template whose lower lip and jaw open and close (2 Hz)."""
    import numpy as np

    from talking_face.datamodules.faces.alignment import TEMPLATE_68, template_points

    base = torch.from_numpy(template_points(size, TEMPLATE_68)).float()
    opening = 0.04 * size * (0.5 - 0.5 * torch.cos(torch.arange(frames) * (2 * np.pi * 2 / 25)))
    lower = torch.tensor([*range(5, 12), *range(55, 60), *range(65, 68)])
    landmarks = base.repeat(frames, 1, 1)
    landmarks[:, lower, 1] += opening[:, None]
    return landmarks


def measure(arguments: dict, size: int, threads: int, frames: int, device: str) -> dict:
    """One measurement (run it in a fresh process): frames/s, FLOPs/frame, parameters, peak memory bytes."""
    from torch.utils.flop_counter import FlopCounterMode

    from talking_face.lightning_modules.face2vid_module import Face2VidModule
    from talking_face.lightning_modules.rollout import generate_video

    torch.set_num_threads(threads)
    module = Face2VidModule(**(arguments | {"image_size": size})).to(device).eval()
    landmarks = driving_landmarks(size, frames).to(device)
    reference = torch.full((3, size, size), 0.5, device=device)

    def generate(count: int) -> None:
        generate_video(module.frame_rollout(), landmarks[:count], reference, landmarks[0])
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    generate(5)  # warm-up (allocator, kernels, lazy imports)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        generate(frames)
        times.append(time.perf_counter() - started)
    peak = (
        torch.cuda.max_memory_allocated()
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    )
    with FlopCounterMode(display=False) as counter:  # one frame = one generator call
        generate(1)
    return {
        "fps": frames / statistics.median(times),
        "best_fps": frames / min(times),
        "flops": counter.get_total_flops(),
        "parameters": sum(p.numel() for p in module.generator.parameters()),
        "peak_bytes": peak,
    }


def _in_fresh_process(*args) -> dict:
    """``measure`` in a spawned process (a clean peak-memory mark and thread setting every time)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, args)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|:---|" + "|".join("---:" for _ in header[1:]) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["face2vid.yaml"], help="composed in order")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads (CPU)")
    parser.add_argument("--frames", type=int, default=50, help="frames per timed video")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch")
    from talking_face.configs import model_arguments

    arguments = model_arguments(*args.configs)
    threads = args.threads if args.device == "cpu" else [torch.get_num_threads()]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    rows, fps_128 = [], {}
    for size in args.sizes:
        for name, switches in COMBINATIONS.items():
            for count in threads:
                result = _in_fresh_process(arguments | switches, size, count, args.frames, args.device)
                if size == 128:
                    fps_128[(name, count)] = result["fps"]
                rows.append(
                    [
                        name,
                        str(size),
                        str(count),
                        f"{result['fps']:.1f}",
                        f"{result['best_fps']:.1f}",
                        f"{1000 / result['fps']:.1f}",
                        f"{result['flops'] / 1e9:.2f}",
                        f"{result['parameters'] / 1e6:.2f}",
                        f"{result['peak_bytes'] / 2**20:.0f}",
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "CPU"
    memory = "peak GPU memory MiB" if args.device == "cuda" else "peak RSS growth MiB"
    header = [
        "generator",
        "px",
        "threads",
        "frames/s",
        "best of 5",
        "ms/frame",
        "GFLOP/frame",
        "params M",
        memory,
    ]
    real_time = "; ".join(
        f"{name} {count} thread(s): {fps / REAL_TIME_FPS:.2f}× real time"
        for (name, count), fps in fps_128.items()
    )
    hp = arguments
    setup = (
        f"Configs `{' + '.join(args.configs)}` generator: channels {hp.get('channels')}, "
        f"{hp.get('bottleneck_blocks')} "
        f"bottleneck blocks, {hp.get('attention_heads')} attention heads, K = {hp.get('num_previous')}, "
        f"reference warp {'on' if hp.get('use_reference_warp', True) else 'off'}; fresh weights, batch 1, "
        f"{args.frames}-frame videos through `generate_video` (autoregressive), median and best of 5. "
        f"Device: {args.device} ({device}, {os.cpu_count()} cores visible), torch {torch.__version__}; "
        f"load average at start {load:.1f}."
    )
    report = "\n\n".join(
        [
            "## Stage 2 inference speed: the Face2Vid generator",
            setup,
            _table(header, rows),
            "FLOPs: convolutions, matmuls and attention of one generator call (multiply-add = 2 FLOPs); the "
            "landmark sketch and the bilinear warps are outside the count but inside the timing. Without "
            "temporal flow, frames do not depend on each other and are made in batched chunks (of up to 64 "
            "frames: more memory, and on this CPU not faster per frame).",
            f"Real time at 128 px ({REAL_TIME_FPS:.0f} fps, median): {real_time}." if fps_128 else "",
            f"Total benchmark time: {time.perf_counter() - started:.0f} s.",
        ]
    )
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "face2vid_speed.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
