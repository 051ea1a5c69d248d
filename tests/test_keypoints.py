import numpy as np
import pytest

from posefix_video.keypoints import COCO17, POSETRACK18, get_layout, layout_from_names


def test_flip_pairs_map_left_names_to_right_names():
    for layout in (COCO17, POSETRACK18):
        for a, b in layout.flip_pairs:
            assert layout.names[a].startswith("left_")
            assert layout.names[b] == "right_" + layout.names[a][len("left_"):]
    # PoseTrack18 head_bottom/head_top (COCO's eye slots) and the unlabeled ears are not mirrored
    assert {i for p in POSETRACK18.flip_pairs for i in p} == set(range(5, 17))
    assert {i for p in COCO17.flip_pairs for i in p} == set(range(1, 17))


def test_flip_permutation_is_an_involution_that_swaps_pairs():
    for layout in (COCO17, POSETRACK18):
        perm = layout.flip_permutation
        assert (perm[perm] == np.arange(17)).all()
        assert perm[9] == 10 and perm[16] == 15 and perm[0] == 0
    assert POSETRACK18.flip_permutation[1] == 1 and COCO17.flip_permutation[1] == 2


def test_sigma_tables():
    # pycocotools' COCOeval.kpt_oks_sigmas (published values, divided by 10)
    coco = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10
    np.testing.assert_allclose(COCO17.sigma_array, coco)
    pt = POSETRACK18.sigma_array
    assert pt[0] == 0.026 and pt[1] == pt[2] == 0.035  # nose, head_bottom, head_top (PoseFix's table)
    assert pt[3] == pt[4] == 0.0  # ears never labeled
    np.testing.assert_allclose(pt[5:], coco[5:])


def test_ignored_slots_and_lookup():
    assert POSETRACK18.ignored == (3, 4) and COCO17.ignored == ()
    assert POSETRACK18.used_mask.sum() == 15
    assert get_layout("posetrack18") is POSETRACK18
    assert layout_from_names(list(POSETRACK18.names)) is POSETRACK18
    assert layout_from_names(["a"] * 17) is None
    with pytest.raises(ValueError, match="unknown keypoint layout"):
        get_layout("mpii")


def test_resolve_layout_by_name_object_or_default():
    from posefix_video.keypoints import COCO17, POSETRACK18, resolve_layout

    assert resolve_layout(None) is COCO17 and resolve_layout(None, default=POSETRACK18) is POSETRACK18
    assert resolve_layout("posetrack18") is POSETRACK18 and resolve_layout(COCO17, default=POSETRACK18) is COCO17
