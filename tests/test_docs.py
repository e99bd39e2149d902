"""The generated API reference is current, and the docs link only to files that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _as_measured(path: Path) -> tuple[str, int]:
    """The sha256 and size of the file a page's figures were measured on: the shipped file itself, or,
    where tools/restore_zoo_format5.py re-stored it in format 5 (the same tensor bytes and codes, new
    metadata: docs/results/zoo_format5.json), the file it re-stored."""
    import hashlib

    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    for row in _result("zoo_format5")["rows"]:
        if row["sha256_after"] == sha:
            assert (ROOT / row["folder"]) == path.parent and row["bytes_after"] == path.stat().st_size
            assert row["stored_tensors_identical"] and row["encode_identical_on_test_images"]
            return row["sha256_before"], row["bytes_before"]
    return sha, path.stat().st_size


def _result(name: str) -> dict:
    """A committed benchmark run: ``docs/results/<name>.json``."""
    import json

    return json.loads((ROOT / "docs" / "results" / f"{name}.json").read_text())


def test_api_reference_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_api_docs.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


GUIDE = ("index", "quickstart", "byo_gan", "cli", "web", "hub", "api", "faq", "reliability", "architecture",
         "results", "speed")
"""The pages of docs/ itself, for users; experiment records live in docs/lab/ (docs/lab/index.md)."""


def _pages() -> list[Path]:
    """Every Markdown page whose links must resolve: the README, docs/ and its lab, the benchmarks' maps."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "benchmarks").rglob("README.md"))]


def _prose(text: str) -> str:
    """``text`` without fenced blocks and indented lines: the commands as run, which name the paths of their time."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", lambda span: " " if re.search(r"python |torchrun ", span.group()) else span.group(), text)
    return "\n".join(line for line in text.splitlines() if not line.startswith("    "))


def test_doc_links_resolve() -> None:
    """Every relative link (``[text](target)``, ``![alt](target)``) in the README, docs/**, benchmarks/**/README.md
    names a file or folder that exists, and every path under docs/ that their prose names exists too."""
    missing = []
    for page in _pages():
        text = page.read_text()
        for target in re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a web address or an anchor on the same page
            if not (page.parent / target.split("#")[0]).exists():
                missing.append(f"{page.relative_to(ROOT)} links to missing {target}")
        for named in re.findall(r"(?<![\w/.-])(docs/[\w./-]*\w)(?![\w{*-])", _prose(text)):
            if not (ROOT / named).exists():
                missing.append(f"{page.relative_to(ROOT)} names missing {named}")
    assert not missing, "\n".join(missing)


def test_docs_holds_the_guide_and_the_lab_index_lists_every_record() -> None:
    """docs/ keeps the guide pages only; every experiment record in docs/lab/ is listed by docs/lab/index.md, which
    quotes no figure that its page does not hold."""
    assert sorted(page.stem for page in (ROOT / "docs").glob("*.md")) == sorted(GUIDE)
    index = (ROOT / "docs" / "lab" / "index.md").read_text()
    linked = set(re.findall(r"\]\(([\w]+)\.md\)", index))
    records = {page.stem for page in (ROOT / "docs" / "lab").glob("*.md")} - {"index"}
    assert records <= linked, f"docs/lab/index.md does not list {sorted(records - linked)}"
    assert linked <= records, f"docs/lab/index.md lists missing pages {sorted(linked - records)}"
    unquoted = []
    for row in (line for line in index.splitlines() if line.startswith("| ") and ".md)" in line):
        pages = [(ROOT / "docs" / "lab" / f"{name}.md").read_text() for name in re.findall(r"\]\(([\w]+)\.md\)", row)]
        held = " ".join(" ".join(page.split()) for page in pages)
        for figure in re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?= ?(?:dB|s\b|×|MB))", row):
            if figure not in held:
                unquoted.append(f"{figure} in: {row[:80]}")
    assert not unquoted, unquoted


def _library_texts() -> list[tuple[str, int, str]]:
    """Every docstring, string and comment of the package, and its page's text: ``(file, line, text)``."""
    import io
    import tokenize

    texts = []
    for path in sorted((ROOT / "discinvert").rglob("*")):
        name = str(path.relative_to(ROOT))
        if path.suffix == ".py":
            for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
                if token.type in (tokenize.STRING, tokenize.COMMENT):
                    texts += [(name, token.start[0] + n, line) for n, line in enumerate(token.string.splitlines())]
        elif path.suffix in (".js", ".html", ".css"):
            texts += [(name, number, line) for number, line in enumerate(path.read_text().splitlines(), 1)]
    return texts


def test_library_links_only_guide_pages_and_states_no_measured_figures() -> None:
    """Docstrings, help texts and messages send readers to guide pages, never to an experiment record, and quote
    no measured figure (dB, ms, a speed-up, a measured percentage): those live in docs/results.md and docs/lab/."""
    figure = re.compile(r"(?<![\w.{])\d[\d,]*(?:\.\d+)?(?: ?(?:dB|ms)\b|×|x faster|% (?:lower|higher|better|worse|"
                        r"faster|slower|smaller|larger))")
    wrong = []
    for name, line, text in _library_texts():
        for page in re.findall(r"docs/[\w./-]*\w", text):
            if page.removeprefix("docs/").removesuffix(".md") not in GUIDE or not (ROOT / page).is_file():
                wrong.append(f"{name}:{line} links {page}, not a guide page")
        wrong += [f"{name}:{line} states {match!r}" for match in figure.findall(text)]
    assert not wrong, "\n".join(wrong)


def test_fit_speed_figures_in_prose_come_from_the_committed_run() -> None:
    """The speed page's and fit_speed.md's prose quote docs/results/fit_speed-cpu.json, not typed-in figures."""
    import json

    rows = {row["config"]: row for row in json.loads((ROOT / "docs" / "results" / "fit_speed-cpu.json").read_text())["rows"]}
    default, fast = round(rows["default"]["seconds"]), round(rows["bf16+cl"]["seconds"])
    guide = (ROOT / "docs" / "speed.md").read_text()
    assert f"from {default} s to {fast} s" in guide
    page = (ROOT / "docs" / "lab" / "fit_speed.md").read_text()
    assert f"from {default} s to {fast} s" in page
    assert f"**missed** in the table below\n({rows['bf16+cl']['seconds_to_2pct_of_reference']:.1f} s)" in page


def test_reliability_page_names_real_tests() -> None:
    """docs/reliability.md says which test checks each guarantee: every test it names must exist."""
    import ast

    page = (ROOT / "docs" / "reliability.md").read_text()
    references = set(re.findall(r"`(tests/test_\w+\.py)(?:::(test_\w+))?`", page))
    assert len(references) > 40
    missing = []
    for path, name in references:
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
            continue
        functions = {node.name for node in ast.walk(ast.parse(file.read_text())) if isinstance(node, ast.FunctionDef)}
        if name and name not in functions:
            missing.append(f"{path}::{name}")
    assert not missing, missing


def test_time_to_quality_prose_comes_from_the_committed_runs() -> None:
    """fit_speed.md's issue-18 summary quotes docs/results/time_to_quality_round*.json, not typed-in figures."""
    import json

    def rows(n: int) -> dict[str, dict]:
        data = json.loads((ROOT / "docs" / "results" / f"time_to_quality_round{n}.json").read_text())
        return {row["name"]: row for row in data["rows"]}

    one, two = rows(1), rows(2)
    page = (ROOT / "docs" / "lab" / "fit_speed.md").read_text()
    today, levers, defaults, plateau = one["today"], one["paper-bf16-cl"], two["defaults"], two["plateau"]
    assert f"took {today['fit_seconds']:.0f} s with the old defaults" in page
    assert f"only after {today['seconds_to_reference']:.0f} s" in page
    assert f"({today['ms_per_update']:.0f} → {levers['ms_per_update']:.0f} ms)" in page
    assert f"validation MSE {levers['best_val_mse']:.4f} against {today['best_val_mse']:.4f}" in page
    assert f"held-out train PSNR {levers['heldout_psnr']:.2f} against {today['heldout_psnr']:.2f} dB" in page
    assert f"Table 1 PSNR {levers['table1_psnr']:.2f} against {today['table1_psnr']:.2f} dB" in page
    light = [r for name, r in one.items() if name.startswith("w")]
    low, high = min(r["heldout_psnr"] for r in light), max(r["heldout_psnr"] for r in light)
    gaps = sorted(today["heldout_psnr"] - r["heldout_psnr"] for r in light)
    assert f"levels off {gaps[0]:.2f}–{gaps[-1]:.2f} dB below on held-out train ({low:.2f}–{high:.2f} dB)" in page
    assert f"the whole fit took {defaults['fit_seconds']:.0f} s" in page
    assert f"after **{defaults['seconds_to_reference']:.0f} s**" in page
    assert f"took {levers['fit_seconds']:.0f} s in all and {levers['seconds_to_reference']:.0f} s to that point" in page
    assert f"{plateau['fit_seconds']:.0f} s for {plateau['heldout_psnr']:.2f} dB held-out train (Table 1 " \
           f"{plateau['table1_psnr']:.2f})" in page
    assert defaults["stopped"] is None and plateau["stopped"] is None  # "did not stop", "never met a plateau"
    short = rows(3)["defaults-1500"]
    assert f"1,500 (round 3) took {short['fit_seconds']:.0f} s but ended at {short['heldout_psnr']:.2f} dB held-out\n  " \
           f"train (Table 1 {short['table1_psnr']:.2f}), {today['heldout_psnr'] - short['heldout_psnr']:.2f} dB below" in page
    assert short["seconds_to_reference"] is None  # "outside the 0.1 dB margin"


