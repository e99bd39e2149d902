"""Direction sets (issue 36): found from G alone (SeFa, PCA), learned from labels, stored, refused for another G,
and edits that warn when they leave the prior's typical set."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import safetensors.torch
import torch
from torch import nn

from discinvert import (DirectionRangeWarning, DirectionSet, FingerprintMismatchError, Inverter, MappedGenerator,
                        find_directions, fit_inverter, learn_directions, learn_directions_from_codes)
from discinvert.directions import L2_DEFAULT
from discinvert.edit import apply_direction, edit
from tests.conftest import LATENT, _build, assert_untouched, hook_counts, snapshot
from tests.test_mapped import TINY, _generator

SAMPLES = 400


def _eigenvectors(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (rows) of ``A Aᵀ``, signs as the library fixes them."""
    values, vectors = torch.linalg.eigh(matrix.double() @ matrix.double().T)
    vectors = vectors.flip(1).T
    pick = vectors.abs().argmax(dim=1)
    return values.flip(0), vectors * torch.sign(vectors[torch.arange(len(vectors)), pick])[:, None]


def _by_component(ds: DirectionSet) -> dict[int, torch.Tensor]:
    return {ds.info["per_direction"][name]["component"]: ds.directions[i] for i, name in enumerate(ds.names)}


def _mapped(space: str) -> MappedGenerator:
    return MappedGenerator.nvidia(_generator(), space=space)


# ----------------------------------------------------------------------------- SeFa
@pytest.mark.parametrize("name, matrix", [
    ("dcgan", lambda g: g.main[0].weight.reshape(LATENT, -1)),  # ConvTranspose2d (in, out, kh, kw), 4-D codes
    ("wgan_gp", lambda g: g.main[0].weight.reshape(LATENT, -1)),  # flat codes reshaped by G before the layer
    ("mlp", lambda g: g.net[0].weight.T),  # Linear (out, in)
])
def test_sefa_gives_the_eigenvectors_of_the_first_layer(name, matrix) -> None:
    gan = _build(name)
    ds = find_directions(gan.generator, latent_shape=gan.latent_shape, k=LATENT, samples=SAMPLES)
    values, vectors = _eigenvectors(matrix(gan.generator).detach())
    found = _by_component(ds)
    assert sorted(found) == list(range(LATENT))
    for j, direction in found.items():
        assert torch.allclose(direction.reshape(-1).double(), vectors[j], atol=1e-5), j
    assert ds.info["per_direction"][ds.names[0]]["eigenvalue"] == pytest.approx(
        float(values[ds.info["per_direction"][ds.names[0]]["component"]]), rel=1e-5)
    assert ds.info["settings"]["layers"] == ["main.0" if name != "mlp" else "net.0"]
    assert ds.directions.shape == (LATENT, *gan.latent_shape) and ds.method == "sefa" and ds.space == "z"


def test_sefa_layer_named_gives_what_detection_finds() -> None:
    gan = _build("dcgan")
    auto = find_directions(gan.generator, latent_shape=gan.latent_shape, k=4, samples=SAMPLES)
    named = find_directions(gan.generator, latent_shape=gan.latent_shape, k=4, samples=SAMPLES, layer="main.0")
    assert torch.equal(auto.directions, named.directions) and torch.equal(auto.scales, named.scales)


def test_unknown_layer_is_refused_with_close_matches() -> None:
    gan = _build("dcgan")
    with pytest.raises(ValueError, match=r"'main\.O' is not a module.*'main\.0'"):
        find_directions(gan.generator, latent_shape=gan.latent_shape, layer="main.O", samples=SAMPLES)
    with pytest.raises(ValueError, match="width 32, expected the code's 8"):
        find_directions(gan.generator, latent_shape=gan.latent_shape, layer="main.3", samples=SAMPLES)


def test_a_latent_shape_g_rejects_is_a_clear_error() -> None:
    gan = _build("dcgan")  # its G takes (8, 1, 1) codes and raises a RuntimeError (its convolution) on (16, 1, 1)
    for method in ("sefa", "pca"):
        with pytest.raises(ValueError, match=r"latent_shape: the generator rejected latents of shape \(16, 1, 1\)"):
            find_directions(gan.generator, latent_shape=(16, 1, 1), method=method, samples=SAMPLES)


