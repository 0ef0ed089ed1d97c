"""talking-face: speech and/or text + one face photo or clip -> a lip-synced talking-face video.

One import root for the whole project: ``talking_face.datamodules`` (corpora, preprocessing, media, faces,
speech, the DataModule), ``talking_face.lightning_modules`` (the two stages' networks and LightningModules),
``talking_face.callbacks`` (media logging), ``talking_face.configs`` (LightningCLI YAML, shipped as package
data), and the product itself here: ``talking_face.generation`` (the pipeline, evaluate, finetune, demo,
export) and ``talking_face.cli`` (the ``talking-face`` command).
"""
