"""Training throughput of a recipe's step, in samples per second.

Builds the recipe's networks exactly as ``moodlib-train run`` does (``build_network``: on CUDA
channels-last; the step under bf16 autocast), its loss, augmentation (mixup, SpecAugment) and
optimiser, and times its training step (co-teaching for ``selab2021_coteaching``, the default)
on crops of a ``moodlib-train synth`` dataset:

- ``loader``: batches from the recipe's ``CropDataset`` through a ``DataLoader`` with
  ``--workers`` processes, as a run reads them (mel ``.npy`` files from disk, random crops);
- ``step``: the same batches staged on the device first, the networks' own speed.

A sample is one crop seen by the step (for co-teaching, by both networks). The first
``--warmup`` steps are not timed (cuDNN autotuning, allocator growth)::

    python benchmarks/train_throughput.py --device cuda --steps 200
    python benchmarks/train_throughput.py --device cpu --steps 5 --batch-size 8
    python benchmarks/train_throughput.py --no-channels-last --no-autocast   # the plain path

Results are in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from moodlib.inference import resolve_device
from trainer.builders import build_augmentation, build_loss, build_network
from trainer.data import synth
from trainer.data.augment import single_label
from trainer.data.jamendo import mel_path, read_split, split_file, tag_matrix
from trainer.data.tracks import CropDataset
from trainer.processes import Processes, autocast_for
from trainer.recipe import load_recipe
from trainer.schedule import make_optimizer
from trainer.strategies import build_strategy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="selab2021_coteaching")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--crop", type=int, default=None, help="crop frames (recipe's: 960)")
    parser.add_argument("--batch-size", type=int, default=None, help="(recipe's: 32)")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tracks", type=int, default=400, help="synthetic tracks to crop from")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--no-autocast", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    recipe = load_recipe(args.recipe)
    crop = args.crop or recipe.data.crop_frames
    batch_size = args.batch_size or recipe.data.batch_size
    device = resolve_device(args.device)
    torch.manual_seed(0)
    strategy = build_strategy(recipe.strategy)
    # The forget rate co-teaching reaches after its ramp (SELAB-HCMUS: 0.05).
    strategy.begin_epoch(recipe.train.epochs - 1)
    specs = strategy.networks(recipe)
    networks = [build_network(spec, device, Processes()) for spec in specs]
    for network in networks:
        if args.no_channels_last:
            network.module.to(memory_format=torch.contiguous_format)
        network.optimizer = make_optimizer(recipe.optim[0], network.module.parameters())
        network.trainable.train()
    autocast = None if args.no_autocast else autocast_for(device)

    with tempfile.TemporaryDirectory() as tmp:
        data = synth.generate(Path(tmp), tracks=args.tracks, frames=crop + 40, seed=0)
        tracks = read_split(split_file(data.split_dir, "train"))
        targets = tag_matrix(tracks)
        if recipe.data.balancing == "single_label":
            targets = single_label(targets)
        dataset = CropDataset(
            [(mel_path(data.mel_root, t.path),) for t in tracks], targets, crop_frames=crop
        )
        loss = build_loss(recipe.loss, targets)
        augment = build_augmentation(recipe.augment, spec_rows=None)

        def step(batch: tuple[torch.Tensor, ...]) -> None:
            strategy.step(networks, loss, batch, augment=augment, autocast=autocast)

        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            num_workers=args.workers,
            pin_memory=device.type == "cuda",
            drop_last=True,
            persistent_workers=args.workers > 0,
        )
        results = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "recipe": recipe.name,
            "networks": [spec.architecture for spec in specs],
            "crop": [96, crop],
            "batch_size": batch_size,
            "bf16_autocast": autocast is not None,
            "channels_last": device.type == "cuda" and not args.no_channels_last,
            "torch": torch.__version__,
        }
        batches = (b for _ in itertools.count() for b in loader)

        def staged_batches():
            batch = tuple(part.to(device, non_blocking=True) for part in next(batches))
            return itertools.repeat(batch)

        for mode, source in (("loader", batches), ("step", staged_batches())):
            seconds = _time_steps(step, source, device, args.warmup, args.steps)
            results[f"{mode}_samples_per_s"] = round(args.steps * batch_size / seconds, 1)
            print(f"{mode}: {results[f'{mode}_samples_per_s']} samples/s", flush=True)
        if device.type == "cuda":
            results["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def _time_steps(step, source, device: torch.device, warmup: int, steps: int) -> float:
    def run(count: int) -> None:
        for batch in itertools.islice(source, count):
            step(tuple(part.to(device, non_blocking=True) for part in batch))

    run(warmup)
    _sync(device)
    start = time.perf_counter()
    run(steps)
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