def test_cn_shapes_prose_comes_from_the_committed_runs() -> None:
    """fit_speed.md's summary of the CN shapes quotes docs/results/cn_shapes_round*.json, not typed-in figures."""
    import json

    rounds = {n: {row["shape"]: row for row in json.loads(
        (ROOT / "docs" / "results" / f"cn_shapes_round{n}.json").read_text())["rows"]} for n in (1, 2, 3)}
    page = (ROOT / "docs" / "lab" / "fit_speed.md").read_text()
    paper = rounds[1]["mlp:1024x1024"]["heldout_psnr"]
    small = [row["heldout_psnr"] for n in (1, 2) for row in rounds[n].values() if row["mb_16bit"] <= 2.0]
    assert len(small) == 11
    assert f"the paper CN\n  reaches {paper:.2f} dB" in page
    assert f"reach {min(small):.2f}–{max(small):.2f} dB, {paper - max(small):.2f}–{paper - min(small):.2f} dB" in page
    fact, student = rounds[2]["fact:120/1024x1024"], rounds[3]["fact:120/1024x1024"]
    teacher = next(row for name, row in rounds[3].items() if name.startswith("teacher"))
    assert f"{fact['mb_16bit']} MB): {fact['heldout_psnr']:.2f} dB" in page
    assert f"reaches\n  {student['heldout_psnr']:.2f} dB, {student['heldout_psnr'] - paper:.2f} dB above" in page
    assert f"scores {teacher['heldout_psnr']:.2f} dB" in page
    assert f"stays {teacher['heldout_psnr'] - student['heldout_psnr']:.2f} dB below" in page


def test_real_schedule_prose_comes_from_the_committed_run() -> None:
    """real_schedule.md's reading and the lab index quote docs/results/real_schedule.json."""
    rows = {row["variant"]: row for row in _result("real_schedule")["rows"]}
    page = (ROOT / "docs" / "lab" / "real_schedule.md").read_text()
    old, new, fast = rows["lr=1e-4,decay=0"], rows["lr=1e-3,decay=1"], rows["lr=3e-3,decay=1"]
    long = rows["lr=1e-3,decay=1,steps=4000"]
    assert f"{new['psnr']:.2f} dB against {old['psnr']:.2f}" in page
    assert f"scores {fast['psnr'] - new['psnr']:.2f} dB more" in page
    assert f"less SSIM ({fast['ssim']:.4f} against {new['ssim']:.4f})" in page
    assert f"reach {long['psnr']:.2f} dB (best at update {long['best_step']:,}), {long['psnr'] - new['psnr']:.2f} dB" in page
    index = (ROOT / "docs" / "lab" / "index.md").read_text()  # where the real-image stage's docstring quoted it
    assert f"1e-3 decayed reached {new['psnr']:.2f} dB" in index
    assert f"where the earlier constant 1e-4 reached {old['psnr']:.2f}" in index


def test_real_stage_schedule_prose_comes_from_the_committed_runs() -> None:
    """real_stage_schedule.md's reading compares its own JSON with real_stage_levers.json, as the runs wrote them."""
    def fitted(name: str) -> dict:
        return next(row for row in _result(name)["rows"] if row["fit_seconds"] is not None)

    before, after = fitted("real_stage_levers"), fitted("real_stage_schedule")
    page = (ROOT / "docs" / "lab" / "real_stage_schedule.md").read_text()
    assert (f"{before['psnr_mean']:.2f} ± {before['psnr_std']:.2f} → {after['psnr_mean']:.2f} ± "
            f"{after['psnr_std']:.2f} dB on Table 1") in page
    assert f"(held-out train {before['holdout_psnr']:.2f} → {after['holdout_psnr']:.2f})" in page
    assert f"{before['ssim_mean']:.4f} → {after['ssim_mean']:.4f}" in page
    assert f"took {after['fit_seconds']:.0f} s ({before['fit_seconds']:.0f} s there)" in page
    assert f"({before['hybrid50_psnr']:.2f} → {after['hybrid50_psnr']:.2f})" in page
    assert f"MSE {before['recovery_mse']:.3f} → {after['recovery_mse']:.3f}" in page
    assert f"(cosine {before['recovery_cosine']:.3f} → {after['recovery_cosine']:.3f})" in page


def test_multi_depth_prose_comes_from_the_committed_runs() -> None:
    """multi_depth.md's comparison table and reading quote the two runs' JSON, not typed-in figures."""
    def run(name: str) -> tuple[dict, dict]:
        data = _result(name)
        return data["rows"][-1], data["settings"]

    page = (ROOT / "docs" / "lab" / "multi_depth.md").read_text()
    rows = {}
    for name, label in (("real_stage_schedule", "`main.7` (the paper's)"), ("multi_depth_4_7", "`main.4`, `main.7`"),
                        ("multi_depth_1_4_7", "`main.1`, `main.4`, `main.7`")):
        row, settings = run(name)
        rows[name] = row
        assert (f"| {label} | {row['holdout_psnr']:.2f} | {row['psnr_mean']:.2f} ± {row['psnr_std']:.2f} | "
                f"{row['hybrid50_psnr']:.2f} | {row['recovery_mse']:.3f} | {settings['cn_parameters'] / 1e6:.2f} M | "
                f"{row['seconds_per_1k']:.2f} | {row['fit_seconds']:.0f} |") in page
    one, two = rows["real_stage_schedule"], rows["multi_depth_4_7"]
    assert f"buys {two['holdout_psnr'] - one['holdout_psnr']:.2f} dB" in page
    assert f"({two['psnr_mean'] - one['psnr_mean']:.2f} on Table 1)" in page
    assert f"hybrid-50 (+{two['hybrid50_psnr'] - one['hybrid50_psnr']:.2f})" in page
    assert f"a fit {two['fit_seconds'] - one['fit_seconds']:.0f} s longer" in page
    three = rows["multi_depth_1_4_7"]
    assert f"adds {three['holdout_psnr'] - two['holdout_psnr']:.2f} dB on\n  held-out train" in page
    assert f"({three['psnr_mean'] - two['psnr_mean']:.2f} on Table 1)" in page
    assert f"encode {three['seconds_per_1k'] / two['seconds_per_1k']:.1f}x the" in page
    assert f"an {three['fit_seconds']:.0f} s fit" in page


def test_iterative_schedule_prose_comes_from_the_committed_runs() -> None:
    """iterative_schedule.md's reading compares its JSON with iterative_levers.json, as the runs wrote them."""
    before, after = _result("iterative_levers")["rows"], _result("iterative_schedule")["rows"]
    page = (ROOT / "docs" / "lab" / "iterative_schedule.md").read_text()
    assert (f"k = 0 (the CN alone) {before[0]['psnr_mean']:.2f} → {after[0]['psnr_mean']:.2f} ± "
            f"{after[0]['psnr_std']:.2f} dB on Table 1") in page
    assert f"k = 2: {before[2]['psnr_mean']:.2f} → {after[2]['psnr_mean']:.2f} ± {after[2]['psnr_std']:.2f} dB" in page
    assert f"(held-out train {after[2]['holdout_psnr']:.2f})" in page
    assert f"at\n  {after[2]['seconds_per_1k']:.1f} s per 1,000 images" in page
    assert f"add only {after[2]['psnr_mean'] - after[0]['psnr_mean']:.2f} dB" in page
    assert after[1]["psnr_mean"] == after[0]["psnr_mean"]  # "k = 1 equals k = 0"
    assert f"hybrid-50 {before[2]['hybrid50_psnr']:.2f} → {after[2]['hybrid50_psnr']:.2f}" in page
    assert f"recovery MSE {before[2]['recovery_mse']:.3f} → {after[2]['recovery_mse']:.3f}" in page
    assert f"The fit took {after[2]['fit_seconds']:,.0f} s ({before[2]['fit_seconds']:.0f} s there" in page
    assert f"stays missed by {23.0 - after[2]['psnr_mean']:.1f} dB" in page


def test_real_stage_3000_prose_comes_from_the_committed_runs() -> None:
    """real_stage_3000.md's reading quotes its JSON and real_stage_schedule.json."""
    longer, default = _result("real_stage_3000")["rows"][-1], _result("real_stage_schedule")["rows"][-1]
    page = (ROOT / "docs" / "lab" / "real_stage_3000.md").read_text()
    assert f"{default['psnr_mean']:.2f} dB in {default['fit_seconds']:.0f} s" in page
    assert f"reaches {longer['psnr_mean']:.2f} ± {longer['psnr_std']:.2f} dB on\nTable 1 but takes {longer['fit_seconds']:.0f} s" in page


