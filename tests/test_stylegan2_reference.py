"""The reference StyleGAN2 (``benchmarks/stylegan2``, issue 34 item 1) and discinvert on its discriminator (item 3).

Tiny widths and random weights throughout. The generator has the split researchers' StyleGAN2 code has
(``G.mapping`` -> ``ws``, ``G.synthesis(ws, noise_mode=...)``); its training script resumes bit-identically. On
its residual D with a minibatch standard deviation layer, the guarantees of issue 34, item 3: the layers from the
statistic on are marked batch-dependent, the suggested layer is per-image and the last before the statistic, a
default fit runs on it and leaves G and D bit-identical, and an image's code does not depend on its batch.
"""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from safetensors.torch import load_file

from benchmarks.stylegan2 import train as train_script
from benchmarks.stylegan2.architecture import (
    StyleGAN2Config,
    StyleGAN2Discriminator,
    build_stylegan2,
    ema_copy,
    load_stylegan2,
    mixed_ws,
    save_stylegan2,
    update_ema,
)
from discinvert import fit_inverter, list_layers, suggest_feature_layers
from discinvert.zoo.datasets import resolve_fashion_mnist_root
from tests.conftest import assert_untouched, snapshot

TINY = StyleGAN2Config(z_dim=8, w_dim=8, mapping_layers=2, channels=(16, 16, 8, 8))
TINY_FLAGS = ["--channels", "16,16,8,8", "--z-dim", "8", "--w-dim", "8", "--mapping-layers", "2"]
AFTER_MBSTD = ("", "b4", "b4.mbstd", "b4.conv", "b4.fc", "b4.out")


