"""The inpainting data's held-out split (export/inpaint_data.py): by group, every fifth group of
each source, and nothing from the sources added after the evaluation was fixed."""

from export.inpaint_data import HELD_OUT_EVERY, TRAIN_ONLY, SourceImage, split


def images(source: str, groups: int) -> list[SourceImage]:
    return [
        SourceImage(f"{source}/{g}/{v}.jpg", f"{source}/{g}", source, "test", "nowhere", lambda: None)
        for g in range(groups)
        for v in ("light", "dark")  # two variants of one picture: one group
    ]


def test_split_is_by_group_and_train_only_sources_hold_nothing_out():
    late = sorted(TRAIN_ONLY)[0]
    train, held = split(images("lomiri", 10) + images(late, 10))
    held_groups = {im.group for im in held}
    assert len(held_groups) == 10 // HELD_OUT_EVERY and all(g.startswith("lomiri/") for g in held_groups)
    assert not held_groups & {im.group for im in train}  # both variants of a group on one side
    assert sum(im.source == late for im in train) == 20
    # adding a train-only source leaves the other sources' split exactly as it was
    assert [im.key for im in split(images("lomiri", 10))[1]] == [im.key for im in held]
