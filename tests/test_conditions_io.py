"""Keypoint files: OpenPose JSON (COCO-18, BODY_25, faces, several people), candidate/subset pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.conditions.openpose_io import (
    read_candidate_subset,
    read_keypoints,
    read_openpose_json,
    write_keypoints_json,
)
from core.errors import InputError


def test_json_round_trip(tmp_path):
    pose = np.zeros((18, 3))
    pose[:5] = [[10, 20, 0.9], [30, 40, 1], [50, 60, 0.5], [70, 80, 1], [90, 100, 1]]
    face = np.column_stack([np.arange(68), np.arange(68) * 2, np.ones(68)])
    path = tmp_path / "kp.json"
    write_keypoints_json(path, (480, 640), pose=pose, face=face)
    doc = json.loads(path.read_text())
    assert doc["canvas_width"] == 640 and len(doc["people"][0]["face_keypoints_2d"]) == 70 * 3
    found = read_keypoints(path)
    assert found.frame == (480, 640) and not found.normalized
    np.testing.assert_allclose(found.pose, pose)
    np.testing.assert_allclose(found.face, face)


def test_body25_several_people_and_normalized(tmp_path):
    weak = [0.0] * 75
    strong = []
    for j in range(25):
        strong += [0.1 + j / 100, 0.2, 1.0]
    path = tmp_path / "op.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": weak}, {"pose_keypoints_2d": strong}]}))
    found = read_openpose_json(path)
    assert found.pose.shape == (18, 3) and found.normalized and found.frame is None
    assert found.pose[8, 0] == pytest.approx(0.19)  # BODY_25 RHip (9) -> COCO-18 RHip (8)
    assert any("2 people" in m for m in found.messages)


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ('{"people": []}', "no people"),
    ('{"something": 1}', "not OpenPose JSON"),
    ('{"people": [{"pose_keypoints_2d": [1, 2]}]}', "triples"),
    ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', "expected 18"),
])
def test_bad_json_is_explained(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=words):
        read_keypoints(path)


def test_candidate_subset_pair(tmp_path):
    cand = np.array([[100.0, 200.0, 0.8, 0], [300.0, 400.0, 0.9, 1]])
    subset = np.full(20, -1.0)
    subset[0], subset[1], subset[18], subset[19] = 1, 0, 1.7, 2
    np.savetxt(tmp_path / "a_candidate.txt", cand)
    np.savetxt(tmp_path / "a_subset.txt", subset[None])
    for given in ("a_candidate.txt", "a_subset.txt", "a_{}.txt"):
        found = read_keypoints(tmp_path / given)
        assert found.frame == (1024, 1024)
        assert found.pose[0].tolist() == [300.0, 400.0, 0.9] and found.pose[1].tolist() == [100.0, 200.0, 0.8]
        assert (found.pose[2:, 2] == 0).all()
    (tmp_path / "b_candidate.txt").write_text("1 2 3\n")
    with pytest.raises(InputError, match="not found"):
        read_candidate_subset(tmp_path / "b_candidate.txt")
    with pytest.raises(InputError, match="_candidate.txt"):
        read_keypoints(tmp_path / "loose.txt")
