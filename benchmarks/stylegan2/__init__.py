"""The reference StyleGAN2-class GAN (issue 34): its architecture and its training script."""