def _gan(*, noise: float = 0.3) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A tiny G and D as a user hands them over (train mode), with the noise strengths a trained G has."""
    torch.manual_seed(0)
    generator, discriminator = build_stylegan2(TINY)
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(noise)
        generator.mapping.w_avg.normal_()  # as after training: truncation then moves w somewhere
    return generator.train(), discriminator.train()


def _images(generator: torch.nn.Module, n: int = 8, seed: int = 1) -> torch.Tensor:
    z = torch.randn(n, TINY.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        was = generator.training
        images = generator.eval()(z, noise_mode="const")
        generator.train(was)
    return images


# --------------------------------------------------------------------------- the architecture
def test_shapes_of_mapping_synthesis_g_and_d() -> None:
    generator, discriminator = _gan()
    assert TINY.num_ws == 8 and StyleGAN2Config().num_ws == 8  # 7 convs at 4..32, one more for the last to-RGB
    z = torch.randn(5, TINY.z_dim)
    ws = generator.mapping(z)
    assert ws.shape == (5, TINY.num_ws, TINY.w_dim)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))  # one w broadcast to every layer
    assert generator.synthesis(ws, noise_mode="none").shape == (5, 1, 32, 32)
    assert generator(z).shape == (5, 1, 32, 32)
    assert discriminator(generator(z)).shape == (5, 1)
    assert (generator.z_dim, generator.w_dim, generator.num_ws, generator.img_resolution,
            generator.img_channels) == (8, 8, 8, 32, 1)
    generator.eval()
    assert torch.equal(generator(z, noise_mode="const"), generator.synthesis(generator.mapping(z), noise_mode="const"))
    with pytest.raises(ValueError, match=re.escape("ws: expected shape (N, 8, 8)")):
        generator.synthesis(ws[:, :3])
    with pytest.raises(ValueError, match="noise_mode"):
        generator.synthesis(ws, noise_mode="fixed")
    with pytest.raises(ValueError, match=re.escape("z: expected shape (N, 8)")):
        generator.mapping(z[:, :4])
    assert torch.equal(generator(z, None, noise_mode="const"), generator(z, noise_mode="const"))  # NVIDIA's G(z, c)
    assert torch.equal(discriminator(images := generator(z, noise_mode="none"), None), discriminator(images))
    with pytest.raises(ValueError, match="unconditional"):
        generator.mapping(z, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=re.escape("img: expected shape (N, 1, 32, 32)")):
        discriminator(torch.zeros(2, 1, 28, 28))


def test_the_modulated_conv_is_the_paper_s_per_sample_weight_modulation_and_demodulation() -> None:
    """The layer modulates activations (faster on a CPU); the product must be the paper's: w'_ijk = s_i w_ijk,
    w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps), one conv per sample."""
    generator, _ = _gan()
    layer = generator.synthesis.b8.conv1.conv
    x, w = torch.randn(3, 16, 8, 8), torch.randn(3, TINY.w_dim)
    styles = layer.affine(w)
    expected = []
    for n in range(3):
        weight = layer.weight * layer.weight_gain * styles[n][None, :, None, None]
        weight = weight * (weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).rsqrt()
        expected.append(torch.nn.functional.conv2d(x[n : n + 1], weight, padding=1))
    torch.testing.assert_close(layer(x, w), torch.cat(expected), rtol=1e-4, atol=1e-5)


def test_const_noise_is_deterministic_random_noise_is_not() -> None:
    generator, _ = _gan()
    generator.eval()
    ws = generator.mapping(torch.randn(4, TINY.z_dim))
    with torch.no_grad():
        const = [generator.synthesis(ws, noise_mode="const") for _ in range(2)]
        random = [generator.synthesis(ws, noise_mode="random") for _ in range(2)]
        none = generator.synthesis(ws, noise_mode="none")
    assert torch.equal(const[0], const[1])
    assert not torch.equal(random[0], random[1])
    assert torch.equal(none, generator.synthesis(ws, noise_mode="none"))
    assert not torch.equal(none, const[0])  # the const noise is there, and strength 0 would make them equal
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise_strength"):
                param.zero_()
        assert torch.equal(generator.synthesis(ws, noise_mode="random"), generator.synthesis(ws, noise_mode="none"))


def test_truncation_moves_w_toward_w_avg_and_training_moves_w_avg() -> None:
    generator, _ = _gan()
    z = torch.randn(6, TINY.z_dim)
    w_avg = generator.mapping.w_avg
    ws = generator.mapping(z)
    half = generator.mapping(z, truncation_psi=0.5)
    torch.testing.assert_close(half - w_avg, 0.5 * (ws - w_avg))
    torch.testing.assert_close(generator.mapping(z, truncation_psi=0.0), w_avg.expand_as(ws))
    cut = generator.mapping(z, truncation_psi=0.5, truncation_cutoff=3)
    assert torch.equal(cut[:, 3:], ws[:, 3:]) and torch.allclose(cut[:, :3], half[:, :3])
    assert torch.equal(generator.w_avg, w_avg)
    before = w_avg.clone()
    generator.mapping(z)  # no update unless asked
    assert torch.equal(generator.mapping.w_avg, before)
    generator.mapping(z, update_w_avg=True)
    torch.testing.assert_close(generator.mapping.w_avg, ws[:, 0].mean(0).lerp(before, 0.995))


def test_style_mixing_takes_the_later_layers_from_another_z() -> None:
    generator, _ = _gan()
    z = torch.randn(3, TINY.z_dim)
    torch.manual_seed(5)
    mixed = mixed_ws(generator.mapping, z, probability=1.0)
    own = generator.mapping(z)
    cutoff = int((mixed == own).all(dim=(0, 2)).sum())
    assert 1 <= cutoff < TINY.num_ws
    assert torch.equal(mixed[:, :cutoff], own[:, :cutoff]) and not torch.equal(mixed[:, cutoff:], own[:, cutoff:])
    assert torch.equal(mixed_ws(generator.mapping, z, probability=0.0), own)


def test_ema_copy_and_update_and_save_load_round_trip(tmp_path) -> None:
    generator, discriminator = _gan()
    ema = ema_copy(generator)
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(1.0)
    update_ema(ema, generator, 0.75)
    for (name, e), g in zip(ema.named_parameters(), generator.parameters()):
        torch.testing.assert_close(e, g - 0.75, msg=name)
    save_stylegan2(tmp_path, ema, discriminator, TINY, extra={"note": 1})
    loaded_g, loaded_d, config, extra = load_stylegan2(tmp_path)
    assert config == TINY and extra == {"note": 1} and not loaded_g.training
    for a, b in ((ema, loaded_g), (discriminator, loaded_d)):
        assert a.state_dict().keys() == b.state_dict().keys()
        assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


# --------------------------------------------------------------------------- the training script
needs_data = pytest.mark.skipif(not any(resolve_fashion_mnist_root().glob("train-images*")),
                                reason="needs the Fashion-MNIST train split (apt-get install dataset-fashion-mnist)")


@needs_data
def test_quick_training_runs_and_resumes_bit_identically(tmp_path, capsys) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_script.main(["--quick", "--out", str(straight), "--iterations", "2", "--log-every", "1", *TINY_FLAGS])
    out = capsys.readouterr().out
    assert "command: python -m benchmarks.stylegan2.train --quick" in out
    train_script.main(["--quick", "--out", str(resumed), "--iterations", "1", "--log-every", "1", *TINY_FLAGS])
    assert json.loads((resumed / train_script.STATE_JSON).read_text())["iteration"] == 1
    trainer = train_script.main(["--quick", "--out", str(resumed), "--iterations", "2", "--log-every", "1",
                                 *TINY_FLAGS])
    assert "resumed from" in capsys.readouterr().out and trainer.iteration == 2
    a, b = (load_file(str(d / train_script.STATE_TENSORS)) for d in (straight, resumed))
    assert a.keys() == b.keys() and any(k.startswith("opt_d.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    history = json.loads((straight / train_script.STATE_JSON).read_text())["history"]
    assert [h["iteration"] for h in history] == [1, 2]
    assert history[0]["r1"] is not None and history[1]["r1"] is None  # lazy R1: iteration 0 of every 16
    assert (straight / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded_g, _, config, extra = load_stylegan2(straight)
    assert config == TINY and extra["iterations"] == 2 and extra["command"].startswith("python -m benchmarks.")
    with pytest.raises(SystemExit, match="use another --out or the same options"):
        train_script.main(["--quick", "--out", str(straight), "--iterations", "3", *TINY_FLAGS[:-1], "3"])


# --------------------------------------------------------------------------- issue 34, item 3: discinvert on this D
def test_list_layers_marks_the_layers_from_the_minibatch_std_on_as_batch_dependent() -> None:
    generator, discriminator = _gan()
    layers = {info.name: info for info in list_layers(discriminator, _images(generator))}
    assert {name for name, info in layers.items() if info.batch_dependent} == set(AFTER_MBSTD)
    assert all(info.batch_dependent is False for name, info in layers.items() if name not in AFTER_MBSTD)


def test_the_suggested_layer_is_per_image_and_at_the_deepest_resolution_before_the_statistic() -> None:
    generator, discriminator = _gan()
    images = _images(generator)
    layers = {info.name: info for info in list_layers(discriminator, images)}
    (suggested,) = suggest_feature_layers(discriminator, images)
    assert suggested.startswith("b8") and layers[suggested].output_shape[2:] == (4, 4)
    three = suggest_feature_layers(discriminator, images, depths=3)
    assert [layers[name].output_shape[2:] for name in three] == [(16, 16), (8, 8), (4, 4)]
    assert not any(layers[name].batch_dependent for name in [suggested, *three])


def test_the_suggested_layers_are_the_block_outputs_the_statistic_and_the_next_blocks_read() -> None:
    """On a residual D whose blocks add their skip in forward() (as NVIDIA's and rosinality's do), the suggestion is
    the block's output, which the minibatch std and the next block read, not its branch's last conv (which
    suggest_feature_layers gave while it looked at leaf modules only: 'b8.conv1'; 'b16.conv0', 'b8.conv0', 'b8.conv1')."""
    generator, discriminator = _gan()
    images = _images(generator)
    assert suggest_feature_layers(discriminator, images) == ["b8"]
    assert suggest_feature_layers(discriminator, images, depths=3) == ["b32", "b16", "b8"]


def test_a_feature_layer_after_the_statistic_is_refused_naming_the_block_before_it() -> None:
    generator, discriminator = _gan()
    before = snapshot(generator, discriminator)
    with pytest.raises(ValueError, match=r"feature_layer 'b4.conv': .*'b4.mbstd' \(MinibatchStd\).* is 'b8'"):
        fit_inverter(generator, discriminator, "b4.conv", latent_shape=(TINY.z_dim,), steps=20, progress=False)
    assert_untouched(before, generator, discriminator)


def test_a_default_fit_on_the_suggested_layer_leaves_g_and_d_bit_identical_and_codes_do_not_depend_on_the_batch(
) -> None:
    generator, discriminator = _gan()
    images = _images(generator)
    (layer,) = suggest_feature_layers(discriminator, images)
    before = snapshot(generator, discriminator)
    inverter = fit_inverter(generator, discriminator, layer, latent_shape=(TINY.z_dim,), steps=20, progress=False)
    assert_untouched(before, generator, discriminator)  # weights, buffers (w_avg, const noise), modes, no hooks
    _codes_do_not_depend_on_the_batch(inverter, images)
    assert math.isfinite(inverter.config.fit["best_validation_mse"])


def test_the_block_output_before_the_statistic_fits_as_well() -> None:
    """'b8' (a block whose forward adds its skip to its branch) is a feature layer fit_inverter takes."""
    generator, discriminator = _gan()
    before = snapshot(generator, discriminator)
    inverter = fit_inverter(generator, discriminator, "b8", latent_shape=(TINY.z_dim,), steps=20, batch_size=64,
                            validation_size=64, progress=False)
    assert_untouched(before, generator, discriminator)
    _codes_do_not_depend_on_the_batch(inverter, _images(generator))


def _codes_do_not_depend_on_the_batch(inverter, images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    """An image's code is the same in a batch of 8, in pairs, alone, and beside 5 other images."""
    codes = inverter.encode(images, batch_size=8, conditions=labels)
    assert codes.shape == (8, TINY.z_dim) and bool(torch.isfinite(codes).all())
    tolerance = 1e-5 * max(1.0, float(codes.abs().max()))
    in_pairs = inverter.encode(images, batch_size=2, conditions=labels)
    alone = torch.cat([inverter.encode(images[i : i + 1], conditions=None if labels is None else labels[i : i + 1])
                       for i in range(len(images))])
    others = torch.flip(images, dims=(-1,))[:5]  # other images (mirrored)
    beside = inverter.encode(torch.cat([others, images[:3]]),
                             conditions=None if labels is None else torch.cat([labels[:5], labels[:3]]))[5:]
    for other in (in_pairs, alone, beside):
        assert float((codes[: len(other)] - other).abs().max()) <= tolerance


