"""A second keyed evaluation, registered beside ``jpeg_quality``: accuracy at lower contrast."""

from regionmix_utils.evaluation.registry import Evaluation, predict, register_evaluation


def contrast_accuracy(model, images, labels, *, factor):
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return predict(model, mean + float(factor) * (images - mean))


register_evaluation(
    Evaluation(
        kind="contrast",
        title="Accuracy at reduced contrast",
        caption="test accuracy (%) with each image's contrast scaled by the given factor",
        keys=("factor",),
        compute=contrast_accuracy,
    )
)
