"""Every random draw of a diffusion batch belongs to its example: a batch cut into micro-batches (`batch_size: auto`
after an out-of-memory error) trains on exactly the noise, latent samples and timesteps the whole batch would."""

import torch

from tunesmith.tasks.diffusion.task import DiffusionTask

from tests.diffusion.test_task import dataset, frozen_with_lora, image_folder

DRAWS = ("noise", "latent_noise", "timesteps")


def test_a_cut_batch_draws_what_the_whole_batch_draws(isolated_cache, tiny_model, tmp_path):
    instances, classes = image_folder(tmp_path / "instance", 4, 0), image_folder(tmp_path / "class", 1, 1)
    task = DiffusionTask(frozen_with_lora(tiny_model("sd1")), dataset(instances, "sks dog"),
                         class_set=dataset(classes, "a dog", kind="class"))
    _, collate = task.train_batches(type("cfg", (), {"batch_size": 4})())
    rows = [task.train_set[i] for i in range(4)]
    whole, halves = collate(rows), [collate(rows[:2]), collate(rows[2:])]
    # Instances first, then their class partners: both halves side by side give the whole batch's order.
    order = [*range(0, 2), *range(4, 6), *range(2, 4), *range(6, 8)]
    for name in DRAWS:
        torch.testing.assert_close(torch.cat([h[name] for h in halves])[torch.tensor(order).argsort()], whole[name],
                                   rtol=0, atol=0, msg=name)
    # One class image serves all four instances, and each pair still draws its own noise.
    class_noise = whole["noise"][4:]
    assert all(not torch.equal(class_noise[i], class_noise[j]) for i in range(4) for j in range(i))


def test_each_held_out_copy_draws_its_own_noise(isolated_cache, tiny_model, tmp_path):
    task = DiffusionTask(frozen_with_lora(tiny_model("sd1")), dataset(image_folder(tmp_path / "i", 2, 0), "sks dog"),
                         val_set=dataset(image_folder(tmp_path / "v", 1, 2), "sks dog", kind="validation"))
    held_out = task.eval_collator()([task.val_set[0]])
    copies = held_out["noise"]
    assert len(copies) == 5 and all(not torch.equal(copies[i], copies[j]) for i in range(5) for j in range(i))
