"""Images/s of our input pipeline against the textbook torchvision DataLoader pipeline.

Both produce the same thing from the same uint8 images: batches of 128 randomly
cropped (zero-pad 2) and flipped images as float tensors in [0, 1], mixed by Region
Mixup (k = 2). The textbook pipeline is a map-style Dataset returning PIL images
through ``transforms.Compose([RandomCrop(32, padding=2), RandomHorizontalFlip(),
ToTensor()])`` and a ``DataLoader``; ours is ``BatchLoader`` (batched crop/flip on
tensors) followed by the same mixing call. Ratios are taken in the same run.

    python benchmarks/input_pipeline.py [--dataset shapes|cifar10-subset] [--batches 40]
"""

from __future__ import annotations

import argparse
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from regionmix_utils.data import BatchLoader, load_dataset
from regionmix_utils.mixing import region_mixup


class PilDataset(Dataset):
    """What torchvision's CIFAR10 does: one PIL image per __getitem__."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images = images.permute(0, 2, 3, 1).numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def images_per_second(batches, n_batches: int, num_classes: int) -> float:
    gen = torch.Generator().manual_seed(0)
    it = iter(batches)
    next(it)  # start-up (worker processes) is not throughput
    count, start = 0, time.perf_counter()
    for _ in range(n_batches):
        images, labels = next(it)
        region_mixup(images, labels, k=2, num_classes=num_classes, generator=gen)
        count += len(labels)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="shapes", help="shapes or cifar10-subset")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batches", type=int, default=40, help="timed batches of 128")
    args = parser.parse_args()
    n = 128 * (args.batches + 2)
    splits = load_dataset(args.dataset, args.data_dir, n_train=n)
    data, size = splits.train, splits.image_size
    batches = min(args.batches, len(data) // 128 - 1)  # one batch is the untimed start-up
    textbook = transforms.Compose(
        [
            transforms.RandomCrop(size, padding=2),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
        ]
    )
    rows = []
    for workers in (0, 2):
        loader = DataLoader(
            PilDataset(data.images, data.labels, textbook), batch_size=128, shuffle=True,
            num_workers=workers, drop_last=True,
        )  # fmt: skip
        rows.append(
            (
                f"torchvision DataLoader, {workers} workers",
                images_per_second(loader, batches, splits.num_classes),
            )
        )
    ours = BatchLoader(data, 128, drop_last=True, generator=torch.Generator().manual_seed(0))
    rows.append(
        ("regionmix BatchLoader (CPU)", images_per_second(ours, batches, splits.num_classes))
    )
    if torch.cuda.is_available():
        gpu = BatchLoader(
            data,
            128,
            drop_last=True,
            device="cuda",
            generator=torch.Generator("cuda").manual_seed(0),
        )

        def synced():
            for batch in gpu:
                torch.cuda.synchronize()
                yield batch

        rows.append(
            (
                "regionmix BatchLoader (CUDA)",
                images_per_second(synced(), batches, splits.num_classes),
            )
        )
    base = rows[0][1]
    print(
        f"{args.dataset}, {size}x{size}, batch 128, crop+flip+region mixup k=2, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"| {'pipeline':<36} | {'images/s':>10} | {'vs textbook (0 workers)':>24} |")
    print(f"|{'-' * 38}|{'-' * 12}|{'-' * 26}|")
    for name, rate in rows:
        print(f"| {name:<36} | {rate:>10.0f} | {rate / base:>23.1f}x |")


if __name__ == "__main__":
    main()
