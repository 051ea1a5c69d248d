"""The PoseFix network and everything that runs it.

The model (ResNet backbone + deconvolution head), the heatmap codec (input-pose Gaussians, soft-argmax,
targets), batched crops, our checkpoint format, weight importers (ImageNet, the authors' TensorFlow checkpoints,
SimpleBaseline files) and the `Refiner` that turns frames + input poses into refined poses.

May import: the shared root modules (keypoints, records, geometry, config, errors, atomic). Nothing from train/,
video/, eval/, synthetic/ or io/: the network must be usable without any pipeline around it.
"""