def test_real_stage_scaling_prose_comes_from_the_committed_runs() -> None:
    """real_stage_scaling.md's table and extrapolation quote real_schedule.json and real_stage_scaling.json."""
    import math

    rows = {row["variant"]: row for row in _result("real_schedule")["rows"]}
    scaling = _result("real_stage_scaling")["rows"]
    page = (ROOT / "docs" / "lab" / "real_stage_scaling.md").read_text()
    r1, r2, r3 = rows["lr=1e-3,decay=1"], rows["lr=1e-3,decay=1,steps=4000"], scaling[-1]
    assert r3["steps"] == 12000 and r3["best_step"] == 12000
    for label, row in (("0 (the paper CN)", scaling[0]), ("1,500 (the default)", r1), ("4,000", r2), ("12,000", r3)):
        assert f"| {label} | {row['psnr']:.2f} | {row['ssim']:.4f} |" in page
    g1 = (r2["psnr"] - r1["psnr"]) / math.log2(4000 / 1500)
    g2 = (r3["psnr"] - r2["psnr"]) / math.log2(3)
    doublings = (23.0 - r3["psnr"]) / g2
    updates = 12000 * 2**doublings
    assert f"bought {g1:.2f} dB per doubling" in page and f"from 4,000 to 12,000, {g2:.2f} dB per doubling" in page
    assert f"would take {doublings:.1f} more\n  doublings, about {updates / 1e6:.1f} million updates" in page
    rate = r2["seconds"] / 4000
    assert f"at the {rate:.3f} s per update" in page and f"about {updates * rate / 3600:.0f} hours" in page
    assert f"({r3['held_out_mse'][-1]:.4f} at 12,000" in page
    default = _result("real_stage_schedule")["rows"][-1]
    assert f"{default['holdout_psnr']:.2f} held-out, {default['psnr_mean']:.2f} ± {default['psnr_std']:.2f} dB Table 1" in page


