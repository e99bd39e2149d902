"""Rivals that learn an encoder jointly with their generator: VAE, BiGAN/ALI, GAAN/Dist-GAN, AAAE (see README.md here)."""