class _Warped(nn.Module):
    """A G that transforms its code before any layer: no layer takes the code itself."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(LATENT, 16)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.sin(z) + 0.5)


def test_nothing_to_factorise_says_to_name_the_layer() -> None:
    generator = _Warped().train()
    before = snapshot(generator)
    with pytest.raises(ValueError, match="layer="):
        find_directions(generator, latent_shape=(LATENT,), samples=SAMPLES)
    assert_untouched(before, generator)  # after an error too: modes, weights, no hook left
    ds = find_directions(generator, latent_shape=(LATENT,), samples=SAMPLES, layer="lin", k=2)
    assert ds.info["settings"]["layers"] == ["lin"]


@pytest.mark.parametrize("space", ["w", "w+"])
def test_sefa_in_w_concatenates_the_style_affines(space: str) -> None:
    generator = _mapped(space)
    ds = find_directions(generator, latent_shape=generator.latent_shape, k=TINY.w_dim, samples=SAMPLES)
    affines = [name for name, _ in generator.named_modules() if name.endswith("affine")]
    assert ds.info["settings"]["layers"] == affines and len(affines) == 11
    modules = dict(generator.named_modules())
    matrix = torch.cat([modules[name].weight.detach().T for name in affines], dim=1)
    _, vectors = _eigenvectors(matrix)
    for j, direction in _by_component(ds).items():
        rows = direction.reshape(-1, TINY.w_dim)
        assert torch.allclose(rows / rows.norm(dim=1, keepdim=True), vectors[j].float()[None].expand_as(rows), atol=1e-5)
    assert ds.space == space and ds.directions.shape == (TINY.w_dim, *generator.latent_shape)
    named = find_directions(generator, latent_shape=generator.latent_shape, k=TINY.w_dim, samples=SAMPLES,
                            layer=affines)
    assert torch.equal(named.directions, ds.directions)


# ----------------------------------------------------------------------------- PCA
def test_pca_in_w_is_pca_of_mapped_samples() -> None:
    generator = _mapped("w")
    ds = find_directions(generator, latent_shape=generator.latent_shape, method="pca", k=4, samples=SAMPLES, seed=3)
    w = generator.sample(SAMPLES, torch.Generator().manual_seed(3), torch.device("cpu")).double()
    centred = w - w.mean(0)
    values, vectors = torch.linalg.eigh(centred.T @ centred / (SAMPLES - 1))
    vectors, values = vectors.flip(1).T, values.flip(0)
    for j, direction in _by_component(ds).items():
        assert abs(float(direction.double() @ vectors[j])) == pytest.approx(1.0, abs=1e-6)
        name = ds.names[[ds.info["per_direction"][n]["component"] for n in ds.names].index(j)]
        assert ds.info["per_direction"][name]["explained_variance_ratio"] == pytest.approx(
            float(values[j] / values.sum()), rel=1e-4)
    # the scale is the spread of the samples along the direction: sqrt of its eigenvalue
    first = ds.info["per_direction"][ds.names[0]]["component"]
    assert float(ds.scales[0]) == pytest.approx(math.sqrt(float(values[first])), rel=1e-4)


def test_pca_in_w_plus_is_the_w_direction_on_every_row() -> None:
    generator = _mapped("w+")
    w_plus = find_directions(generator, latent_shape=generator.latent_shape, method="pca", k=3, samples=SAMPLES)
    rows = w_plus.directions.reshape(3, TINY.num_ws, TINY.w_dim)
    assert torch.allclose(rows, rows[:, :1].expand_as(rows))
    assert torch.allclose(rows.reshape(3, -1).norm(dim=1), torch.ones(3))


def test_pca_in_z_runs_ranks_and_is_deterministic() -> None:
    gan = _build("dcgan")
    before = snapshot(gan.generator)
    ds = find_directions(gan.generator, latent_shape=gan.latent_shape, method="pca", k=3, samples=SAMPLES, seed=1)
    assert_untouched(before, gan.generator)
    again = find_directions(gan.generator, latent_shape=gan.latent_shape, method="pca", k=3, samples=SAMPLES, seed=1)
    assert torch.equal(ds.directions, again.directions) and torch.equal(ds.scales, again.scales)
    assert ds.info == again.info
    other = find_directions(gan.generator, latent_shape=gan.latent_shape, method="pca", k=3, samples=SAMPLES, seed=2)
    assert not torch.equal(ds.directions, other.directions)
    changes = [ds.info["per_direction"][n]["image_change"] for n in ds.names]
    assert changes == sorted(changes, reverse=True) and changes[-1] > 0
    assert torch.allclose(ds.directions.reshape(3, -1).norm(dim=1), torch.ones(3))
    assert ds.info["settings"]["layers"] == ["main.0"]
    with pytest.raises(ValueError, match="PCA in W and W"):
        generator = _mapped("w")
        find_directions(generator, latent_shape=generator.latent_shape, method="pca", layer="x", samples=SAMPLES)


# ----------------------------------------------------------------------------- ranking, scales, determinism
def test_ranking_scores_are_the_image_change_at_one_spread() -> None:
    gan = _build("dcgan")
    ds = find_directions(gan.generator, latent_shape=gan.latent_shape, k=4, samples=SAMPLES)
    again = find_directions(gan.generator, latent_shape=gan.latent_shape, k=4, samples=SAMPLES)
    assert torch.equal(ds.directions, again.directions) and torch.equal(ds.scales, again.scales)
    changes = [ds.info["per_direction"][n]["image_change"] for n in ds.names]
    assert changes == sorted(changes, reverse=True)
    # recompute the top score by hand: 8 prior codes of the seeded draw, +- one spread
    codes = torch.randn((SAMPLES, *gan.latent_shape), generator=torch.Generator().manual_seed(0))[:8]
    step = ds.vector(ds.names[0])
    gan.generator.eval()
    with torch.no_grad():
        change = (gan.generator(codes + step) - gan.generator(codes - step)).abs().mean()
    assert float(change) == pytest.approx(changes[0], rel=1e-5)
    # the other candidates score no more than the kept ones
    everything = find_directions(gan.generator, latent_shape=gan.latent_shape, k=LATENT, samples=SAMPLES)
    assert [everything.info["per_direction"][n]["component"] for n in everything.names[:4]] == \
        [ds.info["per_direction"][n]["component"] for n in ds.names]


def test_scales_are_the_spread_of_prior_codes_about_one_in_z() -> None:
    gan = _build("mlp")
    ds = find_directions(gan.generator, latent_shape=gan.latent_shape, k=4, samples=2000)
    assert torch.allclose(ds.scales, torch.ones(4), atol=0.08)
    codes = torch.randn((2000, LATENT), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ds.scales, (codes @ ds.directions.T).std(0), rtol=1e-5)


def test_k_above_the_candidates_is_refused() -> None:
    gan = _build("mlp")
    with pytest.raises(ValueError, match=f"k: expected at most {LATENT}"):
        find_directions(gan.generator, latent_shape=gan.latent_shape, k=LATENT + 1, samples=SAMPLES)
    with pytest.raises(ValueError, match="method"):
        find_directions(gan.generator, latent_shape=gan.latent_shape, method="labels", samples=SAMPLES)


# ----------------------------------------------------------------------------- label directions
def _separable(n_per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes ``(2n, 8, 1, 1)`` whose class is the sign along a known unit vector ``u`` (moved 1 away from 0)."""
    rng = torch.Generator().manual_seed(seed)
    u = torch.randn(LATENT, generator=rng)
    u = u / u.norm()
    y = torch.cat([torch.ones(n_per_class), torch.zeros(n_per_class)]).bool()
    codes = torch.randn(2 * n_per_class, LATENT, generator=rng)
    along = codes @ u
    codes = codes + ((torch.where(y, 1.0, -1.0) * (along.abs() + 1.0)) - along)[:, None] * u
    return codes.reshape(-1, LATENT, 1, 1), y, u