def test_speed_ratio_prose_comes_from_the_committed_run() -> None:
    """speed_ratio.md quotes docs/results/speed_ratio.json, and the inverter it scored is the zoo's real-images one."""
    rows = _result("speed_ratio")["rows"]
    page = (ROOT / "docs" / "lab" / "speed_ratio.md").read_text()
    r0, r1, r2 = rows
    assert [r["k"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["ratio"] == r["optimisation_seconds"] / r["encode_seconds"]
        assert f"| {r['k']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['encode_seconds']:.3f} |" in page
    assert f"is {r2['ratio']:.0f}× faster than optimisation" in page and r2["ratio"] >= 100
    assert f"reaches {r2['psnr']:.2f} dB in {r2['encode_seconds']:.2f} s per 1,000 images" in page
    assert f"needs {r2['optimisation_step']} steps and {r2['optimisation_seconds']:.0f} s to match it" in page
    assert f"(k = 0, {r0['psnr']:.2f} dB) is {r0['ratio']:.0f}× faster" in page
    assert f"+{r1['psnr'] - r0['psnr']:.2f} and +{r2['psnr'] - r1['psnr']:.2f} dB" in page
    shipped = ROOT / "discinvert" / "zoo" / "dcgan-fashion-mnist" / "inverter-real-images" / "model.safetensors"
    measured = "ed98f84d42c648efd14c658ea4ead3257bed7641ec52376e4d46b06d9a526a18"  # the float16 file this page scored
    stored = _result("zoo_int8")  # the same network re-stored in int8 since (issue 18)
    assert f"sha256 `{measured}`, stored in float16" in page
    assert _as_measured(shipped)[0] == stored["sha256"] and f"sha256 `{stored['sha256']}`" in page
    card = (shipped.parent / "README.md").read_text()
    assert f"| encode PSNR (dB) | {stored['test_images']['stored']['psnr']:.3f} |" in card
    assert (f"20.04 dB (its model card: {stored['test_images']['shipped']['psnr']:.3f} in float16, "
            f"{stored['test_images']['stored']['psnr']:.3f} in int8;") in page


def test_multi_hypothesis_prose_comes_from_the_committed_run() -> None:
    """multi_hypothesis.md's reading quotes docs/results/multi_hypothesis.json."""
    rows = {row["variant"].split(" ")[0]: row for row in _result("multi_hypothesis")["rows"]}
    page = (ROOT / "docs" / "lab" / "multi_hypothesis.md").read_text()
    base, jitter, control, four, sixteen = (rows[k] for k in ("bundled", "jitter=16", "heads=1", "heads=4", "heads=16"))
    assert f"{four['psnr']:.2f} dB with 4 heads and {sixteen['psnr']:.2f} dB\n  with 16, against {control['psnr']:.2f} dB" in page
    assert four["psnr"] < control["psnr"] and sixteen["psnr"] < control["psnr"]
    assert f"one head wins {max(sixteen['wins'])} images" in page
    assert f"best for {jitter['wins'][0]} of 1,000 images, and the choice adds {jitter['psnr'] - base['psnr']:.2f} dB" in page
    assert f"({base['psnr']:.2f} → {control['psnr']:.2f} dB for 1,000 more updates" in page


def test_iterative_k5_prose_comes_from_the_committed_run() -> None:
    """iterative_k5.md's reading quotes docs/results/iterative_k5.json."""
    rows = _result("iterative_k5")["rows"]
    page = (ROOT / "docs" / "lab" / "iterative_k5.md").read_text()
    psnr = [r["psnr_mean"] for r in rows]
    gains = ", ".join(f"{psnr[k] - psnr[k - 1]:+.2f}" for k in range(1, 6))
    assert f"add {gains} dB in turn" in page
    best = max(range(6), key=lambda k: rows[k]["holdout_psnr"])
    first, chosen, last = rows[0], rows[best], rows[5]
    assert f"train is k = {best} ({chosen['holdout_psnr']:.2f} dB there; {chosen['psnr_mean']:.2f} ± {chosen['psnr_std']:.2f}" in page
    assert f"{first['hybrid50_psnr']:.2f} dB from k = 0, {last['hybrid50_psnr']:.2f} from k = 5" in page
    assert f"(MSE {first['recovery_mse']:.3f} → {last['recovery_mse']:.3f})" in page
    assert f"the fit took {first['fit_seconds']:.0f} s" in page


def test_hybrid100_prose_comes_from_the_committed_run() -> None:
    """hybrid100.md quotes docs/results/hybrid100.json (written by discinvert evaluate --json)."""
    results = {r["name"]: r for r in _result("hybrid100")["results"]}
    page = (ROOT / "docs" / "lab" / "hybrid100.md").read_text()
    paper, real = results["paper"], results["real-images"]
    assert _result("hybrid100")["protocol"]["refine_steps"] == 100
    assert real["inverter"] == "zoo:dcgan-fashion-mnist/real-images" and paper["inverter"].endswith("zoo/dcgan-fashion-mnist/inverter")
    for row in (paper, real):
        assert f"| {row['psnr_mean']:.2f} | {row['ssim_mean']:.4f} | {row['seconds']:.0f} |" in page
    assert f"reach {real['psnr_mean']:.2f} dB, {paper['psnr_mean'] - real['psnr_mean']:.2f} dB *below*" in page
    assert real["psnr_mean"] < paper["psnr_mean"]


def test_zoo_int8_prose_comes_from_the_committed_runs() -> None:
    """fit_speed.md's int8 section quotes docs/results/zoo_int8*.json, and the zoo ships that file."""
    real, paper = _result("zoo_int8"), _result("zoo_int8_paper")
    page = (ROOT / "docs" / "lab" / "fit_speed.md").read_text()
    entry = ROOT / "discinvert" / "zoo" / "dcgan-fashion-mnist"
    shipped = entry / "inverter-real-images" / "model.safetensors"
    assert _as_measured(shipped) == (real["sha256"], real["bytes"]["stored"])
    assert real["bytes"]["stored"] <= 2_000_000 and shipped.stat().st_size <= 2_000_000
    assert f"    {real['command']}" in page and real["dtype"] == "int8"
    h, t, b = real["heldout_train"], real["test_images"], real["bytes"]
    for kind, label in (("shipped", "as shipped before (float16)"), ("stored", "in int8 (shipped now)")):
        assert (f"{label} | {b[kind]:,} | {h[kind]['psnr']:.3f} / {h[kind]['ssim']:.4f} | "
                f"{t[kind]['psnr']:.3f} / {t[kind]['ssim']:.4f} |") in page
    loss = h["stored"]["psnr"] - h["shipped"]["psnr"]
    assert f"**{b['stored'] / 1e6:.2f} MB at {loss:+.3f} dB** on held-out train" in page and abs(loss) <= 0.1
    assert f"({t['stored']['psnr'] - t['shipped']['psnr']:+.3f} dB on the test images)" in page
    assert f"int8 storage ({b['stored'] / 1e6:.2f} MB, {loss:+.3f} dB;" in page
    generator_mb = (entry / "gan" / "generator.safetensors").stat().st_size / 1e6
    assert f"generator file ({generator_mb:.2f} MB)" in page
    paper_card = f"{paper['test_images']['shipped']['psnr']:.3f}"
    assert f"{paper_card} / " in (entry / "inverter-real-images" / "README.md").read_text()
    assert f"{t['stored']['psnr'] - float(paper_card):.2f} dB above the paper inverter" in page
    paper_loss = paper["heldout_train"]["stored"]["psnr"] - paper["heldout_train"]["shipped"]["psnr"]
    assert f"{paper['bytes']['stored'] / 1e6:.2f} MB for it in int8 at {paper_loss:+.3f} dB" in page
    assert f"{paper['bytes']['stored'] / 1e6:.2f} MB in int8;" in page
    assert _as_measured(entry / "inverter" / "model.safetensors")[1] == paper["bytes"]["shipped"]  # not re-stored


def test_other_gans_pages_quote_the_committed_runs() -> None:
    """fit_speed.md's LSGAN/WGAN-GP section and real_stage_other_gans.md quote their JSONs."""
    fit_speed = (ROOT / "docs" / "lab" / "fit_speed.md").read_text()
    lb, ld = _result("time_to_quality_lsgan")["rows"]
    wb, wd = _result("time_to_quality_wgan_gp")["rows"]
    rb, rd = _result("time_to_quality_wgan_gp_rule")["rows"]
    assert wb == rb  # the corrected run's reference row is the first run's
    for name, b, d in (("LSGAN (3 epochs)", lb, ld), ("WGAN-GP (4 epochs)", wb, wd)):
        assert (f"| {name} | {b['fit_seconds']:.0f} | {b['seconds_to_own']:.0f} | {b['heldout_psnr']:.2f} | "
                f"{d['fit_seconds']:.0f} | {d['seconds_to_reference']:.0f} | {d['heldout_psnr']:.2f} | {d['steps_run']} |") in fit_speed
        assert d["stopped"] is None and abs(d["heldout_psnr"] - b["heldout_psnr"]) <= 0.1
    assert ld["seconds_to_reference"] <= 180 and f"after **{ld['seconds_to_reference']:.0f} s**" in fit_speed
    assert rd["stopped"] == 1200 and f"at update\n  {rd['stopped']} of 2,000 with validation MSE {rd['best_val_mse']:.4f}" in fit_speed
    assert f"validation MSE {wd['best_val_mse']:.4f} against\n  {wb['best_val_mse']:.4f} before" in fit_speed
    for run in ("time_to_quality_lsgan", "time_to_quality_wgan_gp"):
        assert f"    {_result(run)['command']}" in fit_speed
    page = (ROOT / "docs" / "lab" / "real_stage_other_gans.md").read_text()
    for name, run in (("LSGAN (3 epochs)", "real_stage_lsgan_cpu"), ("WGAN-GP (4 epochs)", "real_stage_wgan_gp_cpu")):
        result = _result(run)
        a, b = result["rows"]
        assert a["encoder"].startswith("CN without images") and b["encoder"] == "defaults + real-image stage"
        assert (f"| {name} | {a['psnr_mean']:.2f} → **{b['psnr_mean']:.2f}** | {a['hybrid50_psnr']:.2f} → "
                f"{b['hybrid50_psnr']:.2f} | {a['recovery_mse']:.3f} → {b['recovery_mse']:.3f} |") in page
        assert b["psnr_mean"] > a["psnr_mean"] and b["fit_seconds"] < 600
        assert f"    {result['command']}" in page


def test_compress_cn_prose_comes_from_the_committed_run() -> None:
    """fit_speed.md's compression section quotes docs/results/compress_cn.json, and the zoo file is unchanged."""
    result = _result("compress_cn")
    shipped, *students = result["rows"]
    page = (ROOT / "docs" / "lab" / "fit_speed.md").read_text()
    assert f"    {result['command']}" in page
    by_rank = {row["rank"]: row for row in students}
    best = by_rank[144]
    assert best["bytes"] <= 2_000_000 and abs(best["heldout"] - shipped["heldout"]) <= 0.1
    assert f"Rank 144 gives a {best['bytes'] / 1e6:.2f} MB file at\n  {best['heldout'] - shipped['heldout']:+.3f} dB" in page
    assert f"they score {best['test']:.3f} and {by_rank[128]['test']:.3f} dB against the shipped file's {shipped['test']:.3f}" in page
    assert best["test"] < 17.185 and f"from 17.19 to {best['test']:.2f} dB" in page  # the demo figure it would miss
    entry = ROOT / "discinvert" / "zoo" / "dcgan-fashion-mnist" / "inverter" / "model.safetensors"
    assert _as_measured(entry)[1] == shipped["bytes"]  # the zoo keeps the shipped paper inverter


def test_standardised_features_prose_comes_from_the_committed_runs() -> None:
    """fit_speed.md's cn_standardize section quotes its four JSONs, and the default is what it says."""
    from discinvert.fitting.fit_config import FitConfig

    page = (ROOT / "docs" / "lab" / "fit_speed.md").read_text()
    assert FitConfig().cn_standardize is True
    raw_w, std_w = _result("time_to_quality_std_wgan_gp")["rows"]
    raw_d, std_d = _result("time_to_quality_std_dcgan")["rows"]
    assert raw_w["settings"] == raw_d["settings"] == {"cn_standardize": "False"} and std_w["settings"] == std_d["settings"] == {}
    assert f"best validation MSE {raw_w['best_val_mse']:.4f} → **{std_w['best_val_mse']:.4f}**" in page
    assert f"{raw_w['heldout_psnr']:.2f} → **{std_w['heldout_psnr']:.2f} dB**" in page
    assert std_w["best_val_mse"] < raw_w["best_val_mse"] and std_w["heldout_psnr"] > raw_w["heldout_psnr"]
    loss = raw_d["heldout_psnr"] - std_d["heldout_psnr"]
    assert loss <= 0.1 and f"it costs the DCGAN {loss:.2f} dB of held-out PSNR" in page
    assert f"held-out train {raw_d['heldout_psnr']:.2f} → {std_d['heldout_psnr']:.2f} dB" in page
    old = next(r for r in _result("time_to_quality_round1")["rows"] if r["name"] == "today")["heldout_psnr"]
    reached = next(p["seconds"] for p in std_d["curve"] if p["heldout_psnr"] >= old - 0.1)
    assert reached <= 180 and f"come within 0.1 dB after {reached:.0f} s" in page
    above = [sum(p["val_mse"] > 1.0 for p in row["curve"]) for row in (raw_w, std_w)]
    assert f"above 1.0 at {above[0]} of the raw fit's {len(raw_w['curve'])} validations and at {above[1]}" in page
    shapes = {r["shape"]: r for r in _result("cn_shapes_std_wgan_gp")["rows"]}
    assert f"from\n  {shapes['mlp:1024x1024']['best_val_mse']:.4f} to {shapes['std+mlp:1024x1024']['best_val_mse']:.4f}" in page
    for run in ("time_to_quality_std_wgan_gp", "time_to_quality_std_dcgan", "cn_shapes_std_wgan_gp", "cn_shapes_std_dcgan"):
        assert f"    {_result(run)['command']}" in page


def test_standardised_features_on_the_lsgan_and_the_time_to_the_old_default() -> None:
    """The LSGAN's standardised run and the seconds to the pre-issue-18 default quoted in fit_speed.md come from
    the committed JSONs, and are within issue 18's 180 s."""
    page = (ROOT / "docs" / "lab" / "fit_speed.md").read_text()
    raw, std = _result("time_to_quality_std_lsgan")["rows"]
    assert raw["settings"] == {"cn_standardize": "False"} and std["settings"] == {}
    assert (f"best validation MSE {raw['best_val_mse']:.4f} → {std['best_val_mse']:.4f}, held-out train "
            f"{raw['heldout_psnr']:.2f} → {std['heldout_psnr']:.2f} dB") in page.replace("\n  ", " ")
    assert f"fits of {raw['fit_seconds']:.0f} and {std['fit_seconds']:.0f} s" in page.replace("\n  ", " ")
    for name, run, old_run, fit in (("LSGAN", "time_to_quality_std_lsgan", "time_to_quality_lsgan", std),
                                    ("WGAN-GP", "time_to_quality_std_wgan_gp", "time_to_quality_wgan_gp", None)):
        before = next(r for r in _result(old_run)["rows"] if r["name"] == "before")["heldout_psnr"]
        row = _result(run)["rows"][1]
        reached = next(p["seconds"] for p in row["curve"] if p["heldout_psnr"] >= before - 0.1)
        assert reached <= 180 and f"**{reached:.0f} s** ({name}, fit {row['fit_seconds']:.0f} s" in page
        if fit is not None:
            assert f"({before:.2f} dB, the LSGAN table above) after **{reached:.0f} s**" in page.replace("\n  ", " ")
    assert f"    {_result('time_to_quality_std_lsgan')['command']}" in page


def test_zoo_rebuild_prose_comes_from_the_committed_runs() -> None:
    """fit_speed.md's rebuild table quotes the four build_zoo_inverter JSONs, none of which is the shipped paper
    inverter (its fit record is still the H200 one; run 4 was written and reverted), and the replay of the shipped
    fit's history through the rule is what the page says."""
    import hashlib
    import json

    from discinvert.fitting.self_generated_stage import Schedule

    page = (ROOT / "docs" / "lab" / "fit_speed.md").read_text()
    folder = ROOT / "discinvert" / "zoo" / "dcgan-fashion-mnist" / "inverter"
    shipped = json.loads((folder / "config.json").read_text())["fit"]
    assert shipped["device"] == "cuda" and shipped["steps"] == 20000 and "cn_standardize" not in shipped
    for number, name in ((1, "zoo_inverter_rebuild"), (2, "zoo_inverter_rebuild_span"), (3, "zoo_inverter_rebuild_raw")):
        run = _result(name)
        fit, held, test = run["fit"], run["heldout_train"], run["test_images"]
        assert run["heldout_psnr_loss"] > 0.1 and "sha256" not in run  # refused, so never written
        assert f"    {run['command']}" in page
        assert (f"| {fit['stopped']} (rule) | {run['fit_seconds']:.0f} | {fit['best_validation_mse']:.4f} | "
                f"{held['new']['psnr']:.3f} | {test['new']['psnr']:.3f} | no (-{run['heldout_psnr_loss']:.3f}) |") in page
        assert abs(held["replaced"]["psnr"] - 17.239) < 5e-4 and f"| {number}: " in page
    assert _result("zoo_inverter_rebuild_raw")["settings"] == {"cn_standardize": "False"}
    # Run 4 passed its held-out gate (tolerance 0) and was written, then reverted: it misses the demo's figure.
    run_2_mse = _result("zoo_inverter_rebuild_span")["fit"]["best_validation_mse"]
    run = _result("zoo_inverter_rebuild_40k")
    fit, held, test = run["fit"], run["heldout_train"], run["test_images"]
    assert run["settings"] == {} and fit["steps"] == 40000 and "--tolerance 0 " in run["command"]
    assert run["heldout_psnr_loss"] <= 0 and test["new"]["psnr"] < test["replaced"]["psnr"] - 0.005
    assert f"    {run['command']}" in page
    assert (f"| 4: the defaults, a 40,000-update ceiling | (defaults), `--tolerance 0` | {fit['stopped']} (rule) | "
            f"{run['fit_seconds']:.0f} | {fit['best_validation_mse']:.4f} | {held['new']['psnr']:.3f} | "
            f"{test['new']['psnr']:.3f} | passed the gate ({-run['heldout_psnr_loss']:+.3f}); not kept |") in page
    text = page.replace("\n  ", " ")
    assert f"**{held['new']['psnr']:.3f} dB on held-out train, {-run['heldout_psnr_loss']:+.3f} dB above the shipped file**" in text
    assert (f"**{test['new']['psnr']:.3f} dB against the shipped file's {test['replaced']['psnr']:.3f} "
            f"({test['new']['psnr'] - test['replaced']['psnr']:+.3f})**") in text
    assert f"best validation MSE {fit['best_validation_mse']:.4f} against run 2's {run_2_mse:.4f}" in text
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() != run["sha256"]  # reverted
    history = shipped["history"]
    stops = []
    for window in (5, None):
        rule = Schedule("cosine", 20000, 100, 5, 100)
        rule.window = window or rule.window
        best = float("inf")
        for step, _, val, _ in history:
            best = min(best, val)
            if rule.after_validation(step, best):
                stops.append((step, best))
                break
    (old_step, old_best), (new_step, new_best) = stops
    assert f"stopped it at update {old_step:,} ({old_best:.4f})" in page
    assert f"stops it at {new_step:,} ({new_best:.4f}, against {history[-1][2]:.4f} at 20,000)" in page.replace("\n", " ")


def _table1_rows() -> list[str]:
    """The summary table's rows, as benchmarks/paper/table1.py writes them, from docs/results/table1.json."""
    from benchmarks.paper.protocol import PAPER_FASHION_MNIST
    from benchmarks.paper.table1 import GAN_TITLES

    rows = []
    for name, result in _result("table1")["results"].items():
        methods = result["methods"]
        pick = [methods["CN (ours)"], methods["naive encoder"],
                *(next(v for k, v in methods.items() if k.startswith(p)) for p in ("optimisation only", "hybrid"))]
        paper = PAPER_FASHION_MNIST[GAN_TITLES[name]]
        rows.append(f"| {GAN_TITLES[name]} | " + " | ".join(f"{r['psnr_mean']:.2f} / {r['ssim_mean']:.3f}" for r in pick)
                    + f" | {paper[0]:.2f} / {paper[1]:.3f} |")
    return rows


def test_readme_and_results_tables_come_from_the_committed_run() -> None:
    """The Table 1 summary in the README and in docs/results.md (between the table1 markers, re-written by
    benchmarks/paper/table1.py) is docs/results/table1.json's, and the prose around it says what the table shows."""
    from benchmarks.paper.table1 import END, START

    rows = _table1_rows()
    for page in (ROOT / "README.md", ROOT / "docs" / "results.md"):
        block = page.read_text().split(START, 1)[1].split(END, 1)[0]
        assert [line for line in block.splitlines() if line.startswith("| ") and "---" not in line][1:] == rows, page
    results = _result("table1")["results"]
    cn = {name: r["methods"]["CN (ours)"]["psnr_mean"] for name, r in results.items()}
    hybrid = [next(v for k, v in r["methods"].items() if k.startswith("hybrid"))["psnr_mean"] for r in results.values()]
    from benchmarks.paper.protocol import PAPER_FASHION_MNIST

    beats = {name: cn[name] > PAPER_FASHION_MNIST[title][0] for name, title in
             (("dcgan", "DCGAN"), ("lsgan", "LSGAN"), ("wgan-gp", "WGAN-GP"))}
    assert beats == {"dcgan": True, "lsgan": True, "wgan-gp": False}  # "beats the paper's for the DCGAN and the LSGAN"
    assert all(round(psnr) == 24 for psnr in hybrid)  # "about 24 dB on all three"


def test_results_page_quotes_the_committed_runs() -> None:
    """docs/results.md's tables quote the committed JSONs of the feed-forward ladder, the bundled inverters and the
    other GANs; nothing on the page is typed in."""
    page = (ROOT / "docs" / "results.md").read_text()

    def ladder(label: str, row: dict, fit: str) -> str:
        return (f"| {label} | {row['psnr_mean']:.2f} ± {row['psnr_std']:.2f} | {row['ssim_mean']:.4f} | "
                f"{row['seconds_per_1k']:.2f} | {fit} |")

    paper, staged = _result("real_stage_schedule")["rows"]
    two, steps = _result("multi_depth_4_7")["rows"][-1], _result("iterative_schedule")["rows"][2]
    assert paper["fit_seconds"] is None and steps["encoder"].endswith("k = 2 of 2 step networks")
    assert ladder("the paper's CN (the bundled inverter)", paper, "–") in page
    assert ladder("+ the real-image stage (`images=`)", staged, f"{staged['fit_seconds']:,.0f}") in page
    assert ladder("+ the real-image stage, two depths of D", two, f"{two['fit_seconds']:,.0f}") in page
    assert ladder("+ the real-image stage (4,000 updates), two step networks", steps, f"{steps['fit_seconds']:,.0f}") in page
    assert (f"50 Adam steps from\nthe paper's CN reach {paper['hybrid50_psnr']:.2f} dB (SSIM {paper['hybrid50_ssim']:.4f}) "
            f"at {paper['hybrid50_seconds_per_1k']:.0f} s per 1,000 images") in page
    assert max(r["psnr_mean"] for r in (staged, two, steps)) < 23.0  # "the 23 dB feed-forward target stays missed"

    real, bundled = _result("zoo_int8"), _result("zoo_int8_paper")
    hybrid = {r["name"]: r for r in _result("hybrid100")["results"]}
    assert _result("hybrid100")["protocol"]["refine_steps"] == 100
    for label, run, kind, refined in (("`inverter/` (the paper's CN)", bundled, "shipped", hybrid["paper"]),
                                      ("`inverter-real-images/`", real, "stored", hybrid["real-images"])):
        test = run["test_images"][kind]
        assert (f"| {label} | {test['psnr']:.2f} / {test['ssim']:.4f} | {refined['psnr_mean']:.2f} / "
                f"{refined['ssim_mean']:.4f} | {run['bytes'][kind] / 1e6:.2f} |") in page
    assert hybrid["real-images"]["psnr_mean"] < hybrid["paper"]["psnr_mean"]  # "does not refine better"

    for name, run in (("LSGAN (3 epochs)", "real_stage_lsgan_cpu"), ("WGAN-GP (4 epochs)", "real_stage_wgan_gp_cpu")):
        before, after = _result(run)["rows"]
        assert f"| {name} | {before['psnr_mean']:.2f} | **{after['psnr_mean']:.2f}** | {after['fit_seconds']:.0f} |" in page


def test_results_page_quotes_the_stylegan2_run() -> None:
    """docs/results.md's StyleGAN2 section quotes docs/results/stylegan2.json (benchmarks/stylegan2/table.py), and
    its readings of the targets hold."""
    page = " ".join((ROOT / "docs" / "results.md").read_text().split())
    rows = _result("stylegan2")["rows"]
    cn, opt, hybrid = rows["cn-wplus-images"], rows["opt-wplus"], rows["hybrid"]
    o200, h100 = opt["steps"]["200"], hybrid["steps"]["100"]
    assert (f"| the CN, default fit with images (1,000 × 5 draws) | {cn['psnr_mean']:.2f} ± {cn['psnr_std']:.2f} | "
            f"{cn['ssim_mean']:.4f} | {cn['seconds_per_1k']:.2f} |") in page
    assert f"| {o200['psnr']:.2f} | {o200['ssim']:.4f} | {o200['seconds_per_1k']:.0f} |" in page
    assert f"| {h100['psnr']:.2f} | {h100['ssim']:.4f} | {h100['seconds_per_1k']:.0f} |" in page
    gap = o200["psnr"] - cn["opt_images_psnr"]
    assert f"score {cn['opt_images_psnr']:.2f} dB, {gap:.2f} dB below 200 optimisation steps" in page and gap > 2
    match = min(int(k) for k, p in opt["steps"].items() if p["psnr"] >= cn["opt_images_psnr"])
    ratio = opt["steps"][str(match)]["seconds_per_1k"] / cn["seconds_per_1k"]
    assert f"after {match} steps, {ratio:.0f}× the encode time" in page and ratio < 100
    steps = rows["cn-wplus-images-steps"]
    assert (f"| the CN and two step networks (`iterations=2`), with images (1,000 × 5 draws) | {steps['psnr_mean']:.2f} ± "
            f"{steps['psnr_std']:.2f} | {steps['ssim_mean']:.4f} | {steps['seconds_per_1k']:.2f} |") in page
    steps_gap = o200["psnr"] - steps["opt_images_psnr"]
    assert (f"two step networks raise them to {steps['opt_images_psnr']:.2f} dB, still {steps_gap:.2f} dB below, at "
            f"{steps['seconds_per_1k']:.1f} s per 1,000 images on one thread and a {steps['fit_seconds']:,.0f} s fit on "
            "one thread") in page and steps["threads"] == 1 and steps_gap > 2
    assert f"took {cn['fit_seconds']:,.0f} s on 2 CPU cores" in page and cn["fit_seconds"] > 900
    levers = _result("stylegan2_defaults")["rows"]
    reuse, default = levers["reuse2-t2"], levers["default"]
    assert (f"scores {reuse['heldout_int8']['psnr']:.2f} dB against the default's "
            f"{default['heldout_int8']['psnr']:.2f} (32×32, int8), no measurable cost") in page
    assert abs(reuse["heldout_int8"]["psnr"] - default["heldout_int8"]["psnr"]) < 0.05
    assert (f"that fit took {reuse['fit_seconds']:,.0f} s ({reuse['self_generated_seconds']:,.0f} s self-generated, "
            f"{reuse['real_stage_seconds']:,.0f} s the real-image stage") in page
    assert reuse["settings"]["reuse"] == 2 and reuse["threads"] == 2 and reuse["fit_seconds"] > 900
    assert max(reuse["load_average"]["after"]) < 2.5  # "with both cores to itself"
    assert reuse["real_stage_seconds"] > 900  # the real-image stage alone misses the 15 minutes
    assert o200["psnr"] - h100["psnr"] < 0.1 and h100["ssim"] > o200["ssim"]  # "within a tenth of a dB", "higher SSIM"
    for label, name in (("the CN in Z, default fit without images (1,000 × 5 draws)", "cn-z"),
                        ("the CN in W, the same", "cn-w"), ("the CN in W+, the same", "cn-wplus")):
        r = rows[name]
        assert f"| {label} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | {r['ssim_mean']:.4f} | {r['seconds_per_1k']:.2f} |" in page
    w200 = rows["opt-w"]["steps"]["200"]
    assert f"| {w200['psnr']:.2f} | {w200['ssim']:.4f} | {w200['seconds_per_1k']:.0f} |" in page
    assert f"(200 steps: {w200['psnr']:.2f} dB in W)" in page and w200["psnr"] < o200["psnr"]  # "W+ leaves W behind"
    assert rows["cn-z"]["psnr_mean"] < min(rows["cn-w"]["psnr_mean"], rows["cn-wplus"]["psnr_mean"]) - 3  # "poor"
    assert abs(rows["cn-w"]["psnr_mean"] - rows["cn-wplus"]["psnr_mean"]) < 0.5  # "alike without images"


def test_results_page_quotes_the_stylegan2_entry() -> None:
    """docs/results.md's paragraph on the bundled StyleGAN2 entry quotes the demo's metrics, the entry's files and
    the W+ width comparison (benchmarks/stylegan2/wplus_defaults.py); the model cards agree with the demo."""
    page = " ".join((ROOT / "docs" / "results.md").read_text().split())
    entry = ROOT / "discinvert" / "zoo" / "stylegan2-fashion-mnist"
    demo = _result("demo_stylegan2")["methods"]
    for label, key, sub in (("`inverter/` (the paper's CN)", "encode", "inverter"),
                            ("`inverter-real-images/`", "encode_real_images", "inverter-real-images")):
        m, size = demo[key], (entry / sub / "model.safetensors").stat().st_size / 1e6
        assert f"| {label} | {m['psnr_mean']:.2f} / {m['ssim_mean']:.4f} | {size:.2f} |" in page
        assert f"| encode PSNR (dB) | {round(m['psnr_mean'], 3)} |" in (entry / sub / "README.md").read_text()
    refine = demo["refine"]
    assert f"50 steps reaches {refine['psnr_mean']:.2f} dB (SSIM {refine['ssim_mean']:.4f}) on the first 200" in page
    rows = _result("stylegan2_defaults")["rows"]
    default, zoo_row = rows["default"], rows["zoo-real-images-w256"]
    cost = default["heldout_int8"]["psnr"] - zoo_row["heldout_int8"]["psnr"]
    assert 0.25 < cost < 0.42 and "costs a third of a dB against the default two layers of 1,024" in page
    card = (entry / "inverter-real-images" / "README.md").read_text()
    assert f"encode PSNR (dB) | {round(zoo_row['heldout_int8']['psnr'], 3)} |" in card  # the same held-out figure
    assert f"saves {(default['int8_bytes'] - zoo_row['int8_bytes']) / 1e6:.1f} MB per inverter" in page
    from tools.zoo_sizes import entry_sizes

    sizes = entry_sizes(entry)  # what `python -m tools.zoo_sizes stylegan2-fashion-mnist` prints
    total, shared = sizes["total_bytes"] / 1e6, sizes["shared"]
    assert total == sum(p.stat().st_size for p in entry.rglob("*") if p.is_file()) / 1e6
    assert (f"the entry is {total:.2f} MB in all (`python -m tools.zoo_sizes stylegan2-fashion-mnist`), issue 34's "
            f"\"about 5 MB\"") in page and total < 5.3
    assert f"with the {sizes['files']['directions/labels.safetensors'] / 1e6:.2f} MB of label" in page
    assert shared["file"] == "dcgan-fashion-mnist/test_images.safetensors"
    assert f"instead of a second {shared['bytes'] / 1e6:.2f} MB copy" in page


def test_speed_page_quotes_the_committed_runs() -> None:
    """docs/speed.md's tables and figures quote speed_ratio.json, speed-*.json, fit_speed-cpu.json,
    time_to_quality_round2.json and zoo_int8.json."""
    page = (ROOT / "docs" / "speed.md").read_text()
    for r in _result("speed_ratio")["rows"]:
        assert (f"| {r['k']} | {r['psnr']:.2f} | {r['encode_seconds']:.2f} | {r['optimisation_step']} | "
                f"{r['optimisation_seconds']:.0f} | {r['ratio']:,.0f}× |") in page
    for name in ("speed-cuda", "speed-cpu", "speed-cpu-bf16-cl"):
        meta, r = _result(name)["meta"], _result(name)["results"]
        device = meta["device"] + (f" ({', '.join(meta['levers'])})" if meta.get("levers") else "")
        assert abs(r["encode_psnr"] - 17.19) < 0.01  # "with the bundled paper inverter"
        assert (f"| {device} | {r['encode_s_per_1k']:.4f} | {r['d_full_s_per_1k']:.4f} | {r['encode_peak_mb']:.0f} / "
                f"{r['fit_peak_mb']:.0f} |") in page
        assert r["encode_vs_d_full"] < 1  # "encode cannot beat D's whole pass on this D"
    rows = {row["config"]: row for row in _result("fit_speed-cpu")["rows"]}
    assert f"from {round(rows['default']['seconds'])} s to {round(rows['bf16+cl']['seconds'])} s at the same" in page
    assert abs(rows["default"]["val_mse"] - rows["bf16+cl"]["val_mse"]) < 0.001
    assert rows["bf16+cl+reuse2"]["val_mse"] > rows["bf16+cl"]["val_mse"]  # reuse "trades some accuracy"
    ttq = {row["name"]: row for row in _result("time_to_quality_round2")["rows"]}
    assert f"after {ttq['defaults']['seconds_to_reference']:.0f} s instead of {ttq['today']['seconds_to_reference']:.0f} s" in page
    int8 = _result("zoo_int8")
    loss = int8["heldout_train"]["stored"]["psnr"] - int8["heldout_train"]["shipped"]["psnr"]
    assert f"{int8['bytes']['stored'] / 1e6:.2f} MB, {loss:+.3f} dB of held-out PSNR against its float16 file" in page


def test_results_page_quotes_the_generator_only_run() -> None:
    """docs/results.md's section on the generator-only route quotes docs/results/generator_only.json
    (benchmarks/generator_only/routes.py), and its readings of issue 35's targets hold."""
    page = " ".join((ROOT / "docs" / "results.md").read_text().split())
    rows = _result("generator_only")["rows"]
    for label, name in (("the paper's naive encoder (D's layout, trained from scratch), the same 2,000 updates", "naive"),
                        ("D's route, without images (the paper's method)", "d"), ("G alone, without images", "g"),
                        ("D's route, with images", "d-images"), ("G alone, with images", "g-images")):
        r = rows[name]
        assert (f"| {label} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | {r['ssim_mean']:.4f} | "
                f"{r['seconds_per_1k']:.2f} | {r['fit_seconds']:,.0f} |") in page, name
        assert r["gan"] == "zoo:dcgan-fashion-mnist" and r["settings"] == {"seed": 0} and r["threads"] == 1
    g, d, gi, di, naive = (rows[n] for n in ("g", "d", "g-images", "d-images", "naive"))
    assert naive["settings"] == {"seed": 0} and naive["route"] == "naive"  # the default budget of 2,000 updates
    assert f"G alone scores {gi['psnr_mean']:.2f} dB against D's {di['psnr_mean']:.2f} dB (target: within 1 dB)" in page
    assert di["psnr_mean"] - gi["psnr_mean"] <= 1.0
    assert f"images {g['psnr_mean']:.2f} dB against the naive encoder's {naive['psnr_mean']:.2f} dB" in page
    assert g["psnr_mean"] >= naive["psnr_mean"]
    assert f"still wins without images, by {d['psnr_mean'] - g['psnr_mean']:.2f} dB" in page and d["psnr_mean"] > g["psnr_mean"]
    assert gi["seconds_per_1k"] < di["seconds_per_1k"]  # "G alone encodes faster"
    guide = " ".join((ROOT / "docs" / "byo_gan.md").read_text().split())
    assert f"(G alone was {gi['psnr_mean'] - di['psnr_mean']:.2f} dB better on Table 1)" in guide
    assert f"without images D's route is better (by {d['psnr_mean'] - g['psnr_mean']:.2f} dB)" in guide
    for gan, epochs in (("lsgan", 3), ("wgan-gp", 4)):  # the other GANs' pairs with images
        od, og = rows[f"{gan}-d-images"], rows[f"{gan}-g-images"]
        assert od["gan"] == og["gan"] == f"runs/{gan}-cpu" and od["images"] and og["images"] and og["route"] == "g"
        assert og["gan_record"]["trained"] == epochs and og["settings"] == od["settings"] == {"seed": 0}
        assert (f"G alone {og['psnr_mean']:.2f} ± {og['psnr_std']:.2f} dB against D's {od['psnr_mean']:.2f} ± "
                f"{od['psnr_std']:.2f} dB on Table 1 ({og['psnr_mean'] - od['psnr_mean']:+.2f} dB; held-out train "
                f"{og['heldout_psnr']:.2f} against {od['heldout_psnr']:.2f})") in page, gan
    wd, wg = rows["wgan-gp-d-images"], rows["wgan-gp-g-images"]
    assert (f"(cosine {wg['recovery_cosine']:.3f} against {wd['recovery_cosine']:.3f} on 512 fresh samples): on this "
            "critic, G alone is the better route with images") in page
    assert wg["heldout_psnr"] > wd["heldout_psnr"] and wg["recovery_cosine"] > wd["recovery_cosine"]
    assert f"G alone was ahead by {wg['psnr_mean'] - wd['psnr_mean']:.2f} dB with images" in guide
    # the three GANs' table, every route with and without images; and its reading
    cell = {name: f"{r['psnr_mean']:.2f} ± {r['psnr_std']:.2f}" for name, r in rows.items()}
    for label, p in (("the bundled DCGAN", ""), ("LSGAN (3 epochs)", "lsgan-"), ("WGAN-GP (4 epochs)", "wgan-gp-")):
        assert (f"| {label} | {cell[p + 'naive']} | {cell[p + 'd']} | {cell[p + 'g']} | {cell[p + 'd-images']} | "
                f"{cell[p + 'g-images']} |") in page, label
        assert all(rows[p + n]["settings"] == {"seed": 0} and rows[p + n]["threads"] == 1 and not rows[p + n]["iterations"]
                   for n in ("naive", "d", "g", "d-images", "g-images"))
    ahead = {gan: rows[f"{gan}-g"]["psnr_mean"] - rows[f"{gan}-d"]["psnr_mean"] for gan in ("lsgan", "wgan-gp")}
    assert (f"Without images G alone wins on both GANs, by {ahead['lsgan']:.2f} dB on the LSGAN and by "
            f"{ahead['wgan-gp']:.2f} dB on the WGAN-GP") in page and min(ahead.values()) > 0
    assert f"without images G alone was ahead on an LSGAN (by {ahead['lsgan']:.2f} dB)" in guide
    assert f"by {ahead['wgan-gp']:.2f} dB); with images D's route was ahead on the LSGAN" in guide
    assert all(rows[f"{gan}-g"]["psnr_mean"] >= rows[f"{gan}-naive"]["psnr_mean"] for gan in ahead)
    assert (f"G alone beats the naive encoder at the same budget on both ({rows['lsgan-g']['psnr_mean']:.2f} against "
            f"{rows['lsgan-naive']['psnr_mean']:.2f} dB, {rows['wgan-gp-g']['psnr_mean']:.2f} against "
            f"{rows['wgan-gp-naive']['psnr_mean']:.2f} dB), the issue's second target") in page
    assert "even the naive encoder beats D's route without images" in page
    assert all(rows[f"{gan}-naive"]["psnr_mean"] > rows[f"{gan}-d"]["psnr_mean"] for gan in ahead)
    with_images = [rows[f"{p}g-images"]["psnr_mean"] - rows[f"{p}d-images"]["psnr_mean"] for p in ("", "lsgan-", "wgan-gp-")]
    assert "With images the routes stay within 0.4 dB" in page and max(map(abs, with_images)) < 0.4
    winners = {(p, images): rows[f"{p}g{images}"]["psnr_mean"] > rows[f"{p}d{images}"]["psnr_mean"]
               for p in ("", "lsgan-", "wgan-gp-") for images in ("", "-images")}
    assert [k for k, g_wins in winners.items() if not g_wins] == [("", ""), ("lsgan-", "-images")]
    assert ("D's route on the DCGAN without images and on the LSGAN with them, G alone on the other four pairs (and on "
            "the StyleGAN2 with images, below)" in page)
    # the perceptual term without D (seed 0) against the plain route's two seeds, and its cost timed with the cores free
    pe, pr, g0, g1 = (rows[n] for n in ("g-images-pe", "g-images-pr", "g-images", "g-images-s1"))
    assert pe["settings"] == {"seed": 0, "perceptual": "encoder"} and pr["settings"] == {"seed": 0, "perceptual": "random"}
    assert g1["settings"] == {"seed": 1} and g1["route"] == "g" and g1["images"] and not g1["iterations"]
    assert (f'`"encoder"` gives {pe["heldout_psnr"]:.2f} dB / SSIM {pe["heldout_ssim"]:.4f} and `"random"` '
            f'{pr["heldout_psnr"]:.2f} / {pr["heldout_ssim"]:.4f}, against {g0["heldout_psnr"]:.2f} / '
            f'{g0["heldout_ssim"]:.4f} without.') in guide
    spread, gain = abs(g1["heldout_psnr"] - g0["heldout_psnr"]), pe["heldout_psnr"] - g0["heldout_psnr"]
    assert (f"Without the term a second seed gave {g1['heldout_psnr']:.2f} dB: two seeds of the plain route lie "
            f"{spread:.2f} dB apart, less than the term's gain of {gain:.2f} dB") in guide and spread < gain
    pe1 = rows["g-images-pe-s1"]
    assert pe1["settings"] == {"seed": 1, "perceptual": "encoder"} and pe1["images"] and not pe1["iterations"]
    gain1 = pe1["heldout_psnr"] - g1["heldout_psnr"]
    assert (f'`"encoder"`\'s own second seed gave {pe1["heldout_psnr"]:.2f} dB / SSIM {pe1["heldout_ssim"]:.4f}, '
            f"{gain1:.2f} dB above the plain route's") in guide and spread < gain1
    timed = {(r["gan"], r["variant"], r["threads"]): r for r in _result("generator_only_timing")["rows"]}
    tg, tpe = timed[("zoo:dcgan-fashion-mnist", "g", 2)], timed[("zoo:dcgan-fashion-mnist", "g-pe", 2)]
    cost = tpe["real_stage_seconds_per_update"] / tg["real_stage_seconds_per_update"]
    assert f'`"encoder"` costs {cost:.2f} times the seconds per update of the real-image stage' in guide
    d2, g2 = timed[("zoo:dcgan-fashion-mnist", "d", 2)], tg
    d1, g1t = timed[("zoo:dcgan-fashion-mnist", "d", 1)], timed[("zoo:dcgan-fashion-mnist", "g", 1)]
    fit = lambda r: r["projected_default_seconds"]  # noqa: E731
    assert (f"G alone's fit takes {fit(g2) / fit(d2):.2f} of D's time on two torch threads ({fit(g1t) / fit(d1):.2f} on "
            f"one) and its encode {g2['encode_seconds_per_1k'] / d2['encode_seconds_per_1k']:.2f}; two threads take "
            f"{fit(d2) / fit(d1):.2f} of one thread's time for D's fit and {fit(g2) / fit(g1t):.2f} for G alone's") in page
    assert all(r["steps"] == 200 and r["real_steps"] == 100 and r["settings"] in ({}, {"perceptual": "encoder"})
               for key, r in timed.items() if key[0] == "zoo:dcgan-fashion-mnist")
    # the reference StyleGAN2 (W+ codes): the pair with images
    sd, sg = rows["sg2-d-images"], rows["sg2-g-images"]
    assert sd["gan"] == sg["gan"] == "zoo:stylegan2-fashion-mnist" and sd["images"] and sg["images"]
    assert (sd["route"], sg["route"]) == ("d", "g") and sd["settings"] == sg["settings"] == {"seed": 0}
    assert sd["threads"] == sg["threads"] == 1 and not sd["iterations"] and not sg["iterations"]
    assert (f"| {cell['wgan-gp-d-images']} | {cell['wgan-gp-g-images']} | "  # the row after the WGAN-GP's, not in another table
            f"| the reference StyleGAN2 (W+ codes) | not measured | {cell['sg2-d']} | {cell['sg2-g']} | "
            f"{cell['sg2-d-images']} | {cell['sg2-g-images']} |") in page
    assert (f"G alone {sg['psnr_mean']:.2f} ± {sg['psnr_std']:.2f} dB against D's {sd['psnr_mean']:.2f} ± "
            f"{sd['psnr_std']:.2f} dB on Table 1 ({sg['psnr_mean'] - sd['psnr_mean']:+.2f} dB; held-out train "
            f"{sg['heldout_psnr']:.2f} against {sd['heldout_psnr']:.2f}), SSIM {sg['ssim_mean']:.4f} against "
            f"{sd['ssim_mean']:.4f}") in page
    assert f"(cosine {sg['recovery_cosine']:.3f} against {sd['recovery_cosine']:.3f})" in page
    assert sg["recovery_cosine"] > sd["recovery_cosine"] and sg["heldout_psnr"] > sd["heldout_psnr"] + 1
    speed = sd["seconds_per_1k"] / sg["seconds_per_1k"]
    assert (f"G alone's fit took {sg['fit_seconds']:,.0f} s against D's {sd['fit_seconds']:,.0f} s (one thread each, "
            f"side by side) and it encodes {speed:.0f} times faster ({sg['seconds_per_1k']:.2f} against "
            f"{sd['seconds_per_1k']:.2f} s per 1,000 images)") in page
    assert "G alone is the better route by a wide margin whenever real images are at hand, even with D there" in page
    t_d, t_g = timed[("zoo:stylegan2-fashion-mnist", "d", 2)], timed[("zoo:stylegan2-fashion-mnist", "g", 2)]
    assert t_d["steps"] == t_g["steps"] == 100 and t_d["real_steps"] == t_g["real_steps"] == 100
    assert (f"on two torch threads ([lab/generator_only_timing.md](lab/generator_only_timing.md)), G alone's fit takes "
            f"{fit(t_g) / fit(t_d):.2f} of D's time on this GAN and its encode "
            f"{t_g['encode_seconds_per_1k'] / t_d['encode_seconds_per_1k']:.2f}.") in page
    # the StyleGAN2 without images (D's route, G alone, the naive encoder) and with a step network
    s_d, s_g = rows["sg2-d"], rows["sg2-g"]
    assert {r["gan"] for r in (s_d, s_g)} == {"zoo:stylegan2-fashion-mnist"} and "sg2-naive" not in rows  # withdrawn
    assert [r["route"] for r in (s_d, s_g)] == ["d", "g"] and not any(r["images"] for r in (s_d, s_g))
    assert all(r["settings"] == {"seed": 0} and r["threads"] == 1 and not r["iterations"] for r in (s_d, s_g))
    assert (f"D's route {s_d['psnr_mean']:.2f} ± {s_d['psnr_std']:.2f} dB against G alone's {s_g['psnr_mean']:.2f} ± "
            f"{s_g['psnr_std']:.2f} dB on Table 1 ({s_g['psnr_mean'] - s_d['psnr_mean']:+.2f} dB; held-out train "
            f"{s_g['heldout_psnr']:.2f} against {s_d['heldout_psnr']:.2f})") in page
    assert s_d["psnr_mean"] > s_g["psnr_mean"] and s_d["psnr_mean"] - s_g["psnr_mean"] < 0.2  # "close, D's ahead"
    assert "The naive encoder's row on this GAN was withdrawn" in page
    sds, sgs = rows["sg2-d-images-steps"], rows["sg2-g-images-steps"]
    assert sds["iterations"] == sgs["iterations"] == 1 and sds["images"] and sgs["images"]
    assert (sds["route"], sgs["route"]) == ("d", "g") and sds["gan"] == sgs["gan"] == "zoo:stylegan2-fashion-mnist"
    k = lambda r, i: r["heldout_by_k"][str(i)]["psnr"]  # noqa: E731
    assert (f"G alone {sgs['psnr_mean']:.2f} ± {sgs['psnr_std']:.2f} dB against D's {sds['psnr_mean']:.2f} ± "
            f"{sds['psnr_std']:.2f} dB on Table 1 (held-out train {k(sgs, 0):.2f} → {k(sgs, 1):.2f} against "
            f"{k(sds, 0):.2f} → {k(sds, 1):.2f} from k = 0 to 1); encode then costs {sgs['seconds_per_1k']:.2f} s "
            f"(G alone) and {sds['seconds_per_1k']:.2f} s (D) per 1,000 images") in page
    assert (f"on the StyleGAN2 (G alone {k(sgs, 0):.2f} → {k(sgs, 1):.2f}, D's {k(sds, 0):.2f} → {k(sds, 1):.2f})"
            in guide) and k(sgs, 1) > k(sgs, 0) and k(sds, 1) > k(sds, 0)
    assert f"while without images D's route was {s_d['psnr_mean'] - s_g['psnr_mean']:.2f} dB ahead" in guide
    assert (f"with images G alone scored {sg['psnr_mean'] - sd['psnr_mean']:.2f} dB above D's route on Table 1 and "
            f"encodes {speed:.0f} times faster") in guide
    assert (f"it scored {sg['psnr_mean']:.2f} dB against D's route's {sd['psnr_mean']:.2f} dB on Table 1 and encodes "
            f"{speed:.0f} times faster") in guide
    ds, gs = rows["d-images-steps"], rows["g-images-steps"]
    assert ds["iterations"] == gs["iterations"] == 1 and ds["gan"] == gs["gan"] == "zoo:dcgan-fashion-mnist"
    assert (f"G alone {gs['psnr_mean']:.2f} ± {gs['psnr_std']:.2f} dB against D's {ds['psnr_mean']:.2f} ± "
            f"{ds['psnr_std']:.2f} dB on Table 1 (held-out train {gs['heldout_by_k']['0']['psnr']:.2f} → "
            f"{gs['heldout_by_k']['1']['psnr']:.2f} against {ds['heldout_by_k']['0']['psnr']:.2f} → "
            f"{ds['heldout_by_k']['1']['psnr']:.2f} from k = 0 to 1)") in page
    assert (f"encode then costs {gs['seconds_per_1k']:.2f} s (G alone) and {ds['seconds_per_1k']:.2f} s (D) per 1,000 "
            "images") in page
    assert (f"(G alone {gs['heldout_by_k']['0']['psnr']:.2f} → {gs['heldout_by_k']['1']['psnr']:.2f} dB on held-out "
            f"train images, D's {ds['heldout_by_k']['0']['psnr']:.2f} → {ds['heldout_by_k']['1']['psnr']:.2f}, from k = 0 "
            "to 1 within each step-network fit)") in guide
    assert gs["heldout_by_k"]["1"]["psnr"] > gs["heldout_by_k"]["0"]["psnr"] and ds["heldout_by_k"]["1"]["psnr"] > \
        ds["heldout_by_k"]["0"]["psnr"]  # "helps both routes"
    w64 = rows["g-w64"]
    assert abs(w64["heldout_psnr"] - g["heldout_psnr"]) < 0.1 and g["seconds_per_1k"] < w64["seconds_per_1k"]  # "alike"


def test_results_page_quotes_the_directions_run() -> None:
    """docs/results.md's section on editing directions quotes docs/results/directions.json
    (benchmarks/directions/edits.py), and its readings of issue 36's targets hold."""
    import numpy as np

    page = " ".join((ROOT / "docs" / "results.md").read_text().split())
    d = _result("directions")["records"]["dcgan-fashion-mnist"]
    head = str(d["labels"]["headline_amount"])
    ratio = d["labels"]["ratio_smallest_to_largest"]
    assert head == "2.0" and d["n_test"] == 1000 and d["labels"]["l2"] == 1.0
    for p in ("20", "100", "1000"):
        b = d["labels"]["budgets"][p]
        accuracy = np.mean([v for v in b["heldout_balanced_accuracy"].values() if v is not None])
        at3 = b["success"]["3.0"]["mean"] / d["labels"]["budgets"]["1000"]["success"]["3.0"]["mean"]
        assert (f"| {int(p):,} images per class | {accuracy:.3f} | {b['success'][head]['mean']:.3f} | "
                f"{ratio[p]:.2f} | {b['success']['3.0']['mean']:.3f} | {at3:.2f} |") in page, p
    assert f"reach {ratio['20']:.2f} of the success of directions from 1,000 (target: at least 0.80)" in page
    assert ratio["20"] < 0.8 and "first target is missed at the headline amount" in page
    old = _result("directions_dcgan_l2_0.01")["labels"]
    assert f"had 20 images per class at {old['ratio_smallest_to_largest']['20']:.3f} of 1,000" in page
    best = np.mean([m["success"] for m in d["unsupervised"]["best_matching"].values()])
    assert f"moves {best:.3f} of the images on average" in page
    kept = {n: d["unsupervised"]["sefa"]["directions"][n]["class_kept"] for n in ("sefa-5", "sefa-7", "sefa-8")}
    assert (f"{kept['sefa-5']['0.5']:.3f}, {kept['sefa-7']['0.5']:.3f} and {kept['sefa-8']['0.5']:.3f} of the test "
            f"images at ±0.5 spread and {kept['sefa-5']['1.0']:.3f}, {kept['sefa-7']['1.0']:.3f} and "
            f"{kept['sefa-8']['1.0']:.3f} at ±1") in page
    assert min(k["0.5"] for k in kept.values()) >= 0.94 and min(k["1.0"] for k in kept.values()) >= 0.88
    lab = (ROOT / "docs" / "lab" / "directions.md").read_text()
    assert f"`{d['command']}`" in lab and "images/directions-dcgan-fashion-mnist-sefa.png" in lab
