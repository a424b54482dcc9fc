"""Actions and interactions from pose kinematics: the pose-grounded captioner's facts.

Every detector works on one person's dense track (samples at ~4 fps, 17 COCO keypoints in
source-video pixels, image y growing downwards). Distances are divided by the person's torso length
(mid-shoulder to mid-hip) or box height, so thresholds hold at any resolution and camera distance.
Left/right in verb phrases are the person's own (COCO names); directions are the image's: "left"
means the body centre moves towards smaller x.

- signals.py: a track as arrays (missing keypoints NaN, short gaps interpolated), the signal tools
  the detectors share, and KinematicsRules, the tunables from the captioner's settings;
- actions.py: one person's actions (`detect_actions`), from the detectors of upper_body.py (arms, hands,
  head), legs.py (jumps, kicks, knee lifts, balance), locomotion.py (travel, stepping cadence, turns, a
  step forward), posture.py (postures and their changes, squats; POSTURE, the body part of a held state)
  and movement.py (moving parts where nothing named fits, dancing); phrasing.py tells an action;
- interactions.py: what two people do together (`detect_interactions`).

The package re-exports nothing: import from the module that defines a name.
"""
