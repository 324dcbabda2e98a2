"""Video: one exemplar driven through a whole clip (``python -m core video``, the app's Pose video tab).

    clip.py       video file / frames folder / OpenPose JSON folder -> frames and poses
    track.py      keypoints over time: gaps bridged, One-Euro smoothing
    seeding.py    temporal seeding: the previous frame's matches moved by the pose change
    retarget.py   the passes (poses, frames, encoding), resumable after a kill
    encode.py     H.264 / VP9 through PyAV (FFmpeg bundled in its wheel)
    stability.py  flicker and PCK figures
"""
