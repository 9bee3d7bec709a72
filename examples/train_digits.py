"""Train specs/lenet5_digits.yaml on scikit-learn's 8x8 handwritten digits (1,797 images).

The network is compiled straight from the spec (`archspec.build`), trained with Adam and a
one-cycle schedule on 75% of the images, and scored on the held-out 25%. With the defaults it
reaches ≥ 97% held-out accuracy in well under a minute on two CPU cores.

    python examples/train_digits.py                    # 30 epochs
    python examples/train_digits.py --epochs 5 --save digits.pth
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT / "specs" / "lenet5_digits.yaml"


def load_data(seed: int = 0, test_size: float = 0.25):
    """(x_train, y_train, x_test, y_test) as tensors, images (N, 1, 8, 8) scaled to [0, 1]."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images.astype("float32") / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=test_size, random_state=seed, stratify=digits.target)
    as_x = lambda a: torch.from_numpy(a).unsqueeze(1)  # noqa: E731
    as_y = lambda a: torch.from_numpy(a).long()  # noqa: E731
    return as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test)


def accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.inference_mode():
        return (model(x).argmax(1) == y).float().mean().item()


def train(spec=DEFAULT_SPEC, *, epochs: int = 30, batch_size: int = 32, lr: float = 0.01,
          weight_decay: float = 1e-4, seed: int = 0, threads: int | None = 1,
          save: str | None = None, log=print) -> dict:
    """Train the spec on the digits and return {'accuracy', 'train_accuracy', 'seconds', 'model'}."""
    import torch
    import torch.nn.functional as F

    import archspec

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = load_data(seed)
    model = archspec.build(spec, seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(x_train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train))
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if log and ((epoch + 1) % max(1, epochs // 10) == 0 or epoch + 1 == epochs):
            log(f"epoch {epoch + 1:3d}/{epochs}  loss {total / len(x_train):.4f}  "
                f"held-out accuracy {accuracy(model, x_test, y_test):.4f}")
    seconds = time.perf_counter() - start
    result = {"accuracy": accuracy(model, x_test, y_test), "train_accuracy": accuracy(model, x_train, y_train),
              "seconds": seconds, "model": model}
    if save:
        from archspec.io import atomic_target

        tmp = atomic_target(save)
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, save)
    if log:
        log(f"held-out accuracy {result['accuracy']:.4f} ({len(x_test)} images), "
            f"train accuracy {result['train_accuracy']:.4f}, {seconds:.1f} s training")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(DEFAULT_SPEC), help="spec file (input [1, 8, 8], 10 outputs)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01, help="peak learning rate (one-cycle)")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1: this net is too small to gain from more "
                             "threads, and spin-waiting threads slow it badly on a busy machine)")
    parser.add_argument("--save", default=None, help="write the trained state_dict here (.pth)")
    args = parser.parse_args(argv)
    train(args.spec, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
          weight_decay=args.weight_decay, seed=args.seed, threads=args.threads, save=args.save)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
