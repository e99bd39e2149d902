"""The recipes of docs/byo_gan.md, "StyleGAN-class GANs: Z, W and W+ codes", run as written (issue 34, item 5).

Each recipe's first code block loads the GAN with its own code base (which needs that code base and a checkpoint,
so it is not run here: the test checks it asks for the objects the next blocks use). The later blocks run
verbatim, on a tiny module of :mod:`tests.gan_conventions` that has that code base's calling convention,
attribute names, return types and output range (random weights, no download), with ``fit_inverter`` held to a
test-sized budget (:func:`_small_fits`). After each: the codes have the convention's shape and give back the
reconstructions through the user's own G call, the saved inverter loads and encodes identically, and G and D
are bit-identical to what was handed over.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import discinvert
from discinvert import list_layers, suggest_feature_layers
from tests.conftest import assert_untouched, snapshot
from tests.gan_conventions import lightweight_gan, lucidrains, nvidia, rosinality

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## 9. StyleGAN-class GANs: Z, W and W+ codes"
SMALL_FIT = {"steps": 20, "batch_size": 32, "validation_size": 32, "cn_hidden": (32,), "real_steps": 10,
             "real_batch_size": 8, "real_held_out": 8, "progress": False, "seed": 0}
"""Test-sized fits, seeded: an unseeded fit draws a fresh seed, and G's range it reads from its own samples (which
the real images are checked against) then changes from run to run on these random-weight GANs."""


def _recipes() -> dict[str, list[str]]:
    """``### title`` of the section -> its Python blocks, in order."""
    page = (ROOT / "docs" / "byo_gan.md").read_text()
    assert SECTION in page
    section = page[page.index(SECTION):]
    section = section[:section.index("\n## ", 1)] if "\n## " in section[1:] else section
    parts = re.split(r"^### (.+)$", section, flags=re.M)
    return {title.strip(): re.findall(r"```python\n(.*?)```", body, flags=re.S)
            for title, body in zip(parts[1::2], parts[2::2])}


RECIPES = _recipes()


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def _small_fits(monkeypatch, tmp_path) -> None:
    """``from discinvert import fit_inverter`` gives the real one with the test's budget as defaults; files go to
    ``tmp_path``."""
    real = discinvert.fit_inverter

    def small(*args, **kwargs):
        return real(*args, **{**SMALL_FIT, **kwargs})

    monkeypatch.setattr(discinvert, "fit_inverter", small)
    monkeypatch.chdir(tmp_path)


def _run(title: str, block: int, names: dict) -> dict:
    code = RECIPES[title][block]
    namespace = dict(names)
    exec(compile(code, f"docs/byo_gan.md ({title}, block {block + 1})", "exec"), namespace)
    return namespace


def _saved_and_loaded(namespace: dict, codes_name: str, images: torch.Tensor) -> None:
    """The inverter loaded at the end of the block (``inv``) encodes as the one the fit returned did."""
    torch.testing.assert_close(namespace["inv"].encode(images[:8]), namespace[codes_name], rtol=0, atol=0)


def _images(generate, n: int = 40, seed: int = 5) -> torch.Tensor:
    with torch.no_grad():
        return generate(torch.Generator().manual_seed(seed), n)


def test_each_recipe_loads_with_its_code_base_and_runs_the_next_blocks() -> None:
    """The section's recipes, each a loading block (the code base's own loader and the objects the next blocks
    take) and the blocks this file runs."""
    assert list(RECIPES) == ["NVIDIA StyleGAN2-ADA and StyleGAN3", "rosinality's stylegan2-pytorch",
                             "lucidrains' stylegan2-pytorch", "lucidrains' lightweight-gan"]
    loads = [blocks[0] for blocks in RECIPES.values()]
    assert 'legacy.load_network_pkl(f)' in loads[0] and 'G, D = data["G_ema"], data["D"]' in loads[0]
    assert 'g_ema.load_state_dict(ckpt["g_ema"])' in loads[1] and 'd.load_state_dict(ckpt["d"])' in loads[1]
    assert "GAN = loader.model.GAN" in loads[2] and "GAN = trainer.GAN" in loads[3]
    assert [len(blocks) for blocks in RECIPES.values()] == [3, 2, 2, 2]