def test_a_label_direction_from_20_codes_per_class_finds_the_separating_vector() -> None:
    gan = _build("dcgan")
    codes, y, u = _separable(20)
    before = snapshot(gan.generator)
    ds = learn_directions_from_codes(codes, y.long()[:, None], names=["up"], generator=gan.generator)
    assert_untouched(before, gan.generator)
    assert float(ds.directions[0].reshape(-1) @ u) > 0.9
    record = ds.info["per_direction"]["up"]
    assert record["holdout_balanced_accuracy"] > 0.8
    assert (record["positives"], record["negatives"], record["holdout_positives"], record["holdout_negatives"]) == (20, 20, 5, 5)
    assert ds.method == "labels" and ds.space == "z" and float(ds.scales[0]) == pytest.approx(1.0, abs=0.1)


def test_class_ids_give_one_direction_per_class_against_the_rest() -> None:
    gan = _build("mlp")
    rng = torch.Generator().manual_seed(4)
    centres = torch.randn(3, LATENT, generator=rng) * 2
    labels = torch.arange(3).repeat_interleave(20)
    codes = centres[labels] + 0.5 * torch.randn(60, LATENT, generator=rng)
    ds = learn_directions_from_codes(codes, labels, names=["a", "b", "c"], generator=gan.generator, seed=1)
    assert ds.names == ("a", "b", "c")
    for c in range(3):
        rest = centres[[i for i in range(3) if i != c]].mean(0)
        target = (centres[c] - rest) / (centres[c] - rest).norm()
        assert float(ds.directions[c] @ target) > 0.8
        assert ds.info["per_direction"]["abc"[c]]["holdout_balanced_accuracy"] > 0.8
    again = learn_directions_from_codes(codes, labels, names=["a", "b", "c"], generator=gan.generator, seed=1)
    assert torch.equal(ds.directions, again.directions) and ds.info == again.info


