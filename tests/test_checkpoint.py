"""Resumable fits and the batch pool."""

from __future__ import annotations

import pytest
import torch

from discinvert import fit_inverter
from discinvert.fitting.checkpoint import read_checkpoint
from tests.conftest import LATENT, assert_untouched, interrupting_sampler, snapshot, untimed_record

SETTINGS = dict(steps=60, batch_size=32, cn_hidden=(64, 64), progress=False, validation_size=64, seed=3, eval_every=10)


@pytest.mark.parametrize("reuse", [1, 3])
def test_resume_after_ctrl_c_equals_an_uninterrupted_fit(make_gan, tmp_path, reuse) -> None:
    gan = make_gan("spectral_dropout")
    G, D = gan.generator, gan.discriminator
    reference = fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(), reuse=reuse, **SETTINGS)

    path = tmp_path / "fit.ckpt.safetensors"
    before = snapshot(G, D)
    with pytest.raises(KeyboardInterrupt):
        fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(fail_at=48 if reuse == 1 else 25), reuse=reuse,
                     checkpoint_path=path, checkpoint_every=20, **SETTINGS)
    assert_untouched(before, G, D)
    _, meta = read_checkpoint(path)  # the last checkpoint is complete and readable
    assert meta["step"] in (20, 40)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left

    resumed = fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(), reuse=reuse,
                           checkpoint_path=path, checkpoint_every=20, resume=True, **SETTINGS)
    assert resumed.config.fit["resumed_from_step"] == meta["step"]
    a, b = reference.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed fit differs from the uninterrupted one"
    assert untimed_record(reference.config.fit) == untimed_record(resumed.config.fit)


def test_checkpoint_of_another_fit_is_refused(make_gan, tmp_path) -> None:
    gan = make_gan("dcgan")
    path = tmp_path / "ckpt.safetensors"
    kwargs = {**SETTINGS, "steps": 30}
    fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), checkpoint_path=path,
                 checkpoint_every=10, **kwargs)
    with pytest.raises(ValueError, match="another fit.*lr"):
        fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), checkpoint_path=path,
                     checkpoint_every=10, resume=True, **{**kwargs, "lr": 1e-4})
    with torch.no_grad():
        gan.generator.main[0].weight.add_(0.1)
    with pytest.raises(ValueError, match="generator_fingerprint"):
        fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), checkpoint_path=path,
                     checkpoint_every=10, resume=True, **kwargs)


def test_resume_without_a_path_and_a_damaged_checkpoint(make_gan, tmp_path) -> None:
    gan = make_gan("dcgan")
    with pytest.raises(ValueError, match="resume"):
        fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), resume=True, steps=2)
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="bad.safetensors"):
        fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), checkpoint_path=path,
                     resume=True, **SETTINGS)


def test_resume_with_no_checkpoint_yet_starts_fresh(make_gan, tmp_path) -> None:
    gan = make_gan("mlp")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=(LATENT,),
                            checkpoint_path=tmp_path / "new.safetensors", resume=True, **{**SETTINGS, "steps": 10})
    assert inverter.config.fit["resumed_from_step"] == 0


def test_pool_reuse_still_inverts(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), reuse=4,
                            **{**SETTINGS, "steps": 300, "batch_size": 64, "cn_hidden": (256, 256)})
    z, x, _ = gan.sample(512)
    assert float(((inverter.encode(x) - z) ** 2).mean()) < 0.35
    with pytest.raises(ValueError, match="reuse"):
        fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), reuse=0)


def test_a_checkpoint_with_hostile_state_json_names_the_file(tmp_path) -> None:
    from safetensors.torch import save_file

    from discinvert.fitting.checkpoint import CHECKPOINT_FORMAT, read_checkpoint

    path = tmp_path / "ckpt.safetensors"
    for state, message in (("[" * 100_000 + "]" * 100_000, "nested"), ("[1, 2]", "JSON object"), ("{", "JSON")):
        save_file({"x": torch.zeros(1)}, str(path), metadata={"format": CHECKPOINT_FORMAT, "format_version": "1", "state": state})
        with pytest.raises(ValueError, match=message) as info:
            read_checkpoint(path)
        assert str(path) in str(info.value)


def interrupted_fit(gan, path, settings):
    """A reference fit with ``settings``, the same fit interrupted after update 48 (checkpoints every 20
    updates at ``path``), and ``rewrite(meta)``, which writes the checkpoint back with an edited state."""
    import json

    import safetensors
    from safetensors.torch import save_file

    G, D = gan.generator, gan.discriminator
    reference = fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(), **settings)
    with pytest.raises(KeyboardInterrupt):
        fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(fail_at=48), checkpoint_path=path,
                     checkpoint_every=20, **settings)
    tensors, meta = read_checkpoint(path)
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()

    def rewrite(state) -> None:
        save_file(tensors, str(path), metadata={**metadata, "state": json.dumps(state)})

    return reference, meta, rewrite


def test_a_checkpoint_from_before_format_2_still_resumes(make_gan, tmp_path) -> None:
    """Checkpoints of older versions recorded D's weights-only fingerprint; the same fit resumes them."""
    from discinvert.fingerprint import fingerprint_discriminator

    gan = make_gan("spectral_dropout")
    G, D = gan.generator, gan.discriminator
    path = tmp_path / "fit.ckpt.safetensors"
    reference, meta, rewrite = interrupted_fit(gan, path, SETTINGS)
    modules = reference.config.discriminator_modules
    for value, resumes in ((fingerprint_discriminator(D, modules), True), ("sha256:" + "0" * 64, False)):
        meta["identity"]["discriminator_fingerprint"] = value
        rewrite(meta)
        if not resumes:
            with pytest.raises(ValueError, match="differs in discriminator_fingerprint"):
                fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(), checkpoint_path=path,
                             checkpoint_every=20, resume=True, **SETTINGS)
            continue
        resumed = fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(), checkpoint_path=path,
                               checkpoint_every=20, resume=True, **SETTINGS)
        assert resumed.config.fit["resumed_from_step"] == meta["step"]
        assert all(torch.equal(reference.state_dict()[k], resumed.state_dict()[k]) for k in reference.state_dict())


def test_checkpoints_keep_the_format_name_written_before_the_fitting_package(tmp_path) -> None:
    """A checkpoint names its format "discinvert.checkpoint", as files written before the modules moved into
    discinvert/fitting/ do: such a file still reads (the name is a file format, not a module path)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from discinvert.fitting.checkpoint import read_checkpoint, write_checkpoint

    written = write_checkpoint(tmp_path / "new.safetensors", {"x": torch.ones(2)}, {"step": 3})
    with safe_open(str(written), framework="pt") as file:
        assert file.metadata()["format"] == "discinvert.checkpoint"
    old = tmp_path / "old.safetensors"  # laid out as discinvert wrote checkpoints before issue 33
    save_file({"x": torch.ones(2)}, str(old), metadata={"format": "discinvert.checkpoint", "format_version": "1",
                                                        "state": '{"step": 3}'})
    tensors, meta = read_checkpoint(old)
    assert torch.equal(tensors["x"], torch.ones(2)) and meta == {"step": 3}