# --------------------------------------------------------------------------- issue 34, item 3: a class input, D(img, c)
NUM_CLASSES = 3


class _ClassConditionalD(StyleGAN2Discriminator):
    """The reference D with a class input, ``D(img, c)`` (labels ``(N,)`` in ``[0, 3)``): a class embedding added to
    the 16x16 features (so that the features read at ``b8`` depend on the label) and one projected onto the
    4x4 features, added to the logit (a projection discriminator, as NVIDIA's conditional D projects its output
    onto an embedding of ``c``)."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__(config)
        self.embed = torch.nn.Embedding(NUM_CLASSES, config.channels[2])
        self.project = torch.nn.Embedding(NUM_CLASSES, config.channels[0])

    def forward(self, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = self.b32(img) + self.embed(c)[:, :, None, None]
        x = self.b8(self.b16(x))
        return self.b4(x) + (self.project(c) * x.mean(dim=(2, 3))).sum(dim=1, keepdim=True)


class _ClassConditionalG(torch.nn.Module):
    """The reference G with a class input, ``G(z, c)``: a class embedding added to ``z`` (constant noise)."""

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.embed = torch.nn.Embedding(NUM_CLASSES, TINY.z_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.generator(z + self.embed(c), noise_mode="const")


def _conditional_gan() -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor, torch.Tensor]:
    generator, _ = _gan()
    torch.manual_seed(3)
    G, D = _ClassConditionalG(generator), _ClassConditionalD(TINY)
    labels = torch.arange(8) % NUM_CLASSES
    with torch.no_grad():
        images = G.eval()(torch.randn(8, TINY.z_dim, generator=torch.Generator().manual_seed(1)), labels)
    return G.train(), D.train(), images, labels


def _labels(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, NUM_CLASSES, (n,), generator=generator, device=device)


def test_a_class_conditional_d_marks_the_same_layers_and_suggests_the_same_block() -> None:
    G, D, images, labels = _conditional_gan()
    before = snapshot(G, D)
    layers = {info.name: info for info in list_layers(D, (images, labels))}
    assert {name for name, info in layers.items() if info.batch_dependent} == set(AFTER_MBSTD)
    assert suggest_feature_layers(D, (images, labels)) == ["b8"]
    assert suggest_feature_layers(D, (images, labels), depths=3) == ["b32", "b16", "b8"]
    assert_untouched(before, G, D)


def test_a_class_conditional_d_fits_and_encodes_through_conditioning(tmp_path) -> None:
    """Fit with a Conditioning (default calls G(z, y), D(x, y); the classes from the Embedding tables), encode with
    the images' labels: the codes move with the label (D's features read it), not with the rest of the batch, and
    the inverter saves and loads; G and D come back bit-identical."""
    from discinvert import Conditioning, Inverter

    G, D, images, labels = _conditional_gan()
    conditioning = Conditioning(sampler=_labels)
    before = snapshot(G, D)
    with pytest.raises(ValueError, match=r"feature_layer 'b4.conv': .*'b4.mbstd' \(MinibatchStd\).* is 'b8'"):
        fit_inverter(G, D, "b4.conv", latent_shape=(TINY.z_dim,), conditioning=conditioning, steps=20, progress=False)
    inverter = fit_inverter(G, D, "b8", latent_shape=(TINY.z_dim,), conditioning=conditioning, steps=20,
                            batch_size=32, validation_size=32, progress=False)
    assert_untouched(before, G, D)
    _codes_do_not_depend_on_the_batch(inverter, images, labels)
    codes = inverter.encode(images, conditions=labels, batch_size=8)
    assert not torch.allclose(inverter.encode(images, conditions=(labels + 1) % NUM_CLASSES), codes)
    with pytest.raises(ValueError, match=r"class labels in \[0, 3\)"):
        inverter.encode(images, conditions=torch.full((8,), NUM_CLASSES))
    with pytest.raises(ValueError, match="conditions"):
        inverter.encode(images)
    assert inverter.reconstruct(images, conditions=labels).shape == images.shape
    path = inverter.save(tmp_path / "conditional.safetensors")
    loaded = Inverter.load(path, generator=G, discriminator=D, conditioning=conditioning)
    assert torch.equal(loaded.encode(images, conditions=labels, batch_size=8), codes)
    assert_untouched(before, G, D)
