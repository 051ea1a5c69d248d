"""Training datasets on the real COCO and PoseTrack18 samples: geometry, flips, ears, near persons, estimates."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from posefix_video import geometry
from posefix_video.errors import InputError, PosefixError
from posefix_video.keypoints import COCO17, POSETRACK18
from posefix_video.synthesis import SWAP
from posefix_video.train.data import (
    Augmentation,
    PoseFixDataset,
    attach_estimates,
    box_iou,
    build_dataset,
    draw_augmentations,
    load_coco_persons,
    load_posetrack_persons,
)
from posefix_video.train.data.annotations import clip_box
from posefix_video.train.data.posetrack import jpeg_size
from posefix_video.train.data.samples import decode_factors, reduced_affine

NO_AUG = Augmentation(scale_factor=0.0, rotation_factor=0.0, rotation_prob=0.0, flip_prob=0.0)
FLIP = Augmentation(scale_factor=0.0, rotation_factor=0.0, rotation_prob=0.0, flip_prob=1.0)


@pytest.fixture(scope="module")
def coco(shared_data):
    d = shared_data / "coco_mmpose"
    return d, load_coco_persons(d / "test_coco.json", d)


@pytest.fixture(scope="module")
def posetrack(shared_data):
    d = shared_data / "posetrack18_mmpose"
    return d, load_posetrack_persons(d / "annotations" / "val", d)


def test_box_iou_and_clip_by_hand():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 5, 10, 10], [0, 20, 5, 5], [0, 0, 10, 10]]))
    np.testing.assert_allclose(iou, [[25 / 175, 0.0, 1.0]])
    # a box reaching past the right/bottom border: x2 = min(W-1, x1 + w - 1)
    np.testing.assert_allclose(clip_box([-5, 10, 30, 200], 20, 100), [0, 10, 19, 89])
    assert clip_box([30, 10, 5, 5], 20, 100) is None


def test_coco_filters_and_near_persons(coco):
    root, persons = coco
    data = json.loads((root / "test_coco.json").read_text())
    assert len(persons) == sum(a["num_keypoints"] > 0 and not a["iscrowd"] for a in data["annotations"]) == 12
    for p in persons:
        same = [q for q in persons if q.image_id == p.image_id and q is not p]
        boxes = np.stack([q.box for q in same]) if same else np.zeros((0, 4))
        want = sorted(tuple(q.keypoints.ravel()) for q, v in zip(same, box_iou(p.box, boxes)[0]) if v >= 0.1)
        assert sorted(tuple(k.ravel()) for k in p.near) == want
        assert p.overlap == len(want)
    assert any(p.overlap > 0 for p in persons)


def test_standard_coco_layout_paths(tmp_path, coco):
    root, _ = coco
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").symlink_to(root)
    (tmp_path / "annotations" / "person_keypoints_val2017.json").symlink_to(root / "test_coco.json")
    from posefix_video.train.data import coco_paths

    ann, img = coco_paths(tmp_path, "val2017")
    persons = load_coco_persons(ann, img)
    ds = PoseFixDataset(persons=persons, layout=COCO17, augmentation=None, synthesize=False)
    assert ds[0]["image"].shape == (256, 192, 3)


def test_crop_geometry_matches_the_affine(coco):
    root, persons = coco
    ds = PoseFixDataset(persons=persons, layout=COCO17, augmentation=None, synthesize=False, reduced_decode=False)
    for i in (0, 3, 7):
        s = ds[i]
        p = persons[i]
        M = s["affine"].double().numpy()
        centre, size = geometry.crop_box(p.box[None])
        np.testing.assert_allclose(geometry.apply_affine(M[None], centre[None])[0, 0], [96, 128], atol=1e-4)
        want = geometry.apply_affine(M[None], p.keypoints[None])[0]
        inside = (want[:, 0] >= 0) & (want[:, 0] < 192) & (want[:, 1] >= 0) & (want[:, 1] < 256)
        assert np.array_equal(s["target_valid"].numpy(), p.valid & inside)
        np.testing.assert_allclose(s["target_keypoints"].numpy(), want, atol=1e-3)
        # the crop is the image warped by M, RGB
        img = cv2.imread(p.image_path)[:, :, ::-1]
        ref = cv2.warpAffine(np.ascontiguousarray(img), M, (192, 256), flags=cv2.INTER_LINEAR)
        assert np.abs(s["image"].numpy().astype(int) - ref.astype(int)).max() <= 1
        # eval mode: the input pose is the ground truth
        assert np.array_equal(s["input_valid"].numpy(), s["target_valid"].numpy())
        np.testing.assert_array_equal(s["input_keypoints"].numpy(), s["target_keypoints"].numpy())


def test_reduced_decode_matches_full_decode(coco):
    root, persons = coco
    factors = decode_factors(geometry.crop_affine(*geometry.crop_box(np.stack([p.box for p in persons])), (64, 48)))
    small = [p for p, f in zip(persons, factors) if f > 1]
    assert small, "expected persons whose crop is at least 2x smaller than the box"
    full = PoseFixDataset(persons=small, layout=COCO17, input_hw=(64, 48), augmentation=None, synthesize=False,
                          reduced_decode=False)  # fmt: skip
    red = PoseFixDataset(persons=small, layout=COCO17, input_hw=(64, 48), augmentation=None, synthesize=False)
    for i in range(len(small)):
        # blurred: the full-size warp aliases at these reductions, the reduced decode is box-filtered
        a, b = (cv2.GaussianBlur(d[i]["image"].numpy(), (0, 0), 1.5).transpose(2, 0, 1).astype(float)
                for d in (full, red))  # fmt: skip
        # compare away from the image border (the reduced image reaches half a pixel further)
        Minv = geometry.invert_affine(full[i]["affine"].double().numpy()[None])
        v, u = np.mgrid[0:64, 0:48]
        xy = geometry.apply_affine(Minv, np.stack([u, v], -1).reshape(1, -1, 2).astype(float))[0]
        h, w = cv2.imread(small[i].image_path).shape[:2]
        inner = ((xy[:, 0] > 4) & (xy[:, 0] < w - 5) & (xy[:, 1] > 4) & (xy[:, 1] < h - 5)).reshape(64, 48)
        assert inner.mean() > 0.5
        assert np.abs(a - b)[:, inner].mean() < 8.0
        np.testing.assert_array_equal(full[i]["target_keypoints"].numpy(), red[i]["target_keypoints"].numpy())
    # The half-pixel offset of the reduced grid is right: it matches the full decode better than shifted grids.
    p = small[0]
    M = full[0]["affine"].double().numpy()
    ref = cv2.warpAffine(cv2.imread(p.image_path), M, (48, 64)).astype(float)[8:-8, 8:-8]
    img2 = cv2.imread(p.image_path, cv2.IMREAD_REDUCED_COLOR_2)

    def err(offset):
        R = np.array([[2.0, 0, offset], [0, 2.0, offset], [0, 0, 1]])
        return np.abs(cv2.warpAffine(img2, M @ R, (48, 64)).astype(float)[8:-8, 8:-8] - ref).mean()

    ours = np.abs(cv2.warpAffine(img2, reduced_affine(M, 2), (48, 64)).astype(float)[8:-8, 8:-8] - ref).mean()
    assert ours == pytest.approx(err(0.5)) and ours < err(0.0) and ours < err(1.0)
    # pixel-centre convention of the reduction: decoded pixel i of a 1/2 image is frame x = 2i + 0.5
    R = reduced_affine(np.array([[1.0, 0, 0], [0, 1.0, 0]]), 2)
    np.testing.assert_allclose(R @ np.array([3.0, 1.0, 1.0]), [6.5, 2.5])


def test_flip_swaps_the_layout_pairs(coco, posetrack):
    for (_, persons), layout in ((coco, COCO17), (posetrack, POSETRACK18)):
        plain = PoseFixDataset(persons=persons, layout=layout, augmentation=NO_AUG, synthesize=False)
        flip = PoseFixDataset(persons=persons, layout=layout, augmentation=FLIP, synthesize=False)
        perm = layout.flip_permutation
        for i in range(0, len(persons), 3):
            a, b = plain[i], flip[i]
            assert b["flipped"] and not a["flipped"]
            ka, kb = a["target_keypoints"].numpy(), b["target_keypoints"].numpy()
            va, vb = a["target_valid"].numpy(), b["target_valid"].numpy()
            # slot j of the flipped sample is the mirror of slot perm[j] of the plain one
            mirrored = np.stack([191 - ka[perm, 0], ka[perm, 1]], -1)
            both = vb & va[perm]
            np.testing.assert_allclose(kb[both], mirrored[both], atol=1e-3)
            assert np.array_equal(vb, va[perm])
            img_a = a["image"].numpy().astype(int)
            img_b = b["image"].numpy().astype(int)
            assert np.abs(img_b - img_a[:, ::-1, :]).max() <= 1  # HWC: mirrored along W
    # a left shoulder (slot 5) of the plain sample becomes slot 6 after the flip
    assert list(COCO17.flip_permutation[[5, 6, 1, 2]]) == [6, 5, 2, 1]
    assert list(POSETRACK18.flip_permutation[[1, 2, 3, 4]]) == [1, 2, 3, 4]


def test_posetrack_ears_never_used(posetrack):
    root, persons = posetrack
    assert all(not p.valid[[3, 4]].any() for p in persons)
    ds = PoseFixDataset(persons=persons, layout=POSETRACK18, seed=1)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            assert not s["target_valid"][[3, 4]].any() and not s["input_valid"][[3, 4]].any()
            assert (s["error_type"][[3, 4]] == -1).all()


def test_posetrack_folder_and_merged_file_agree(posetrack):
    root, persons = posetrack
    merged = load_posetrack_persons(root / "annotations" / "test_posetrack18_val.json", root)
    assert len(persons) == len(merged) == 14
    key = lambda p: p.ann_id  # noqa: E731
    for a, b in zip(sorted(persons, key=key), sorted(merged, key=key)):
        assert a.image_path == b.image_path and a.overlap == b.overlap
        np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_crowded_image_yields_swap_candidates(posetrack):
    root, persons = posetrack
    crowd = [i for i, p in enumerate(persons) if "012834" in p.image_path]
    assert len(crowd) == 11
    with_near = [i for i in crowd if persons[i].overlap > 0]
    assert with_near
    ds = PoseFixDataset(persons=persons, layout=POSETRACK18, augmentation=NO_AUG, seed=3)
    swaps = 0
    for epoch in range(10):
        ds.set_epoch(epoch)
        swaps += sum(int((s["error_type"] == SWAP).sum()) for s in ds.__getitems__(with_near))
    assert swaps > 0
    # persons alone in their box never get a swap
    alone = [i for i, p in enumerate(persons) if p.overlap == 0]
    for epoch in range(10):
        ds.set_epoch(epoch)
        assert all(not (ds[i]["error_type"] == SWAP).any() for i in alone)


def test_unlabeled_joints_from_estimator_results_or_absent(coco, tmp_path):
    root, _ = coco
    persons = load_coco_persons(root / "test_coco.json", root)
    partial = [i for i, p in enumerate(persons) if 0 < p.valid.sum() < 17]
    assert partial
    # An estimator's results file: every joint of every person (unlabeled ones near the box centre).
    results = []
    rng = np.random.default_rng(0)
    for p in persons:
        kp = np.where(p.valid[:, None], p.keypoints + 2.0, p.box[:2] + p.box[2:] / 2 + rng.normal(0, 5, (17, 2)))
        results.append({"image_id": p.image_id, "category_id": 1, "score": 0.9, "bbox": p.box.tolist(),
                        "keypoints": np.concatenate([kp, np.full((17, 1), 0.8)], 1).ravel().tolist()})  # fmt: skip
    path = tmp_path / "train_results.json"
    path.write_text(json.dumps(results))
    assert attach_estimates(persons, path) == len(persons)
    for p, r in zip(persons, results):
        np.testing.assert_allclose(p.estimated, np.asarray(r["keypoints"]).reshape(17, 3)[:, :2])

    with_est = PoseFixDataset(persons=persons, layout=COCO17, augmentation=NO_AUG, seed=0)
    bare = load_coco_persons(root / "test_coco.json", root)
    without = PoseFixDataset(persons=bare, layout=COCO17, augmentation=NO_AUG, seed=0)
    got_est = 0
    for i in partial:
        unl = ~persons[i].valid
        a, b = with_est[i], without[i]
        assert not b["input_valid"].numpy()[unl].any()
        assert not a["target_valid"].numpy()[unl].any()  # estimates are inputs only, never targets
        got_est += int(a["input_valid"].numpy()[unl].sum())
    assert got_est > 0


def test_estimates_match_by_box_iou(coco, tmp_path):
    root, persons = coco
    persons = load_coco_persons(root / "test_coco.json", root)
    img = persons[-1].image_id
    same = [p for p in persons if p.image_id == img]
    assert len(same) >= 2
    # results in reverse order, keypoints marking their person; no bbox: matched by keypoint extent
    results = [{"image_id": img, "keypoints": np.concatenate([p.keypoints, np.ones((17, 1))], 1).ravel().tolist(),
                "score": 1.0} for p in reversed(same) if p.valid.sum() >= 10]  # fmt: skip
    (tmp_path / "r.json").write_text(json.dumps(results))
    attach_estimates(same, tmp_path / "r.json")
    for p in same:
        if p.valid.sum() >= 10:
            np.testing.assert_array_equal(p.estimated[p.valid], p.keypoints[p.valid])


def test_deterministic_per_seed_epoch_index(posetrack):
    _, persons = posetrack
    ds = PoseFixDataset(persons=persons, layout=POSETRACK18, seed=5)
    a = ds[2]
    ds.set_epoch(1)
    b = ds[2]
    ds.set_epoch(0)
    c = ds[2]
    for k in a:
        assert np.array_equal(a[k].numpy(), c[k].numpy())
    assert not np.array_equal(a["affine"].numpy(), b["affine"].numpy())


def test_augmentation_draws_follow_the_recipe():
    rng = np.random.default_rng(0)
    draws = draw_augmentations(Augmentation(), rng, 4000)
    scale, rot = draws.scale, draws.rotation
    assert scale.min() >= 0.7 and scale.max() <= 1.3 and abs(np.mean(scale == 1.3) - 0.16) < 0.03
    assert np.abs(rot).max() <= 80 and abs(np.mean(rot != 0) - 0.6) < 0.03
    # clipped at +-2 sigma = +-80 degrees: 4.6 % of the rotated draws sit on the clip
    assert abs(np.mean(np.abs(rot[rot != 0]) == 80) - 0.0455) < 0.015
    assert abs(np.mean(draws.flip) - 0.5) < 0.03


def test_augmented_keypoints_follow_the_warp(coco):
    root, persons = coco
    ds = PoseFixDataset(persons=persons, layout=COCO17, seed=11, reduced_decode=False)
    for i in range(len(ds)):
        s = ds[i]
        M = s["affine"].double().numpy()
        p = persons[i]
        want = geometry.apply_affine(M[None], p.keypoints[None])[0]
        if s["flipped"]:
            want = want[COCO17.flip_permutation]
        v = s["target_valid"].numpy()
        np.testing.assert_allclose(s["target_keypoints"].numpy()[v], want[v], atol=1e-3)
        k = s["target_keypoints"].numpy()[v]
        assert np.all((k >= 0) & (k < [192, 256]))


def test_missing_image_and_bad_files_are_input_errors(coco, tmp_path):
    root, persons = coco
    data = json.loads((root / "test_coco.json").read_text())
    (tmp_path / "a.json").write_text(json.dumps(data))
    moved = load_coco_persons(tmp_path / "a.json", tmp_path)  # images are not there
    ds = PoseFixDataset(persons=moved, layout=COCO17)
    with pytest.raises(InputError, match="000000000785.jpg.*image missing"):
        ds[0]
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(PosefixError, match="b.json.*not valid JSON"):
        load_coco_persons(tmp_path / "b.json", tmp_path)
    data["annotations"][0]["keypoints"] = [1, 2]
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"c.json: annotations\[0\].*keypoints must be"):
        load_coco_persons(tmp_path / "c.json", tmp_path)


def test_jpeg_size_reads_the_header(shared_data):
    p = shared_data / "posetrack18_mmpose" / "images" / "val" / "012834_mpii_test" / "000000.jpg"
    assert jpeg_size(p) == (1920, 1080)
    assert jpeg_size(shared_data / "coco_mmpose" / "test_coco.json") is None


def test_build_dataset_from_config(shared_data):
    root = shared_data / "posetrack18_mmpose"
    data = SimpleNamespace(
        kind="posetrack",
        train_ann=str(root / "annotations" / "val"),
        train_images=str(root),
        val_ann=str(root / "annotations" / "test_posetrack18_val.json"),
        val_images=str(root),
        train_inputs="",
        scale_factor=0.3,
        rotation_factor=40.0,
        rotation_prob=0.6,
        flip_prob=0.5,
        image_bank="",
        blank_inputs=0.0,
        low_res=0.0,
    )
    cfg = SimpleNamespace(data=data, model=SimpleNamespace(layout="posetrack18", input_size=(128, 96), pose_input=True),
                          runtime=SimpleNamespace(seed=0))  # fmt: skip
    train = build_dataset(cfg, split="train")
    val = build_dataset(cfg, split="val")
    assert len(train) == len(val) == 14 and train[0]["image"].shape == (128, 96, 3)
    assert val.augmentation is None and train.augmentation is not None


def test_prepare_posetrack_merges_and_fills_sizes(shared_data, tmp_path, capsys, load_script):
    root = shared_data / "posetrack18_mmpose"
    prep = load_script("prepare_posetrack")
    out = tmp_path / "posetrack18_val.json"
    assert prep.main(["--root", str(root), "--split", "val", "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert len(merged["images"]) == 3 and len(merged["annotations"]) == 14
    assert all((img["width"], img["height"]) == (1920, 1080) for img in merged["images"])
    assert all(a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3]) for a in merged["annotations"])
    # the merged file loads as plain COCO and gives the same persons as the per-video folder
    persons = load_coco_persons(out, root, POSETRACK18)
    assert len(persons) == 14 and not any(p.valid[[3, 4]].any() for p in persons)
    assert "3 images (3 labeled), 14 persons" in capsys.readouterr().out


def test_prepare_posetrack_missing_images(shared_data, tmp_path, capsys, load_script):
    root = shared_data / "posetrack18_mmpose"
    fake = tmp_path / "pt"
    (fake / "annotations").mkdir(parents=True)
    (fake / "annotations" / "val").symlink_to(root / "annotations" / "val")
    (fake / "images" / "val").mkdir(parents=True)
    (fake / "images" / "val" / "012834_mpii_test").symlink_to(root / "images" / "val" / "012834_mpii_test")
    prep = load_script("prepare_posetrack")
    out = tmp_path / "merged.json"
    assert prep.main(["--root", str(fake), "--split", "val", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 labeled frame(s) have no image" in err and "003418_mpii_test/000000.jpg" in err
    assert not out.exists()
    assert prep.main(["--root", str(fake), "--split", "val", "--out", str(out), "--allow-missing"]) == 0
    merged = json.loads(out.read_text())
    assert len(merged["images"]) == 1 and len(merged["annotations"]) == 11


def test_batched_fetch_matches_single_fetch_except_synthesis_draws(posetrack):
    _, persons = posetrack
    ds = PoseFixDataset(persons=persons, layout=POSETRACK18, seed=2)
    ds.set_epoch(4)
    batch = ds.__getitems__([5, 0, 12])
    again = ds.__getitems__([5, 0, 12])
    for k, i in enumerate([5, 0, 12]):
        single = ds[i]
        for key in ("image", "target_keypoints", "target_valid", "affine", "flipped"):
            assert np.array_equal(batch[k][key].numpy(), single[key].numpy()), key
        for key in batch[k]:
            assert np.array_equal(batch[k][key].numpy(), again[k][key].numpy()), key
        # synthesised joints exist exactly where a centre exists (labeled in crop, no estimator here)
        assert np.array_equal(batch[k]["input_valid"].numpy(), single["target_valid"].numpy())
    from torch.utils.data import DataLoader

    loader = DataLoader(ds, batch_size=4, shuffle=False)
    first = next(iter(loader))
    assert first["image"].shape == (4, 256, 192, 3) and first["input_keypoints"].shape == (4, 17, 2)


def test_epoch_from_the_batch_equals_set_epoch_and_survives_pickling(posetrack):
    import pickle

    from posefix_video.train.loader import EpochBatch

    _, persons = posetrack
    ds = PoseFixDataset(persons=persons, layout=POSETRACK18, seed=2)
    batch = pickle.loads(pickle.dumps(EpochBatch([5, 0, 12], 4)))  # as it reaches a persistent worker
    assert batch == [5, 0, 12] and batch.epoch == 4
    tagged = pickle.loads(pickle.dumps(ds)).__getitems__(batch)  # the worker's copy never saw set_epoch
    ds.set_epoch(4)
    plain = ds.__getitems__([5, 0, 12])
    ds.set_epoch(0)
    other = ds.__getitems__([5, 0, 12])
    for a, b, c in zip(tagged, plain, other):
        for key in a:
            assert np.array_equal(a[key].numpy(), b[key].numpy()), key
        assert not np.array_equal(a["affine"].numpy(), c["affine"].numpy())


def test_packed_near_persons_gather_each_persons_neighbours():
    from posefix_video.train.data.annotations import PersonEntry
    from posefix_video.train.data.samples import _PackedPersons

    rng = np.random.default_rng(0)
    persons = []
    for i, m in enumerate([0, 3, 1, 0, 2]):
        persons.append(PersonEntry(
            image_path=f"/x/{i}.jpg", image_id=i // 2, ann_id=100 + i, box=rng.uniform(1, 9, 4),
            keypoints=rng.uniform(0, 50, (17, 2)), valid=rng.random(17) < 0.7, near=rng.uniform(0, 50, (m, 17, 2)),
            near_valid=rng.random((m, 17)) < 0.7))  # fmt: skip
    P = _PackedPersons.build(persons, 17)
    assert P.estimated is None  # nobody has estimates: no (N, 17, 2) zeros to carry to the workers
    idx = np.array([4, 0, 1, 2])
    near, valid = P.near_of(idx)
    assert near.shape == (4, 3, 17, 2) and valid.shape == (4, 3, 17)
    for k, i in enumerate(idx):
        m = persons[i].near.shape[0]
        np.testing.assert_array_equal(near[k, :m], persons[i].near)
        np.testing.assert_array_equal(valid[k, :m], persons[i].near_valid)
        assert not valid[k, m:].any() and not near[k, m:].any()  # padding is empty
    lone, lone_valid = P.near_of(np.array([0, 3]))
    assert lone.shape == (2, 0, 17, 2) and lone_valid.shape == (2, 0, 17)
    assert P.image_paths[3] == "/x/3.jpg" and P.ann_ids[3] == 103 and P.image_ids[3] == 1
