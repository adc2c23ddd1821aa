"""The diffusion model and its sampler."""
