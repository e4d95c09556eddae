"""An evaluation with a setting: accuracy on the test images saved as JPEG at ``quality``."""

import torch
from torchvision.io import decode_jpeg, encode_jpeg

from regionmix_utils.evaluation.registry import Evaluation, predict, register_evaluation


def jpeg_accuracy(model, images, labels, *, quality):
    pixels = (images * 255).round().to(torch.uint8).cpu()
    decoded = [decode_jpeg(encode_jpeg(image, quality=int(quality))) for image in pixels]
    return predict(model, torch.stack(decoded).float().div(255).to(images.device))


register_evaluation(
    Evaluation(
        kind="jpeg",
        title="Accuracy on JPEG-compressed test images",
        caption="test accuracy (%) on the test images saved as JPEG at the given quality",
        keys=("quality",),
        compute=jpeg_accuracy,
    )
)
