"""The paper's loss: CE(f(x_A), y_A) + CE(f(x~), y~), and soft-target cross entropy."""

import pytest
import torch
import torch.nn.functional as F

from regionmix_utils import combined_loss, soft_cross_entropy


def test_soft_cross_entropy_is_minus_sum_p_log_softmax():
    logits, probs = torch.randn(5, 4), torch.softmax(torch.randn(5, 4), 1)
    expected = -(probs * logits.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(soft_cross_entropy(logits, probs), expected)


def test_one_hot_targets_equal_index_targets():
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    torch.testing.assert_close(
        soft_cross_entropy(logits, F.one_hot(labels, 3).float()), soft_cross_entropy(logits, labels)
    )


def test_half_precision_logits_are_scored_in_float32():
    logits, probs = torch.randn(8, 10) * 4, torch.softmax(torch.randn(8, 10), 1)
    loss = soft_cross_entropy(logits.bfloat16(), probs)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, soft_cross_entropy(logits.bfloat16().float(), probs))


def test_combined_loss_adds_the_clean_term_and_the_ablation_drops_it():
    clean, mixed = torch.randn(4, 3), torch.randn(4, 3)
    labels, targets = torch.tensor([0, 1, 2, 0]), torch.softmax(torch.randn(4, 3), 1)
    parts = combined_loss(mixed, targets, clean, labels)
    torch.testing.assert_close(parts.clean, F.cross_entropy(clean, labels))
    torch.testing.assert_close(parts.mixed, soft_cross_entropy(mixed, targets))
    torch.testing.assert_close(parts.total, parts.clean + parts.mixed)
    ablated = combined_loss(mixed, targets, clean_ce=False)
    assert ablated.clean is None
    torch.testing.assert_close(ablated.total, parts.mixed)


def test_combined_loss_gradients_flow_to_both_passes():
    clean = torch.randn(4, 3, requires_grad=True)
    mixed = torch.randn(4, 3, requires_grad=True)
    combined_loss(
        mixed, torch.full((4, 3), 1 / 3), clean, torch.tensor([0, 1, 2, 0])
    ).total.backward()
    assert clean.grad.abs().sum() > 0 and mixed.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: soft_cross_entropy(torch.randn(4), torch.tensor([0, 1, 2, 3])),
            "logits must be 2-D",
        ),
        (
            lambda: soft_cross_entropy(torch.randn(4, 3), torch.tensor([0, 1])),
            "one row per logit row",
        ),
        (lambda: soft_cross_entropy(torch.randn(4, 3), torch.rand(4, 2)), "soft targets must have"),
        (
            lambda: combined_loss(torch.randn(4, 3), torch.rand(4, 3)),
            "logits_clean and labels_clean",
        ),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
def test_indices_of_any_integer_dtype_and_integer_one_hot_give_the_index_loss(dtype):
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    expected = F.cross_entropy(logits, labels)
    torch.testing.assert_close(soft_cross_entropy(logits, labels.to(dtype)), expected)
    torch.testing.assert_close(soft_cross_entropy(logits, F.one_hot(labels, 3).to(dtype)), expected)
    parts = combined_loss(logits, F.one_hot(labels, 3), logits, labels.to(dtype))
    torch.testing.assert_close(parts.total, 2 * expected)


def test_float_or_bool_indices_are_refused():
    for targets in (torch.tensor([0.0, 1.0]), torch.tensor([True, False])):
        with pytest.raises(TypeError, match="targets of shape \\[B\\] must be integer class"):
            soft_cross_entropy(torch.randn(2, 3), targets)
