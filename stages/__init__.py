"""DVC stages that reproduce the result tables of two Keras tutorial posts.

Each module is one stage, run by `dvc.yaml` as `python -m stages.<name>`.
"""
