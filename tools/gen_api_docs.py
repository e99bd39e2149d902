#!/usr/bin/env python
"""Build docs/api.md from the public API's docstrings and signatures.

    python tools/gen_api_docs.py            # writes docs/api.md
    python tools/gen_api_docs.py --check    # exits 1 if docs/api.md is out of date (used by the tests)
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "api.md"

SECTIONS: list[tuple[str, list[str]]] = [
    ("discinvert", ["fit_inverter", "FitConfig", "Inverter", "list_layers", "LayerInfo", "Conditioning", "InverterConfig", "CNConfig",
                    "ConnectionNetwork", "FingerprintMismatchError", "LayerNotReachedError", "ImageRangeWarning",
                    "UselessInverterWarning",
                    "HubPushError", "MappedGenerator", "GaussianPrior", "find_directions", "learn_directions",
                    "learn_directions_from_codes", "DirectionSet", "DirectionRangeWarning"]),
    ("discinvert.metrics", ["reconstruction_score", "latent_recovery", "nearest_neighbour_accuracy", "image_quality",
                            "draw_subsets", "summarize_draws"]),
    ("discinvert.edit", ["attribute_direction", "class_directions", "apply_direction", "edit", "interpolate",
                         "interpolate_images"]),
    ("discinvert.hub", ["list_directions", "directions_file", "push_directions"]),
    ("discinvert.optimize", ["optimize_latents"]),
    ("discinvert.zoo", ["available", "load", "load_directions", "load_gan_config", "load_test_images", "label_names", "path"]),
    ("discinvert.zoo.datasets", ["load_fashion_mnist", "read_idx", "to_model_range", "from_model_range"]),
    ("discinvert.zoo.architectures", ["GANConfig", "build_gan", "save_gan", "load_gan"]),
    ("discinvert.web", ["WebSession", "Limits", "Examples", "create_app", "start"]),
]

INVERTER_METHODS = ["encode", "decode", "reconstruct", "refine", "save", "load", "save_pretrained", "from_pretrained",
                    "push_to_hub", "check_fingerprints", "from_state"]
METHODS: dict[str, list[str]] = {
    "Inverter": INVERTER_METHODS,
    "MappedGenerator": ["nvidia", "rosinality", "lucidrains", "forward", "sample", "prior", "space_record"],
    "GaussianPrior": ["standard", "penalty", "tensors", "from_tensors"],
    "DirectionSet": ["vector", "as_dict", "edit", "mahalanobis", "save", "load", "from_pretrained", "push_to_hub",
                     "check_generator"],
}


def _signature(obj: object) -> str:
    try:
        text = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"
    # Default values that are functions print with their memory address: drop it so the page is stable.
    return re.sub(r"<function (\S+) at 0x[0-9a-f]+>", r"\1", text)


def _doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__ or "(no docstring)")


def build() -> str:
    lines = ["# API reference", "", "Generated from the docstrings by `python tools/gen_api_docs.py`; do not edit by hand.", ""]
    for module_name, names in SECTIONS:
        module = importlib.import_module(module_name)
        lines += [f"## `{module_name}`", ""]
        for name in names:
            obj = getattr(module, name)
            kind = "class" if inspect.isclass(obj) else "def"
            lines += [f"### `{kind} {name}{_signature(obj)}`", "", "```text", _doc(obj), "```", ""]
            for method in METHODS.get(name, []):
                member = getattr(obj, method)
                lines += [f"#### `{name}.{method}{_signature(member)}`", "", "```text", _doc(member), "```", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = build()
    if args.check:
        current = OUT.read_text() if OUT.is_file() else ""
        if current != text:
            print("docs/api.md is out of date: run python tools/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
