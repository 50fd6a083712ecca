"""The Helionyx release pipeline: artifacts, stores and deploys (not shipped in the wheel)."""
