"""The Consistent4D test protocol, pinned in one place (see README "Evaluation").

The official scripts (yanqinJiang/Consistent4D, ``evaluation/``) score four views per object,
every test frame, on images resized to 512 px. Where they lean on an unpinned library default we
pin one behaviour; each is equal to theirs on the white-background RGB images their README asks for.
"""
NUM_VIEWS = 4
# Azimuths of eval_0..eval_3 relative to the input view, elevation 0 relative to it (degrees).
VIEW_AZIMUTHS_DEG = (-75.0, 15.0, 105.0, 195.0)
VIEW_ELEVATION_DEG = 0.0
IMAGE_SIZE = 512
FVD_SIZE = 224
# The ground truth's camera, as Consistent4D renders its evaluation views (threestudio config:
# eval_camera_distance 2.0, eval_fovy_deg 49.1, the Zero123 field of view).
GT_DISTANCE = 2.0
GT_FOVY_DEG = 49.1
# Images are 8-bit: PSNR and SSIM use a data range of 255 (the official torchmetrics calls infer it
# from the images, which gives 255 whenever an image holds both a black and a white pixel).
DATA_RANGE = 255.0
METRICS = ("psnr", "ssim", "lpips", "clip", "fvd")
# Higher is better for these; lower for the others (for the Markdown arrows).
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "clip": True, "fvd": False}
