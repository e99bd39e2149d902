"""Tiny GANs with the calling conventions of the StyleGAN-class code bases people invert (issue 34, item 5).

One module per code base, each written here from that code base's public interface (class and attribute names,
call signatures, return types, image range); the layers inside are plain and small, the weights random, and
nothing is downloaded:

* :mod:`.nvidia`: NVlabs/stylegan2-ada-pytorch ``training/networks.py`` (and stylegan3's
  ``training/networks_stylegan2.py``): ``G.mapping(z, c, truncation_psi=1, ...)``, ``G.synthesis(ws, noise_mode=...)``,
  ``D(img, c)`` with ``b{res}`` blocks returning ``(x, img)`` and the ``b4`` epilogue's ``mbstd``.
* :mod:`.rosinality`: rosinality/stylegan2-pytorch ``model.py``: ``g_ema.style``, ``g_ema(styles_list, ...)``
  returning ``(image, latent or None)``, ``g_ema.noises.noise_{i}``, a D whose minibatch std is inline code.
* :mod:`.lucidrains`: lucidrains/stylegan2-pytorch ``stylegan2_pytorch/stylegan2_pytorch.py``: the ``StyleGAN2``
  module's ``S``/``G``/``D``/``SE``/``GE``, ``G(styles (N, num_layers, latent_dim), noise (N, H, W, 1))``, images in
  [0, 1] unclamped, ``D(x) -> (logits, quantize_loss)``.
* :mod:`.lightweight_gan`: lucidrains/lightweight-gan ``lightweight_gan/lightweight_gan.py``: ``G(z)`` (no mapping
  network, noise drawn inside, BatchNorm), images in [0, 1] unclamped, ``D(x) -> (out, out_32x32, aux_loss)``.

Each module's ``tiny()`` builds the G and D a user would load, scaled to a few thousand parameters, with output
weights set as after training so that G's images span that code base's range (not clamped, a little beyond it).
"""
