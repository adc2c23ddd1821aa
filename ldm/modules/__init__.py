"""Network building blocks: UNet, attention, volumes, VAE, CLIP."""
