"""Forward latency of archspec's compiled module against the torchvision model it mirrors.

Both models hold identical weights (torchvision's state_dict loaded through `load_weights`),
run in the same process under torch.inference_mode in eval mode, and are timed interleaved
(ours, theirs, ours, theirs, ... with the order alternating every round) so that drift in
machine load hits both alike. Reports medians and the ratio ours / torchvision (target ≤ 1.03).

    python benchmarks/torch_overhead.py                       # ResNet-50 and VGG-16, batch 1 and 8
    python benchmarks/torch_overhead.py --models resnet50 --batches 1 --repeats 20
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = {  # spec file -> torchvision constructor name
    "resnet50": ("specs/resnet50.yaml", "resnet50"),
    "vgg16": ("specs/vgg16.yaml", "vgg16"),
    "resnet18": ("specs/resnet18.yaml", "resnet18"),
    "densenet121": ("specs/densenet121.yaml", "densenet121"),
    "mobilenet_v2": ("specs/mobilenet_v2.yaml", "mobilenet_v2"),
}


def pair(name: str, size: int):
    import torch
    import torchvision

    import archspec
    from archspec.compile.weights import load_weights

    spec, tv_name = MODELS[name]
    theirs = getattr(torchvision.models, tv_name)(weights=None).eval()
    ours = archspec.build(archspec.load(ROOT / spec, input_override=(3, size, size)), seed=0).eval()
    load_weights(ours, theirs.state_dict())
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        diff = (ours(x) - theirs(x)).abs().max().item()
    return ours, theirs, diff


def time_pair(ours, theirs, batch: int, size: int, repeats: int, warmup: int):
    import torch

    x = torch.randn(batch, 3, size, size)
    times = {"ours": [], "torchvision": []}
    models = {"ours": ours, "torchvision": theirs}
    with torch.inference_mode():
        for _ in range(warmup):
            ours(x), theirs(x)
        for r in range(repeats):
            order = ("ours", "torchvision") if r % 2 == 0 else ("torchvision", "ours")
            for key in order:
                start = time.perf_counter()
                models[key](x)
                times[key].append(time.perf_counter() - start)
    return statistics.median(times["ours"]), statistics.median(times["torchvision"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "vgg16"], choices=sorted(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per model and setting")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.size}x{args.size}, "
          f"{args.repeats} interleaved runs each (median), inference_mode, eval", flush=True)
    rows = []
    for name in args.models:
        ours, theirs, diff = pair(name, args.size)
        for batch in args.batches:
            mine, ref = time_pair(ours, theirs, batch, args.size, args.repeats, args.warmup)
            rows.append((name, batch, mine * 1e3, ref * 1e3, mine / ref, diff))
            print(f"  {name} batch {batch}: ours {mine * 1e3:.1f} ms, torchvision {ref * 1e3:.1f} ms",
                  flush=True)
        del ours, theirs
    header = f"{'model':<12} {'batch':>5} {'archspec ms':>12} {'torchvision ms':>15} {'ratio':>7} {'max|diff|':>10}"
    print()
    print(header)
    print("-" * len(header))
    for name, batch, mine, ref, ratio, diff in rows:
        print(f"{name:<12} {batch:>5} {mine:>12.1f} {ref:>15.1f} {ratio:>7.3f} {diff:>10.1e}")
    worst = max(r[4] for r in rows)
    print(f"\nworst ratio {worst:.3f} (target ≤ 1.03)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
