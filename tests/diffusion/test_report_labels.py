"""report.md says which loss is which: the training loss carries the prior term when class images train, the
held-out loss is on subject images only."""

import pytest

from tunesmith.tasks.diffusion.report import write_report


@pytest.mark.parametrize(("class_images", "train_label"), [(2, "final training loss (subject + prior term)"),
                                                            (None, "final training loss (subject images)")])
def test_the_two_losses_are_labelled(tmp_path, class_images, train_label):
    meta = {"method": "dreambooth_lora", "class_images": class_images, "final_train_loss": 2.301,
            "final_val_loss": 1.129}
    text = write_report(tmp_path, meta, []).read_text()
    assert f"| {train_label} | 2.301 |" in text
    assert "| held-out denoising loss (subject images only) | 1.129 |" in text
