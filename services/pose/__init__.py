"""Pose stage: person detection and 17-keypoint pose on Triton, human-existence and human-action filters."""