# --------------------------------------------------------------------------- NVIDIA
def _nvidia(c_dim: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    data = nvidia.tiny(c_dim=c_dim)
    return data["G_ema"], data["D"]


def test_nvidia_convention_module() -> None:
    G, D = _nvidia()
    z = torch.randn(8, G.z_dim)
    ws = G.mapping(z, None)
    assert ws.shape == (8, G.num_ws, G.w_dim) and torch.equal(ws[:, 0], ws[:, -1])
    images = G.synthesis(ws, noise_mode="const")
    assert images.shape == (8, G.img_channels, G.img_resolution, G.img_resolution)
    assert torch.equal(images, G(z, None, noise_mode="const")) and not torch.equal(images, G.synthesis(ws))
    assert -3 < float(images.min()) < -1 and 1 < float(images.max()) < 3  # about [-1, 1], not clamped
    assert D(images, None).shape == (8, 1)
    with pytest.raises(TypeError):
        D(images)  # c is required
    with pytest.raises(RuntimeError):
        D(images[:6], None)  # NVIDIA's minibatch std takes no batch that 4 does not divide


def test_nvidia_recipe_runs_as_written(_small_fits) -> None:
    G, D = _nvidia()
    images = _images(lambda g, n: G(torch.randn(n, G.z_dim, generator=g), None, noise_mode="const"))
    before = snapshot(G, D)
    ns = _run("NVIDIA StyleGAN2-ADA and StyleGAN3", 1, {"G": G, "D": D, "images": images})
    assert_untouched(before, G, D)
    assert ns["layers"] == ["D.b8"]
    assert suggest_feature_layers(ns["D_img"], images[:16], depths=2) == ["D.b16", "D.b8"]
    assert ns["inv"].config.fit["real_images"] is not None
    assert ns["ws"].shape == (8, G.num_ws, G.w_dim)
    torch.testing.assert_close(ns["x_hat"], G.synthesis(ns["ws"], noise_mode="const"))
    assert ns["ws_refined"].shape == ns["ws"].shape and not torch.equal(ns["ws_refined"], ns["ws"])
    assert ns["inv"].config.latent_prior == "mapped" and ns["inv"].config.latent_space["space"] == "w+"
    _saved_and_loaded(ns, "ws", images)
    assert_untouched(before, G, D)


def test_nvidia_d_layers_from_the_minibatch_std_on_are_batch_dependent() -> None:
    G, D = _nvidia()
    images = _images(lambda g, n: G(torch.randn(n, G.z_dim, generator=g), None, noise_mode="const"), n=16)
    dependent = {info.name for info in list_layers(D, (images, None)) if info.batch_dependent}
    assert dependent == {"", "b4", "b4.mbstd", "b4.conv", "b4.fc", "b4.out"}


def test_nvidia_conditional_recipe_runs_as_written(_small_fits) -> None:
    G, D = _nvidia(c_dim=3)
    labels = torch.arange(40) % 3
    images = _images(lambda g, n: G(torch.randn(n, G.z_dim, generator=g), F.one_hot(labels[:n], 3).float(),
                                    noise_mode="const"))
    before = snapshot(G, D)
    ns = _run("NVIDIA StyleGAN2-ADA and StyleGAN3", 2, {"G": G, "D": D, "images": images, "image_labels": labels})
    assert_untouched(before, G, D)
    assert ns["layers"] == ["b8"] and ns["z"].shape == (8, G.z_dim)
    with pytest.raises(ValueError, match=r"class labels in \[0, 3\)"):
        ns["inv"].encode(images[:2], conditions=torch.tensor([0, 3]))
    # As the page says: the features before b4 do not depend on the label (NVIDIA projects it onto D's output).
    other = ns["inv"].encode(images[:8], conditions=(labels[:8] + 1) % 3)
    torch.testing.assert_close(other, ns["z"], rtol=0, atol=0)
    assert_untouched(before, G, D)


# --------------------------------------------------------------------------- rosinality
def _rosinality() -> tuple[torch.nn.Module, torch.nn.Module]:
    """As the page's loading block: modules built with the trained sizes, then the checkpoint's 'g_ema' and 'd'."""
    ckpt = rosinality.tiny()
    g_ema = rosinality.Generator(16, 8, 2, channels=rosinality.TINY_CHANNELS)
    g_ema.load_state_dict(ckpt["g_ema"])
    d = rosinality.Discriminator(16, channels=rosinality.TINY_CHANNELS)
    d.load_state_dict(ckpt["d"])
    return g_ema, d


def test_rosinality_convention_module() -> None:
    g_ema, d = _rosinality()
    z = torch.randn(8, g_ema.style_dim)
    image, latent = g_ema([z], return_latents=True, randomize_noise=False)
    assert latent.shape == (8, g_ema.n_latent, g_ema.style_dim) and g_ema([z])[1] is None
    again, _ = g_ema([latent], input_is_latent=True, randomize_noise=False)
    torch.testing.assert_close(again, image)
    assert not torch.equal(g_ema([z])[0], image)  # randomize_noise=True (the default) draws fresh noise
    assert image.shape == (8, 3, 16, 16) and float(image.min()) < -1 and float(image.max()) > 1  # not clamped
    assert d(image).shape == (8, 1)


def test_rosinality_recipe_runs_as_written(_small_fits) -> None:
    g_ema, d = _rosinality()
    images = _images(lambda g, n: g_ema([torch.randn(n, 8, generator=g)], randomize_noise=False)[0])
    before = snapshot(g_ema, d)
    ns = _run("rosinality's stylegan2-pytorch", 1, {"g_ema": g_ema, "d": d, "images": images})
    assert_untouched(before, g_ema, d)
    assert ns["layers"] == [f"convs.{int(math.log2(16)) - 2}"]  # the page: convs.6 at 256 px
    assert ns["latents"].shape == (8, g_ema.n_latent, g_ema.style_dim)
    torch.testing.assert_close(ns["x_hat"], g_ema([ns["latents"]], input_is_latent=True, randomize_noise=False)[0])
    _saved_and_loaded(ns, "latents", images)
    dependent = {info.name for info in list_layers(d, images[:16]) if info.batch_dependent}
    assert dependent == {"", "final_conv", "final_conv.0", "final_conv.1", "final_linear", "final_linear.0",
                         "final_linear.1"}
    assert_untouched(before, g_ema, d)


# --------------------------------------------------------------------------- lucidrains' stylegan2-pytorch
def test_lucidrains_convention_module() -> None:
    GAN = lucidrains.tiny()
    w = GAN.SE(torch.randn(8, GAN.GE.latent_dim))
    styles = w[:, None].expand(-1, GAN.GE.num_layers, -1)
    images = GAN.GE(styles, torch.rand(8, GAN.GE.image_size, GAN.GE.image_size, 1))
    assert images.shape == (8, 3, 16, 16)
    assert 0.3 < float(images.mean()) < 0.7 and float(images.min()) < 0 < 1 < float(images.max())  # [0, 1] unclamped
    logits, quantize_loss = GAN.D(images)
    assert logits.shape == (8,) and quantize_loss.shape == (1,)


def test_lucidrains_recipe_runs_as_written(_small_fits) -> None:
    GAN = lucidrains.tiny()
    noise = torch.rand(40, 16, 16, 1, generator=torch.Generator().manual_seed(3))
    images = _images(lambda g, n: GAN.GE(GAN.SE(torch.randn(n, 8, generator=g))[:, None].expand(-1, 3, -1), noise))
    before = snapshot(GAN)
    ns = _run("lucidrains' stylegan2-pytorch", 1, {"GAN": GAN, "images": images})
    assert_untouched(before, GAN)
    assert ns["layers"] == ["final_conv"]
    assert suggest_feature_layers(GAN.D, images[:16], depths=2) == [f"blocks.{int(math.log2(16)) - 3}", "final_conv"]
    assert ns["styles"].shape == (8, GAN.GE.num_layers, GAN.GE.latent_dim)
    fixed = torch.rand((1, 16, 16, 1), generator=torch.Generator().manual_seed(0))  # noise_seed=0, as the package draws
    torch.testing.assert_close(ns["x_hat"], GAN.GE(ns["styles"], fixed.expand(8, -1, -1, -1)))
    assert not any(info.batch_dependent for info in list_layers(GAN.D, images[:16]))
    # An unclamped [0, 1] G's images overshoot [0, 1]; the nominal range read from them is still [0, 1].
    assert float(images.min()) < 0 < 1 < float(images.max()) and ns["inv"].value_range == (0.0, 1.0)
    _saved_and_loaded(ns, "styles", images)
    assert_untouched(before, GAN)


# --------------------------------------------------------------------------- lightweight-gan
def test_lightweight_gan_convention_module() -> None:
    GAN = lightweight_gan.tiny()
    z = torch.randn(8, GAN.latent_dim)
    images = GAN.GE(z)
    assert images.shape == (8, 3, 32, 32) and not torch.equal(images, GAN.GE(z))  # noise drawn in every call
    assert 0.3 < float(images.mean()) < 0.7 and float(images.min()) < 0 < 1 < float(images.max())  # [0, 1] unclamped
    out, out_32x32, aux = GAN.D(images)
    assert out.shape == (8, 25) and out_32x32.shape == (8, 1, 1, 1) and aux is None
    assert GAN.D(images, calc_aux_loss=True)[2].dim() == 0


def test_lightweight_gan_recipe_runs_as_written(_small_fits) -> None:
    GAN = lightweight_gan.tiny()
    images = _images(lambda g, n: GAN.GE(torch.randn(n, GAN.latent_dim, generator=g)))
    before = snapshot(GAN)
    ns = _run("lucidrains' lightweight-gan", 1, {"GAN": GAN, "images": images})
    assert_untouched(before, GAN)
    assert ns["layers"] == ["to_logits.1"]
    # the page at 256 px: ['residual_layers.3.0', 'to_logits.1'], the last residual layer (at 8x8) being 4.0
    assert suggest_feature_layers(GAN.D, images[:16], depths=2) == ["residual_layers.0.0", "to_logits.1"]
    assert [info.output_shape[2:] for info in list_layers(GAN.D, images[:16])
            if info.name in ("residual_layers.1.0", "to_logits.1")] == [(8, 8), (8, 8)]
    assert ns["z"].shape == (8, GAN.latent_dim) and ns["x_hat"].shape == (8, 3, 32, 32)
    assert ns["inv"].config.probe.generator.stochastic  # as the page says
    _saved_and_loaded(ns, "z", images)
    assert_untouched(before, GAN)


def test_the_suggestion_on_nvidia_d_is_the_block_not_its_branch() -> None:
    """NVIDIA's blocks end with ``y.add_(x)``: the block hands on its skip's output tensor with the branch added in
    place. The suggestion is the block (``b8``, what ``b4`` reads), not the branch's last conv (``b8.conv1``, which
    suggest_feature_layers gave while it took an output written in place for one handed on unchanged)."""
    G, D = _nvidia()
    images = _images(lambda g, n: G(torch.randn(n, G.z_dim, generator=g), None, noise_mode="const"), n=8)
    assert suggest_feature_layers(D, (images, None)) == ["b8"]
    assert suggest_feature_layers(D, (images, None), depths=2) == ["b16", "b8"]


def test_the_suggestion_on_a_conditional_nvidia_d_skips_its_label_mapping() -> None:
    """A conditional NVIDIA D maps ``c`` with an MLP (``mapping``) after its blocks; that MLP's output, which never
    reads the image, is not suggested (it was, as ``mapping.fc1``, the last module before the head)."""
    G, D = _nvidia(c_dim=3)
    c = F.one_hot(torch.arange(8) % 3, 3).float()
    images = _images(lambda g, n: G(torch.randn(n, G.z_dim, generator=g), c, noise_mode="const"), n=8)
    assert suggest_feature_layers(D, (images, c)) == ["b8"]
    assert {"mapping", "mapping.fc0", "mapping.fc1"} <= {info.name for info in list_layers(D, (images, c))}
