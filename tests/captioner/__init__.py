"""The captioner's tests. RULES: the kinematics' tunables as the captioner reads them from its settings."""

from services.captioner.kinematics.signals import KinematicsRules
from services.core.settings import CaptionerServiceSettings, load

RULES = KinematicsRules.from_settings(load(CaptionerServiceSettings))