def test_a_conditional_direction_is_orthogonal_to_the_one_held_fixed() -> None:
    gan = _build("mlp")
    rng = torch.Generator().manual_seed(5)
    codes = torch.randn(80, LATENT, generator=rng)
    attributes = torch.stack([codes[:, 0] + 0.5 * codes[:, 1] > 0, codes[:, 1] > 0], dim=1).long()
    plain = learn_directions_from_codes(codes, attributes, names=["shirt", "t-shirt"], generator=gan.generator)
    held = learn_directions_from_codes(codes, attributes, names=["shirt", "t-shirt"], generator=gan.generator,
                                       conditional_on={"shirt": ["t-shirt"]})
    assert abs(float(held.directions[0] @ plain.directions[1])) < 1e-6
    assert float(held.directions[0].norm()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(held.directions[1], plain.directions[1])
    assert abs(float(plain.directions[0] @ plain.directions[1])) > 0.1  # there was something to project out
    assert held.info["per_direction"]["shirt"]["conditional_on"] == ["t-shirt"]


@pytest.mark.parametrize("labels, names, match", [
    (torch.tensor([0, 1] * 10 + [0]), ["a", "b"], r"expected \(20,\) class ids"),
    (torch.tensor([0, 1, 2] * 6 + [0, 1]), ["a", "b"], r"class ids in \[0, 2\)"),
    (torch.tensor([0] * 19 + [1]), ["a", "b"], "at least 2 codes with and 2 without"),
    (torch.tensor([[0, 1]] * 10 + [[1, 0]] * 10), ["a"], "one name per attribute column"),
    (torch.tensor([[0, 2]] * 20), ["a", "b"], "0 and 1 only"),
    (torch.tensor([0, 1] * 10), ["a", "a"], "unique"),
])
def test_bad_labels_are_refused(labels, names, match) -> None:
    gan = _build("mlp")
    codes = torch.randn(20, LATENT, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=match):
        learn_directions_from_codes(codes, labels, names=names, generator=gan.generator)


def test_codes_that_do_not_tell_a_label_apart_are_refused() -> None:
    gan = _build("mlp")
    codes = torch.randn(12, LATENT, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"labels: the codes with 'a' and those without it cannot be told apart"):
        learn_directions_from_codes(torch.cat([codes, codes]), torch.tensor([0] * 12 + [1] * 12), names=["a", "b"],
                                    generator=gan.generator)


def test_bad_conditions_are_refused() -> None:
    gan = _build("mlp")
    codes, y, _ = _separable(10)
    labels = torch.stack([y, ~y], dim=1).long()
    for bad in ({"a": ["a"]}, {"a": ["c"]}, {"a": []}):
        with pytest.raises(ValueError, match="conditional_on"):
            learn_directions_from_codes(codes.reshape(20, -1), labels, names=["a", "b"], generator=gan.generator,
                                        conditional_on=bad)
    with pytest.raises(ValueError, match="span"):  # b is exactly -a here: nothing of a is left
        learn_directions_from_codes(codes.reshape(20, -1), labels, names=["a", "b"], generator=gan.generator,
                                    conditional_on={"a": ["b"]})


def test_the_ridge_pulls_the_normal_toward_the_class_mean_difference() -> None:
    """Anisotropic codes, where the weakly regularised normal and the mean difference disagree: the larger ``l2``,
    the closer the direction to the (unit) difference of the two sides' mean codes, its limit."""
    gan = _build("mlp")
    rng = torch.Generator().manual_seed(6)
    codes = torch.randn(60, LATENT, generator=rng) * torch.linspace(0.2, 3.0, LATENT)
    y = (codes[:, 0] + codes[:, -1] > 0).long()
    difference = codes[y == 1].mean(0) - codes[y == 0].mean(0)
    difference = difference / difference.norm()
    sets = [learn_directions_from_codes(codes, y[:, None], names=["a"], generator=gan.generator, l2=l2)
            for l2 in (1e-3, 1.0, 1e4)]
    cosines = [float(ds.directions[0].reshape(-1) @ difference) for ds in sets]
    assert cosines[0] < cosines[1] < cosines[2] and cosines[2] > 0.999 and cosines[0] < 0.95, cosines
    assert [ds.info["settings"]["l2"] for ds in sets] == [1e-3, 1.0, 1e4]
    assert learn_directions_from_codes(codes, y[:, None], names=["a"], generator=gan.generator) \
        .info["settings"]["l2"] == L2_DEFAULT


@pytest.mark.parametrize("l2", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_a_bad_ridge_is_refused(l2) -> None:
    gan = _build("mlp")
    codes, y, _ = _separable(10)
    with pytest.raises(ValueError, match="l2: expected a positive finite float"):
        learn_directions_from_codes(codes.reshape(20, -1), y.long(), names=["no", "yes"], generator=gan.generator,
                                    l2=l2)


@pytest.fixture(scope="module")
def fitted():
    gan = _build("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            steps=30, batch_size=32, cn_hidden=(64,), progress=False, validation_size=64, seed=0)
    return gan, inverter


def test_learn_directions_encodes_the_images(fitted) -> None:
    gan, inverter = fitted
    codes, y, _ = _separable(12)
    gan.generator.eval()
    with torch.no_grad():
        images = gan.generator(codes)
    gan.generator.train()
    before = snapshot(gan.generator, gan.discriminator)
    ds = learn_directions(inverter, images, y.long(), names=["no", "yes"])
    assert_untouched(before, gan.generator, gan.discriminator)
    expected = learn_directions_from_codes(inverter.encode(images), y.long(), names=["no", "yes"],
                                           generator=gan.generator)
    assert torch.equal(ds.directions, expected.directions)
    with pytest.raises(ValueError, match="one row per image"):
        learn_directions(inverter, images, y.long()[:-1], names=["no", "yes"])
    # edit.apply_direction and edit.edit take a set's vector as they take any direction
    vector = ds.vector("yes")
    encoded = inverter.encode(images[:4])
    assert torch.equal(apply_direction(encoded, vector, 2.0), encoded + 2.0 * vector)
    assert edit(inverter, images[:4], vector, 1.0).shape == images[:4].shape


# ----------------------------------------------------------------------------- edits and the typical set
def test_edit_moves_by_spreads_and_warns_only_outside_the_typical_set() -> None:
    gan = _build("dcgan")
    ds = find_directions(gan.generator, latent_shape=gan.latent_shape, k=2, samples=2000)
    codes = torch.zeros(4, *gan.latent_shape)
    codes[:, 0] = 1.0
    codes = codes * math.sqrt(LATENT)  # a typical norm for N(0, I) in 8 dims
    with warnings.catch_warnings():
        warnings.simplefilter("error", DirectionRangeWarning)
        edited = ds.edit(codes, "sefa-0", 0.5)
    assert torch.equal(edited, apply_direction(codes, ds.vector("sefa-0"), 0.5))
    assert torch.allclose(edited - codes, 0.5 * ds.scales[0] * ds.directions[0].expand_as(codes))
    with pytest.warns(DirectionRangeWarning, match="left the prior's typical set"):
        ds.edit(codes, "sefa-0", 40.0)
    with pytest.warns(DirectionRangeWarning, match="2 of 4"):
        ds.edit(codes, "sefa-0", torch.tensor([0.0, 0.1, 40.0, -40.0]))
    far = codes + 40 * ds.vector("sefa-0")
    with warnings.catch_warnings():  # a code already outside that the edit brings back does not warn
        warnings.simplefilter("error", DirectionRangeWarning)
        ds.edit(far, "sefa-0", -1.0)
    near = 0.1 * codes  # inside the inner edge, as inverted real images are: not warned, either way
    assert float(ds.mahalanobis(near).max()) < ds.typical[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DirectionRangeWarning)
        ds.edit(near, "sefa-0", -1.0)
        ds.edit(near, "sefa-0", 1.0)
    with pytest.raises(ValueError, match="Close matches: 'sefa-0'"):
        ds.vector("sefa0")


def test_as_dict_holds_every_vector() -> None:
    gan = _build("mlp")
    ds = find_directions(gan.generator, latent_shape=gan.latent_shape, k=3, samples=SAMPLES)
    vectors = ds.as_dict()
    assert list(vectors) == list(ds.names) == ["sefa-0", "sefa-1", "sefa-2"] and len(ds) == 3
    assert all(torch.equal(vectors[n], ds.scales[i] * ds.directions[i]) for i, n in enumerate(ds.names))


# ----------------------------------------------------------------------------- the file
def _saved(tmp_path, space: str = "w+"):
    generator = _mapped(space)
    ds = find_directions(generator, latent_shape=generator.latent_shape, k=3, samples=SAMPLES)
    path = ds.save(tmp_path / "set.safetensors")
    return generator, ds, path


def test_round_trip_is_exact_and_bound_to_its_generator(tmp_path) -> None:
    generator, ds, path = _saved(tmp_path)
    loaded = DirectionSet.load(path, generator=generator)
    assert torch.equal(loaded.directions, ds.directions) and torch.equal(loaded.scales, ds.scales)
    assert (loaded.names, loaded.method, loaded.space, loaded.latent_shape, loaded.typical) == \
        (ds.names, ds.method, ds.space, ds.latent_shape, ds.typical)
    assert loaded.info == ds.info and loaded.generator_fingerprint == ds.generator_fingerprint
    assert torch.equal(loaded.prior.scale_tril, ds.prior.scale_tril) and torch.equal(loaded.prior.mean, ds.prior.mean)
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "discinvert-directions" and metadata["format_version"] == "1"
    assert json.loads(metadata["names"]) == list(ds.names)
    other = _generator()
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    with pytest.raises(FingerprintMismatchError, match="another G"):
        DirectionSet.load(path, generator=MappedGenerator.nvidia(other, space="w+"))
    with pytest.raises(ValueError, match="space 'w'"):
        DirectionSet.load(path, generator=MappedGenerator.nvidia(generator.generator, space="w"))


def _rewrite(path, tensors=None, metadata=None) -> None:
    with safetensors.safe_open(str(path), framework="pt") as handle:
        old_meta = handle.metadata()
        old = {k: handle.get_tensor(k) for k in handle.keys()}
    safetensors.torch.save_file(tensors(old) if tensors else old, str(path),
                                metadata=metadata(old_meta) if metadata else old_meta)


@pytest.mark.parametrize("tensors, metadata, match", [
    (lambda t: {**t, "directions": t["directions"] * 1.0000001}, None, "digest"),
    (lambda t: {**t, "extra": torch.zeros(1)}, None, r"unknown \['extra'\]"),
    (lambda t: {k: v for k, v in t.items() if k != "scales"}, None, r"missing \['scales'\]"),
    (lambda t: {**t, "scales": t["scales"][:2]}, None, r"tensor 'scales': expected float32 of shape \(3,\)"),
    (None, lambda m: {**m, "format": "discinvert.inverter"}, "expected metadata format 'discinvert-directions'"),
    (None, lambda m: {**m, "format_version": "2"}, "expected format_version 1"),
    (None, lambda m: {k: v for k, v in m.items() if k != "info"}, r"missing \['info'\]"),
    (None, lambda m: {**m, "latent_shape": "[3, 16]"}, r"expected float32 of shape \(3, 3, 16\)"),
    (None, lambda m: {**m, "method": "magic"}, "method: expected one of"),
])
def test_damaged_files_are_refused(tmp_path, tensors, metadata, match) -> None:
    _, _, path = _saved(tmp_path, "w")
    _rewrite(path, tensors, metadata)
    with pytest.raises(ValueError, match=match):
        DirectionSet.load(path)


# ----------------------------------------------------------------------------- G comes back as it was
@pytest.mark.parametrize("space, method", [("z", "sefa"), ("w+", "sefa"), ("w", "pca"), ("z", "pca")])
def test_the_generator_comes_back_bit_identical(space: str, method: str) -> None:
    generator = _mapped(space).train()
    generator.generator.mapping.fc0.weight.requires_grad_(False)  # a user's own choice, to be kept
    before = snapshot(generator)
    find_directions(generator, latent_shape=generator.latent_shape, method=method, k=2, samples=SAMPLES)
    assert_untouched(before, generator)
    assert hook_counts(generator) == {}


def test_the_generator_comes_back_bit_identical_after_an_error() -> None:
    generator = _Warped().train()
    generator.spare = nn.Linear(4, 4)  # never runs: PCA in Z on its output fails after G ran with a hook on it
    before = snapshot(generator)
    with pytest.raises(ValueError, match="did not run"):
        find_directions(generator, latent_shape=(LATENT,), method="pca", layer="spare", samples=SAMPLES)
    assert_untouched(before, generator)


def test_edit_refuses_bad_amounts() -> None:
    gan = _build("mlp")
    ds = find_directions(gan.generator, latent_shape=gan.latent_shape, k=1, samples=SAMPLES)
    codes = torch.zeros(3, LATENT)
    for bad in (math.inf, torch.ones(2), torch.tensor([1.0, math.nan, 0.0]), "1", True):
        with pytest.raises(ValueError, match="amount"):
            ds.edit(codes, "sefa-0", bad)
    with pytest.raises(ValueError, match="codes"):
        ds.edit(torch.zeros(3, LATENT + 1), "sefa-0", 1.0)


def test_label_directions_in_w_plus_use_the_spaces_prior() -> None:
    generator = _mapped("w+")
    codes = generator.sample(80, torch.Generator().manual_seed(7), torch.device("cpu"))
    u = torch.randn(TINY.w_dim, generator=torch.Generator().manual_seed(8))
    u = u / u.norm()
    labels = (codes.mean(1) @ u > (codes.mean(1) @ u).median()).long()
    before = snapshot(generator)
    ds = learn_directions_from_codes(codes, labels[:, None], names=["along"], generator=generator)
    assert_untouched(before, generator)
    assert ds.space == "w+" and ds.directions.shape == (1, *generator.latent_shape)
    mean_rows = ds.directions[0].mean(0)
    assert float(mean_rows @ u / mean_rows.norm()) > 0.7  # the label lives in the mean row's projection on u
    assert torch.allclose(ds.prior.mean, generator.prior(n=2000, seed=0).mean)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DirectionRangeWarning)
        ds.edit(codes[:8], "along", 0.1)
    with pytest.raises(ValueError, match="codes: expected shape"):
        learn_directions_from_codes(codes[:, 0], labels, names=["a", "b"], generator=generator)
